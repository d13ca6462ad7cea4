"""Paired rotating rounds: every round times every case once, in an order rotated by one each round.

On a shared, noisy machine absolute times drift by tens of percent within a minute. A case and its
baseline measured seconds apart in the same round see the same drift, so everything reported is
computed per round first (difference or ratio), and only then summarised by the median over rounds.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.fixtures import TokenPool, WSGIApp, call_once

_perf_ns = time.perf_counter_ns


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return _write


def _write(data: bytes) -> None:
    pass


def time_wsgi(app: WSGIApp, environs: list[dict[str, Any]]) -> int:
    """Nanoseconds for ``len(environs)`` requests, each one served, iterated and closed as a
    server would (PEP 3333); nothing else inside the timed loop."""
    start_response = _start_response
    t0 = _perf_ns()
    for environ in environs:
        result = app(environ, start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return _perf_ns() - t0


def time_func(func: Callable[[Any], Any], args: list[Any]) -> int:
    """Nanoseconds for ``func(arg)`` over ``args``."""
    t0 = _perf_ns()
    for arg in args:
        func(arg)
    return _perf_ns() - t0


@dataclass
class Case:
    """One thing to time.

    :param inputs: builds ``n`` fresh inputs (environs, or tokens for a function case) outside the
        timed loop; first-seen cases take them from ``pool`` so no token is ever seen twice.
    :param baseline: id of the case whose time is subtracted to get the overhead (the bare app
        the wrapped one is compared to); ``None`` for references such as ``jwt.decode``.
    :param expect: status line prefix a request must get (checked before timing).
    :param refs: cases the report compares this one with, kept when ``--cases`` filters.
    """

    id: str
    group: str
    label: str
    inputs: Callable[[int], list[Any]]
    app: WSGIApp | None = None
    func: Callable[[Any], Any] | None = None
    baseline: str | None = None
    expect: str | None = None
    pool: TokenPool | None = None
    refs: tuple[str, ...] = ()  # other cases its report rows are computed against
    n: int = 0
    samples_us: list[float] = field(default_factory=list)
    error: str | None = None

    def run(self, n: int) -> int:
        """Nanoseconds for ``n`` calls; inputs are built and garbage collected first, untimed.
        (The collector stays enabled while timing: its work is part of a request's cost.)"""
        args = self.inputs(n)
        gc.collect()
        return self.timed(args)

    def timed(self, args: list[Any]) -> int:
        if self.app is not None:
            return time_wsgi(self.app, args)
        assert self.func is not None
        return time_func(self.func, args)

    def check(self) -> None:
        """One request outside timing: the case must answer what it claims to measure."""
        if self.app is None:
            assert self.func is not None
            self.func(self.inputs(1)[0])
            return
        status, _body = call_once(self.app, self.inputs(1)[0])
        if self.expect is not None and not status.startswith(self.expect):
            raise RuntimeError(f"expected {self.expect}, got {status!r}")

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples_us)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_us)


def calibrate(case: Case, batch_ns: int, min_n: int, max_n: int) -> None:
    """Pick ``case.n`` so one batch takes about ``batch_ns``."""
    case.run(3)  # warm: imports, first-call caches, route tables
    n = 1
    while True:
        elapsed = max(case.run(n), 1)
        if elapsed >= batch_ns / 8 or n >= max_n:
            break
        n *= 2
    case.n = max(min_n, min(max_n, math.ceil(batch_ns * n / elapsed)))


def run_rounds(
    cases: Sequence[Case],
    rounds: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Time each case once per round, in an order rotated by one position every round."""
    active = [c for c in cases if c.error is None]
    for case in active:
        if case.pool is not None:
            case.pool.fill(case.n * rounds)  # mint every first-seen token before timing starts
    for r in range(rounds):
        shift = r % len(active) if active else 0
        for case in active[shift:] + active[:shift]:
            elapsed = case.run(case.n)
            case.samples_us.append(elapsed / case.n / 1000.0)
        if progress is not None:
            progress(r + 1, rounds)


# -- summaries ---------------------------------------------------------------------------------
def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values (NaN for none)."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def paired_diff(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-round ``a - b`` (both measured in the same round)."""
    return [x - y for x, y in zip(a, b, strict=True)]


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """Per-round ``num / den``; a non-positive denominator (noise ate the overhead) counts as
    an infinitely large ratio, which the median then shrugs off unless it happens often."""
    return [x / y if y > 0 else math.inf for x, y in zip(num, den, strict=True)]
