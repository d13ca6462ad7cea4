"""The CI guarantee itself: with REQUIRE_TEST_SERVICES=1 a skip is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs pytest in a subprocess

ROOT = Path(__file__).resolve().parent.parent

PROBE = '''
import pytest
from tests._services import unavailable

def test_plain_skip():
    pytest.skip("some server is missing")

def test_service_skip():
    unavailable("redis-server not installed")

@pytest.mark.xfail(reason="a known gap")
def test_expected_failure():
    raise AssertionError("not there yet")
'''


@pytest.mark.parametrize(("required", "expected"), [("1", "3 failed"), ("", "2 skipped, 1 xfailed")])
def test_skips_fail_when_services_are_required(required, expected):
    probe = ROOT / "tests" / f"test_zz_probe_{os.getpid()}_{required or 'off'}.py"
    probe.write_text(PROBE)
    try:
        env = {**os.environ, "REQUIRE_TEST_SERVICES": required}
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    assert expected in result.stdout, result.stdout + result.stderr
