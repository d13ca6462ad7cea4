"""Repository-wide pytest hook: in CI no test may pass by skipping.

``.ci/run`` sets ``REQUIRE_TEST_SERVICES=1``. The suite's own skips already go through
``tests._services.unavailable()``, which fails in that mode; this hook is the backstop for any
other skip (a plugin, an import guard, a skip added later) and for an expected failure (``xfail``,
which pytest reports as a skip): it turns either into a failure that says what was missing.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

REQUIRED = os.environ.get("REQUIRE_TEST_SERVICES", "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRED and report.skipped:
        if hasattr(report, "wasxfail"):
            reason = f"expected to fail ({report.wasxfail or 'no reason given'})"
        else:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but REQUIRE_TEST_SERVICES=1 forbids skips here: {reason}"
