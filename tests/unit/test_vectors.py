"""Run the shared vectors in tests/vectors/scheduling.json against webapp.scheduling.

The phone app runs the same file with node's test runner, so the file is the spec both sides must
meet. Its expected values were worked out by hand from the rules, not pasted from this module's
output. Timestamps are compared as instants, never as strings, so "Z", "+00:00" and local offsets
are all equivalent.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from webapp.scheduling import (
    CallbackFacts,
    ClientFacts,
    build_today,
    parse_hhmm,
    quick_picks,
    suggest_callback,
)

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "scheduling.json"
VECTORS: dict[str, list[dict[str, Any]]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def cases(section: str) -> list[Any]:
    """Parametrize one section, each case named by its description."""
    return [pytest.param(case, id=case["description"]) for case in VECTORS[section]]


def instant(value: str) -> datetime:
    """Parse an ISO 8601 timestamp, insisting on an offset as API.md does."""
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"vector timestamp without an offset: {value!r}"
    return parsed


def optional_instant(value: str | None) -> datetime | None:
    return None if value is None else instant(value)


def test_file_shape() -> None:
    """The file keeps the agreed top-level keys, enough cases, and unique descriptions."""
    assert set(VECTORS) == {"suggest_callback", "quick_picks", "today"}
    descriptions = [case["description"] for section in VECTORS.values() for case in section]
    assert len(descriptions) >= 40
    assert len(descriptions) == len(set(descriptions)), "descriptions double as test ids"


@pytest.mark.parametrize("case", cases("suggest_callback"))
def test_suggest_callback(case: dict[str, Any]) -> None:
    got = suggest_callback(
        case["outcome"],
        instant(case["now"]),
        ZoneInfo(case["timezone"]),
        parse_hhmm(case["call_time"]),
        case["cadence_days"],
    )
    assert got == optional_instant(case["expected"])


@pytest.mark.parametrize("case", cases("quick_picks"))
def test_quick_picks(case: dict[str, Any]) -> None:
    got = quick_picks(
        instant(case["now"]), ZoneInfo(case["timezone"]), parse_hhmm(case["call_time"])
    )
    assert [(p.key, p.label, p.day, p.due_at) for p in got] == [
        (e["key"], e["label"], date.fromisoformat(e["day"]), instant(e["due_at"]))
        for e in case["expected"]
    ]


@pytest.mark.parametrize("case", cases("today"))
def test_today(case: dict[str, Any]) -> None:
    clients = [
        ClientFacts(
            id=c["id"],
            created_at=instant(c["created_at"]),
            last_touch_at=optional_instant(c["last_touch_at"]),
            cadence_days=c["cadence_days"],
            has_open_callback=c["has_open_callback"],
        )
        for c in case["clients"]
    ]
    callbacks = [
        CallbackFacts(id=c["id"], client_id=c["client_id"], due_at=instant(c["due_at"]))
        for c in case["callbacks"]
    ]
    got = build_today(
        instant(case["now"]),
        ZoneInfo(case["timezone"]),
        clients,
        callbacks,
        reconnect_after_days=case["reconnect_after_days"],
        call_time=parse_hhmm(case["call_time"]),
        reconnect_limit=case["reconnect_limit"],
    )
    assert [
        (i.client_id, i.reason, i.due_at, i.overdue, i.days_overdue, i.callback_id) for i in got
    ] == [
        (
            e["client_id"],
            e["reason"],
            optional_instant(e["due_at"]),
            e["overdue"],
            e["days_overdue"],
            e["callback_id"],
        )
        for e in case["expected"]
    ]
