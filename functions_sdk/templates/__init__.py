"""Project templates for `cartwheel fn init`.

Each language has a `base/` (build files, `cartwheel.toml`, README), a complete
function for the target its example implements (`targets/<target>/`: the tiered VIP
discount in Rust, the remote-area delivery customization in C, copied from
`examples/`) and a `generic/` starter for every other target that reads its input and
configuration and returns no operation. Files are copied with the placeholders
``__CARTWHEEL_NAME__``, ``__CARTWHEEL_NAME_TOML__`` (a quoted TOML string),
``__CARTWHEEL_HANDLE__``, ``__CARTWHEEL_TARGET__`` and ``__CARTWHEEL_OWNER__`` (the
target's owner field, e.g. ``discount``) replaced.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from functions_sdk.apis import get_target
from functions_sdk.errors import CartwheelError

LANGUAGES = ("rust", "c")
"""Languages `cartwheel fn init --lang` can scaffold."""

TEMPLATES_DIR = Path(__file__).resolve().parent


class InitError(CartwheelError):
    """A project that cannot be created.

    Codes: INIT_TARGET_EXISTS (the folder exists and is not empty), INIT_INVALID_NAME,
    INIT_UNKNOWN_LANGUAGE.
    """

    code = "INIT_FAILED"


@dataclass(frozen=True, slots=True)
class Scaffold:
    """What `create_project` wrote."""

    root: Path
    name: str
    handle: str
    target: str
    language: str
    starter: str
    """``"example"`` when the target has a complete function, else ``"generic"``."""
    files: tuple[Path, ...]


def handle_for(name: str) -> str:
    """A project handle from a display name: ASCII lowercase words joined by hyphens,
    at most 50 characters (`"Tiered VIP discount!"` → `"tiered-vip-discount"`).

    Raises:
        InitError: INIT_INVALID_NAME when nothing usable is left.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    handle = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:50].strip("-")
    if not handle:
        raise InitError(
            f"Cannot derive a handle from the name {name!r}: use letters or digits.",
            code="INIT_INVALID_NAME",
        )
    return handle


def create_project(name: str, target: str, language: str, dest: Path) -> Scaffold:
    """Write a new function project for `target` in `language` into `dest`.

    Raises:
        UnknownTargetError: `target` is not a Function API target.
        InitError: INIT_UNKNOWN_LANGUAGE, INIT_INVALID_NAME, INIT_TARGET_EXISTS.
    """
    if language not in LANGUAGES:
        raise InitError(
            f"Unknown language {language!r}. Use one of: {', '.join(LANGUAGES)}.",
            code="INIT_UNKNOWN_LANGUAGE",
        )
    owner = get_target(target).owner_field
    if not name.strip():
        raise InitError("The project name must not be empty.", code="INIT_INVALID_NAME")
    handle = handle_for(name)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InitError(
            f"{dest} already exists and is not an empty folder. Choose another name or --path.",
            code="INIT_TARGET_EXISTS",
            path=str(dest),
        )

    lang_dir = TEMPLATES_DIR / language
    specific = lang_dir / "targets" / target
    starter = "example" if specific.is_dir() else "generic"
    sources = [lang_dir / "base", specific if starter == "example" else lang_dir / "generic"]
    replacements = {
        "__CARTWHEEL_NAME_TOML__": json.dumps(name, ensure_ascii=False),
        "__CARTWHEEL_NAME__": name,
        "__CARTWHEEL_HANDLE__": handle,
        "__CARTWHEEL_TARGET__": target,
        "__CARTWHEEL_OWNER__": owner,
    }
    written: list[Path] = []
    for source in sources:
        for path in sorted(source.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            out = dest / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8")
            for placeholder, value in replacements.items():
                text = text.replace(placeholder, value)
            out.write_text(text, encoding="utf-8")
            written.append(out)
    return Scaffold(
        root=dest,
        name=name,
        handle=handle,
        target=target,
        language=language,
        starter=starter,
        files=tuple(written),
    )
