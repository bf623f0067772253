"""Telling a write that met something already there (a redelivery, another replica) from a real failure."""

from __future__ import annotations

from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

DUPLICATE_KEY = 11000
#: The most documents one read returns in its first reply: the batch's state comes back in one round trip.
ONE_REPLY = 100_000


def is_duplicate(exc: PyMongoError) -> bool:
    """Whether ``exc`` is only duplicate keys (any other write error is a real failure)."""
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        return bool(errors) and all(e.get("code") == DUPLICATE_KEY for e in errors)
    return False
