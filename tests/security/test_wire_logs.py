"""After the wire tests (this module runs last): no worker crashed, no traceback was logged.

"Never a 500" includes "no worker crash": gunicorn logs ``Traceback`` for an unhandled
exception and boots a replacement worker after a crash or timeout.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("name", ["gunicorn-werkzeug", "gunicorn-webob"])
def test_gunicorn_logged_no_traceback_and_no_worker_crash(wire: Any, name: str) -> None:
    server = wire.gunicorns[name]
    assert server.process.poll() is None, server.log_tail()
    log = server.stderr_path.read_text(errors="replace") + server.stdout_path.read_text(errors="replace")
    assert "Traceback" not in log, server.log_tail(80)
    assert "[ERROR]" not in log and "[CRITICAL]" not in log, server.log_tail(80)
    assert "WORKER TIMEOUT" not in log and "was sent SIGKILL" not in log, server.log_tail(80)
    assert log.count("Booting worker with pid") == 2, "a worker died and was replaced\n" + server.log_tail(80)


@pytest.mark.parametrize("name", ["devserver-werkzeug", "devserver-webob"])
def test_dev_server_logged_no_error(wire: Any, name: str) -> None:
    # Werkzeug logs an application exception as "Error on request: <traceback>"; its own 4xx
    # answers to malformed requests (431 "Line too long") are logged as errors too and are fine.
    errors = [line for kind, line in wire.dev_servers[name].log_lines
              if kind == "error" and ("Error on request" in line or "Traceback" in line)]
    assert not errors, errors
