"""The wheel carries what an installed Cartwheel needs besides its Python modules: the
Alembic migrations (`cartwheel db upgrade`) and the example sources `cartwheel fn init`
starts from (`functions_sdk.templates`, pyproject.toml's force-include)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cartwheel.db import MIGRATIONS_DIR
from functions_sdk.templates import EXAMPLE_PARTS, EXAMPLES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("cartwheel-*.whl")
    return found


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
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


@pytest.mark.slow
def test_an_installed_wheel_migrates_and_scaffolds_outside_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    """The wheel's packages installed on their own (first on the path, so this checkout's
    editable install is not what runs) and used from a folder outside the repository."""
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = f"""
import sys
from pathlib import Path
import cartwheel, functions_sdk
assert Path(cartwheel.__file__).is_relative_to({str(site)!r}), cartwheel.__file__
assert Path(functions_sdk.__file__).is_relative_to({str(site)!r}), functions_sdk.__file__
from cartwheel.cli import main
sys.argv = ["cartwheel", "db", "upgrade", "--database-url", "sqlite:///{work}/c.db"]
try:
    main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
from functions_sdk.templates import create_project
made = create_project("VIP", "cart.lines.discounts.generate.run", "rust", Path("vip"))
assert made.starter == "example"
print(sorted(str(p.relative_to(made.root)) for p in made.files))
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "database at head" in ran.stdout
    made = work / "vip"
    example = ROOT / "examples" / "discount-function"
    for relative in ("src/discount.rs", "src/main.rs", ".cargo/config.toml", "input.graphql"):
        assert (made / relative).read_bytes() == (example / relative).read_bytes()
    assert (made / "Cargo.toml").is_file()
    assert (made / "fixtures" / "tier-reached.json").is_file()
