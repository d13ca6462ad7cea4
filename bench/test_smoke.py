"""Smoke tests for the benchmark harness itself: the commands run and write well-formed results.

They assert no timing (issue 7: the benchmark reports, tests check behaviour). ``make test``
collects them (``testpaths``); ``.venv/bin/python -m pytest bench`` runs only these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._services import unavailable

pytestmark = pytest.mark.slow  # each test runs the benchmark in a subprocess

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def test_quick_bench_runs_and_reports_every_target(tmp_path: Path) -> None:
    out = _run("-m", "bench", "--quick", "--json", str(tmp_path / "r.json"), "--svg", str(tmp_path / "r.svg"),
               timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert [t["id"] for t in results["targets"]] == [
        "repeated", "first_seen", "unprotected", "missing_token", "vs_fje_first_seen", "vs_fje_repeated"]
    assert all(t["result"] in ("PASS", "MISS") for t in results["targets"]), results["targets"]
    for case_id in ("bare", "mw_unprotected", "mw_missing", "mw_bad_signature", "mw_first", "mw_repeat",
                    "jwt_decode", "flask_bare", "flask_article", "flask_fje_first", "flask_fje_repeat",
                    "flask_mw_first", "flask_mw_repeat"):
        assert "error" not in results["cases"][case_id], results["cases"][case_id]
        assert len(results["cases"][case_id]["samples_us"]) == results["rounds"]
    assert "targets PASS" in out.stdout
    svg = (tmp_path / "r.svg").read_text()
    assert svg.startswith("<?xml") and svg.rstrip().endswith("</svg>")


def test_quick_bench_with_a_filter(tmp_path: Path) -> None:
    out = _run("-m", "bench", "--quick", "--no-redis", "--cases", "store_*", "--json", str(tmp_path / "r.json"),
               "--svg", str(tmp_path / "r.svg"), timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert {"bare", "mw_repeat", "store_sqlite"} <= set(results["cases"])
    assert results["cases"]["store_redis"]["error"].startswith("n/a")


@pytest.mark.slow
def test_quick_http_bench_runs_and_leaves_no_server(tmp_path: Path) -> None:
    out = _run("-m", "bench.http", "--quick", "--json", str(tmp_path / "h.json"), timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "h.json").read_text())
    assert [c["worker_class"] for c in results["classes"]] == ["sync", "gthread"]
    for c in results["classes"]:
        assert c["median"]["wrapped"]["rps"] > 0 and c["median"]["bare"]["rps"] > 0
        assert {t["result"] for t in c["targets"]} <= {"PASS", "MISS"}
    # every gunicorn this run started is gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "bench.serve_app" not in ps


def _load_run(tmp_path: Path, store: str) -> dict[str, Any]:
    """A few seconds of ``python -m bench.load`` with one worker per host: its JSON results."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server not installed (Debian package redis-server)")
    out = _run("-m", "bench.load", "--duration", "6", "--workers", "1", "--clients", "2", "--stall", "2.5",
               "--down", "1", "--store", store, "--json", str(tmp_path / "load.json"), timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results: dict[str, Any] = json.loads((tmp_path / "load.json").read_text())
    assert results["total"]["wrong"] == 0, results["wrong_decisions"]
    # every phase ran, and each fault really happened: the store was out of reach for a while
    steady, stall, last = results["phases"]
    assert (steady["phase"], stall["phase"], last["phase"]) == ("steady", "stall", results["variant_id"])
    assert all(p["requests"] > 0 for p in results["phases"])
    assert steady["5xx"] == 0
    assert stall["503_in_outage"] > 0 and last["503_in_outage"] > 0
    assert results["epoch_kept"]
    assert not results["flows_broken"]
    assert results["workers"] and all(w["end_kb"] for w in results["workers"])
    assert "wrong decisions: 0" in out.stdout
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "bench.load:whoami" not in ps  # every host it started is gone
    return results


@pytest.mark.slow
def test_load_run_with_one_redis_restarts_it_and_decides_nothing_wrong(tmp_path: Path) -> None:
    results = _load_run(tmp_path, "redis")
    assert results["variant_id"] == "restart"


@pytest.mark.slow
def test_load_run_with_a_sentinel_fails_over_or_says_why_not(tmp_path: Path) -> None:
    from bench.load import sentinel_supported

    supported, _ = sentinel_supported()
    results = _load_run(tmp_path, "sentinel")
    if supported:
        assert results["variant_id"] == "failover"
        assert results["settings"]["store_url_shape"].startswith("redis+sentinel://")
    else:  # the installed jwt_wsgi has no Sentinel support: the run falls back, and says so
        assert results["variant_id"] == "restart"
        assert "refuses redis+sentinel://" in results["variant"]
