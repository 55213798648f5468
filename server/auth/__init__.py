"""API keys, limits and budgets."""

from server.auth.access import ANONYMOUS_ID, AccessControl, Caller
from server.auth.keys import ApiKey, KeyFileError, KeyRing, hash_key, new_key

__all__ = [
    "ANONYMOUS_ID",
    "AccessControl",
    "ApiKey",
    "Caller",
    "KeyFileError",
    "KeyRing",
    "hash_key",
    "new_key",
]
