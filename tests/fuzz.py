"""The Hypothesis budget every property test runs with.

CI runs a fixed, reproducible budget. A longer fuzzing session for maintainers:
``FUZZ_EXAMPLES=50000 FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/security/test_properties.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ_RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")
BUDGET = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=not FUZZ_RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
