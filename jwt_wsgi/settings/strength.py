"""Is a shared secret strong enough to sign with: long enough for its algorithm, and not a
well-known or patterned value (threat model §2.6)."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..jose import HMAC_ALGORITHMS

# Values that appear in tutorials, README files and the article this project grew from.
# They are refused even when long enough: an attacker tries them first (threat model §2.6).
_KNOWN_WEAK_SECRETS = {
    "secret", "changeme", "change-me", "password", "your-256-bit-secret", "your-secret-key",
    "secret-key", "secretkey", "supersecret", "super-secret", "jwt-secret", "mysecretkey",
    "thisismyflasksecretkey", "thisissecret", "this-is-a-secret", "test", "key",
}


def _repetitive(secret: bytes) -> bool:
    """A pattern, not randomness: ``0123456789ABCDEF0123...``, ``abcabc...`` (threat model §2.6).

    Random secrets of 32+ characters repeat hardly any 4-character sequence; these repeat most.
    """
    grams = [secret[i:i + 4] for i in range(len(secret) - 3)]
    return len(set(grams)) < len(grams) * 0.75


def check_secret(option: str, alg: str, secret: bytes, allow_weak: bool, where: str = "") -> None:
    """Refuse a secret shorter than ``alg`` needs (32/48/64 bytes), well known or low in entropy,
    unless ``allow_weak``. The message never quotes the secret."""
    need = HMAC_ALGORITHMS[alg]
    if allow_weak:
        return
    if len(secret) < need:
        raise ConfigurationError(
            option,
            f"{where}{alg} needs a secret of at least {need} bytes, got {len(secret)}; "
            "generate one with `python -c \"import secrets; print(secrets.token_urlsafe(48))\"`",
        )
    text = secret.decode("utf-8", "replace").strip().lower()
    if text in _KNOWN_WEAK_SECRETS or len(set(secret)) < 8 or _repetitive(secret):
        raise ConfigurationError(option, f"{where}is a well-known or low-entropy value; generate a random one")
