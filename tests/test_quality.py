"""The package stays typed (mypy --strict) and lint-clean (ruff): checked like any other promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ruff and mypy run as subprocesses

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([str(BIN / "ruff"), "check", "jwt_wsgi", "tests", "examples", "bench"], id="ruff"),
        pytest.param([str(BIN / "mypy")], id="mypy-strict"),
    ],
)
def test_static_checks(argv):
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
