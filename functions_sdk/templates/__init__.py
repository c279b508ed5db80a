"""Project templates for `cartwheel fn init`.

Each language has a `base/` (build files, `cartwheel.toml`, README), an example in the
repository's `examples/` (the tiered VIP discount in Rust, the remote-area delivery
customization in C) whose sources are the complete function for its target and whose
shared files (`.cargo/config.toml`, the C JSON parser) every project of the language
gets, and a `generic/` starter for every other target that reads its input and
configuration and returns no operation. The examples are read where they are in a
source checkout; the wheel carries their sources under `templates/examples/` (see
pyproject.toml, ``force-include``), so there is one copy of each in the repository.
Files are copied with the placeholders
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


@dataclass(frozen=True, slots=True)
class Example:
    """The example project a language's templates reuse."""

    name: str
    """Its folder under `examples/`."""
    target: str
    """The target it implements: `fn init` for that target starts from it."""
    shared: tuple[str, ...]
    """Files every project of the language gets from it."""


EXAMPLES = {
    "rust": Example("discount-function", "cart.lines.discounts.generate.run", (".cargo",)),
    "c": Example(
        "delivery-customization",
        "cart.delivery-options.transform.run",
        ("src/json.c", "src/json.h"),
    ),
}
"""Per language, its example. The wheel carries `EXAMPLE_PARTS` of each (pyproject.toml)."""

EXAMPLE_PARTS = ("src", "fixtures", "input.graphql", ".cargo")
"""What of an example a project starting from it gets (the module and build output
are not copied)."""


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
    example = EXAMPLES[language]
    example_dir = _example_dir(example.name)
    starter = "example" if target == example.target else "generic"
    # (what to copy, the folder its paths are relative to)
    sources = [(lang_dir / "base", lang_dir / "base")]
    if starter == "example":
        sources += [(example_dir / part, example_dir) for part in EXAMPLE_PARTS]
    else:
        sources += [(example_dir / shared, example_dir) for shared in example.shared]
        sources.append((lang_dir / "generic", lang_dir / "generic"))
    replacements = {
        "__CARTWHEEL_NAME_TOML__": json.dumps(name, ensure_ascii=False),
        "__CARTWHEEL_NAME__": name,
        "__CARTWHEEL_HANDLE__": handle,
        "__CARTWHEEL_TARGET__": target,
        "__CARTWHEEL_OWNER__": owner,
    }
    written: list[Path] = []
    for source, relative_to in sources:
        if not source.exists():
            continue  # a part this example does not have (C has no .cargo/)
        paths = [source] if source.is_file() else sorted(source.rglob("*"))
        for path in paths:
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            out = dest / path.relative_to(relative_to)
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


def _example_dir(name: str) -> Path:
    """Example `name`'s sources: carried in the wheel, else in the source checkout this
    package runs from (an editable install). Raises `InitError` (INIT_TEMPLATES_MISSING)
    for an installation that has neither."""
    for root in (TEMPLATES_DIR / "examples", TEMPLATES_DIR.parents[1] / "examples"):
        if (root / name / "src").is_dir():
            return root / name
    raise InitError(
        f"The sources of the example {name!r} are missing from this installation of "
        "Cartwheel; reinstall it (the wheel carries them under functions_sdk/templates/).",
        code="INIT_TEMPLATES_MISSING",
    )
