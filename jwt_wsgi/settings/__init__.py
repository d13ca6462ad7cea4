"""Every option, as one frozen keyword-only dataclass, validated once at construction."""

from .model import (
    ACCESS_TOKEN_FORMATS,
    ENV_PREFIX,
    ERROR_FORMATS,
    MAX_LEEWAY,
    MAX_REFRESH_REUSE_INTERVAL,
    PATH_OPTIONS,
    SECRET_OPTIONS,
    TOKEN_SOURCES,
    KeySpec,
    Provider,
    RateLimit,
    Settings,
    parse_duration,
)

__all__ = ["ACCESS_TOKEN_FORMATS", "ENV_PREFIX", "ERROR_FORMATS", "MAX_LEEWAY", "MAX_REFRESH_REUSE_INTERVAL",
           "PATH_OPTIONS", "SECRET_OPTIONS", "TOKEN_SOURCES", "KeySpec", "Provider", "RateLimit", "Settings",
           "parse_duration"]
