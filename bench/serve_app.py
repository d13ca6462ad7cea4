"""The two apps ``python -m bench.http`` serves with gunicorn: ``bare`` and ``wrapped``.

``wrapped`` is the same bare app behind :class:`jwt_wsgi.JWTMiddleware` protecting ``/api``,
with the secret (and store URL) handed over by the benchmark in environment variables.
"""

from __future__ import annotations

import os
from typing import Any

from bench.fixtures import bare_app

bare = bare_app


def _wrapped() -> Any:
    from jwt_wsgi import JWTMiddleware

    return JWTMiddleware(
        bare_app,
        secret=os.environ["BENCH_JWT_SECRET"],
        protect=["/api"],
        store=os.environ.get("BENCH_JWT_STORE", "memory://"),
    )


wrapped = _wrapped() if "BENCH_JWT_SECRET" in os.environ else None
