"""What an option may name instead of holding it: an object as ``package.module:attribute``, and a
template as its text or as the path of a file.

Shared by the options (``authenticate``, ``user_loader``, ``error_format``, ``login_template``),
the sign-in page and ``jwt-wsgi serve`` (its ``MODULE:APP``), so all read these the same way.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError


def is_template_text(value: str) -> bool:
    """``login_template`` may hold the template itself rather than a file path."""
    return "$" in value or "<" in value


def import_object(option: str, target: str, *, default_attr: str | None = None, what: str | None = "callable") -> Any:
    """``package.module:attribute`` (the attribute may be dotted) -> that object, which must be callable
    (unless ``what`` is ``None``: any object).

    :param option: the option (or argument) named in errors.
    :param default_attr: the attribute when ``target`` names none; without it, one is required.
    :param what: what the object must be, for the error when it is not callable.
    :raises ConfigurationError: malformed, not importable, no such attribute, or not callable.
    """
    module_name, _, attr = target.partition(":")
    attr = attr or default_attr or ""
    if not attr or not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigurationError(option, f"expected 'package.module:attribute', got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(option, f"cannot import {target!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(option, f"cannot import {target!r}: {module_name!r} has no attribute {attr!r}"
                                     ) from None
    if what is not None and not callable(obj):
        raise ConfigurationError(option, f"{target!r} is not {what}")
    return obj
