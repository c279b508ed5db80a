"""The wheel carries what an installed Cartwheel needs besides its Python modules: the
Alembic migrations (`cartwheel db upgrade`) and the example sources `cartwheel fn init`
starts from (`functions_sdk.templates`, pyproject.toml's force-include)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cartwheel.db import MIGRATIONS_DIR
from functions_sdk.templates import EXAMPLE_PARTS, EXAMPLES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("cartwheel-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


@pytest.mark.slow
def test_the_wheel_ships_the_migrations(wheel_names: set[str]) -> None:
    expected = {
        "cartwheel/" + path.relative_to(MIGRATIONS_DIR.parent).as_posix()
        for path in _files(MIGRATIONS_DIR)
    }
    assert {"cartwheel/migrations/env.py", "cartwheel/migrations/script.py.mako"} <= expected
    assert any(name.startswith("cartwheel/migrations/versions/0001_") for name in expected)
    assert expected <= wheel_names


@pytest.mark.slow
@pytest.mark.parametrize("language", sorted(EXAMPLES))
def test_the_wheel_ships_the_example_sources_init_starts_from(
    language: str, wheel_names: set[str]
) -> None:
    example = ROOT / "examples" / EXAMPLES[language].name
    expected = set()
    for part in EXAMPLE_PARTS:
        source = example / part
        for path in [source] if source.is_file() else _files(source) if source.exists() else []:
            expected.add(
                f"functions_sdk/templates/examples/{example.name}/"
                + (path.relative_to(example).as_posix())
            )
    assert any("/src/" in name for name in expected)
    assert any("/fixtures/" in name for name in expected)
    assert expected <= wheel_names
    # Only the sources: no module, no build output.
    carried = {
        n for n in wheel_names if n.startswith(f"functions_sdk/templates/examples/{example.name}/")
    }
    assert carried == expected
