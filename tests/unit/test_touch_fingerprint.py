"""A touch's fingerprint (stored with it, compared on every replay) never changes."""

from __future__ import annotations

from datetime import UTC, datetime

from webapp.services.touches import fingerprint


def test_the_fingerprint_of_a_body_never_changes():
    """Each touch stores the fingerprint of its body; a replay is compared with it, so the same
    body must give the same digest in every version (these were made before any speed-up)."""
    sent = {
        "id": "5b7c1a52-2f0e-4c1e-9d36-3a8f0f3f1a01",
        "client_id": "0d7f3c7e-96f4-4c8e-8f40-6d0b2f0c9e11",
        "outcome": "left_message",
        "note": "Café — call back",
        "happened_at": datetime(2026, 3, 1, 14, 5, 9, 120000, tzinfo=UTC),
        "callback_at": None,
        "callback_id": "9a1f2a33-5b2c-4c55-a6f3-0b4b1b7c2d99",
    }
    user = "4f6c2f7e-1b1a-4c1f-9a0e-2e7b8d9c0a12"
    assert fingerprint(user, sent) == (
        "09c139fefebd03325ce40246a9561be8c0f3e5ef9f542955d196f4354d8da7c6"
    )
    assert fingerprint("u", {"id": "x", "client_id": "y", "outcome": "reached"}) == (
        "d18e52f5cce0065f11561c0e23cd56cb9330282673af0cb6efdf45f78438e8b8"
    )
