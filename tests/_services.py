"""Skips that cannot hide a gap: in CI (``REQUIRE_TEST_SERVICES=1``, set by ``.ci/run``)
a missing server or browser is a failure, locally it is a skip with the reason."""

from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("REQUIRE_TEST_SERVICES", "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (in CI) because a real part the test needs is missing."""
    if REQUIRED:
        pytest.fail(f"required for this run but missing: {reason}", pytrace=False)
    pytest.skip(reason)
