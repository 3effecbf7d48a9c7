"""A short memory of signatures already checked, so hot requests skip re-checking them.

Every API request carries the signed session cookie and, for writes, a signed CSRF token.
Verifying both (HMAC, base64, JSON, a new serializer each time) was about a fifth of the cost of
logging a call. The same phone sends the same cookie and token over and over, so the result of
a check is kept for a minute, keyed by the exact signed text: identical bytes verify identically.
The only thing a cache can change is *when* an expiry is noticed, and a minute is nothing
against a 60-day session.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

MISSING = object()


class RecentlyVerified:
    """A bounded map from a signed value to what verifying it gave, for ``ttl`` seconds."""

    def __init__(self, ttl: float = 60.0, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._seen: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable) -> Any:
        """The remembered result for ``key``, or ``MISSING``."""
        entry = self._seen.get(key)
        if entry is None or entry[0] < time.monotonic():
            return MISSING
        return entry[1]

    def put(self, key: Hashable, value: Any) -> None:
        """Remember ``value`` for ``key``; the whole memory is dropped when it is full."""
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[key] = (time.monotonic() + self.ttl, value)
