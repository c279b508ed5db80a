"""House rules about the layout that a stray file would silently break."""

from __future__ import annotations

import ast
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_platform_folder_is_not_a_package() -> None:
    # A package named `platform` would shadow the stdlib module of that name.
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert not (ROOT / "tests" / "platform").exists()
    assert platform.__file__ is not None
    assert "site-packages" not in platform.__file__
    assert hasattr(platform, "python_version")


def test_functions_sdk_never_imports_the_server() -> None:
    offenders = []
    for path in (ROOT / "functions_sdk").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] == "cartwheel"]
    assert offenders == []
