"""Make the scale-out harness (deploy/harness/scaleout.py, a script) and the shared
readers of deploy/ (deploy_files.py) importable by these tests."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS_DIR = HERE.parents[1] / "deploy" / "harness"
for path in (HARNESS_DIR, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
