"""Benchmarks for jwt_wsgi (issue 7): ``python -m bench`` (in-process) and ``python -m bench.http``
(gunicorn on loopback). See ``bench/README.md``.

Only public APIs are used: :class:`jwt_wsgi.JWTMiddleware`, PyJWT, Flask, Flask-JWT-Extended and
gunicorn, so the same harness measures whatever the middleware does inside (a cache of verified
tokens, a different store) without changes.
"""
