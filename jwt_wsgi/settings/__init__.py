"""Every option, as one frozen keyword-only dataclass, validated once at construction.

One job per module, each importing only those listed before it (and never the middleware, keys,
tokens or stores):

- :mod:`.loading`: ``package.module:attribute`` imports and template text (shared with the
  sign-in page and ``jwt-wsgi serve``);
- :mod:`.convert`: option values (text, lists, numbers) -> typed values: durations, rates,
  secrets, lists, the read-only :class:`FrozenMap`;
- :mod:`.strength`: is a shared secret strong enough;
- :mod:`.federation`: ``keys`` and ``providers`` entries (:class:`KeySpec`, :class:`Provider`);
- :mod:`.validate`: the checks across options;
- :mod:`.model`: the :class:`Settings` dataclass and how it is built.

Everything importable from ``jwt_wsgi.settings`` before it became a package still is.
"""

from .convert import ERROR_FORMATS, FrozenMap, RateLimit, parse_duration
from .federation import KeySpec, Provider
from .model import ACCESS_TOKEN_FORMATS, PATH_OPTIONS, SECRET_OPTIONS, Settings
from .validate import ENV_PREFIX, MAX_LEEWAY, MAX_REFRESH_REUSE_INTERVAL, TOKEN_SOURCES

__all__ = ["ACCESS_TOKEN_FORMATS", "ENV_PREFIX", "ERROR_FORMATS", "MAX_LEEWAY", "MAX_REFRESH_REUSE_INTERVAL",
           "PATH_OPTIONS", "SECRET_OPTIONS", "TOKEN_SOURCES", "FrozenMap", "KeySpec", "Provider", "RateLimit",
           "Settings", "parse_duration"]
