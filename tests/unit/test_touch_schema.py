"""``TouchCreateSchema.load``'s shortcut loads exactly what marshmallow loads, and refuses the rest.

Every body is loaded twice: through the schema (shortcut first) and through marshmallow's own
``Schema.load``. Both must give the same dict (same keys in the same order, values of the same
type and form) or the same errors.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import RAISE, Schema, ValidationError

from webapp.models import OUTCOMES
from webapp.schemas import TouchCreateSchema, _quick_touch

SCHEMA = TouchCreateSchema()
KEYS = ["id", "client_id", "outcome", "note", "happened_at", "callback_at", "callback_id"]

_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-3, minutes=-30)), None]
)
_uuid_text = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [
            str(u),
            str(u).upper(),
            u.hex,
            f"{{{u}}}",
            f"urn:uuid:{u}",
            f" {u}",
            str(u)[:-1],
            str(u) + "0",
            "+" + u.hex[1:],
            str(u).replace("-", "_"),
        ]
    )
)
_instant_text = st.one_of(
    st.datetimes(timezones=_zones).map(lambda d: d.isoformat()),
    st.datetimes(timezones=_zones).map(lambda d: d.isoformat(timespec="minutes")),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "2024-05-01T09:30:00Z",
            "2024-05-01",
            "2024-05-01T09:30:00",
            "1899-12-31T23:59:59+00:00",
            "1900-01-01T00:00:00+00:00",
            "1900-01-01T00:30:00+01:00",
            "2999-12-31T23:59:59Z",
            "3000-01-01T00:00:00Z",
            "2999-12-31T23:00:00-02:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "not a time",
            "",
        ]
    ),
)
_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    _uuid_text,
    _instant_text,
    st.sampled_from(OUTCOMES),
    st.uuids(),  # not JSON, but a Python caller may pass them: marshmallow takes them
    st.datetimes(timezones=_zones),
)
_good = {
    "id": st.uuids().map(str),
    "client_id": st.uuids().map(str),
    "outcome": st.sampled_from(OUTCOMES),
    "note": st.one_of(
        st.none(), st.text(), st.sampled_from(["x" * 10_000, "x" * 10_001, "é" * 10_000])
    ),
    "happened_at": _instant_text,
    "callback_at": st.one_of(st.none(), _instant_text),
    "callback_id": st.one_of(st.uuids().map(str), _uuid_text),
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly bodies a phone sends, each possibly bent: a key dropped, added or given any value."""
    body = {key: draw(_good[key]) for key in ("id", "client_id", "outcome")}
    for key in ("note", "happened_at", "callback_at", "callback_id"):
        if draw(st.booleans()):
            body[key] = draw(_good[key])
    for _ in range(draw(st.integers(0, 2))):
        change = draw(st.sampled_from(["drop", "any", "unknown"]))
        key = draw(st.sampled_from(KEYS))
        if change == "drop":
            body.pop(key, None)
        elif change == "any":
            body[key] = draw(_anything)
        else:
            body[draw(st.sampled_from(["extra", "ID", "user_id", ""]))] = draw(_anything)
    # The order keys arrive in must not matter either.
    return dict(draw(st.permutations(list(body.items()))))


def _loaded(load: Any) -> tuple[Any, ...]:
    try:
        result = load()
    except ValidationError as exc:
        return ("refused", exc.messages)
    return ("loaded", [(key, type(value), repr(value)) for key, value in result.items()])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(), unknown=st.sampled_from([None, RAISE]))
def test_shortcut_loads_and_refuses_like_marshmallow(body, unknown):
    kwargs = {"unknown": unknown} if unknown else {}
    ours = _loaded(lambda: SCHEMA.load(dict(body), **kwargs))
    theirs = _loaded(lambda: Schema.load(SCHEMA, dict(body), **kwargs))
    assert ours == theirs


def test_phone_bodies_take_the_shortcut():
    """The shapes the app sends (static/js/log.js) and the bench sends are loaded without
    marshmallow, as marshmallow would load them."""
    ids = {"id": str(uuid.uuid4()), "client_id": str(uuid.uuid4())}
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for body in (
        {**ids, "outcome": "no_answer"},
        {**ids, "outcome": "reached", "happened_at": now},
        {
            **ids,
            "outcome": "left_message",
            "happened_at": now,
            "callback_at": now,
            "callback_id": str(uuid.uuid4()),
        },
        {**ids, "outcome": "reached", "note": "Asked for a quote", "callback_at": None},
    ):
        quick = _quick_touch(body)
        assert quick is not None, body
        assert quick == Schema.load(SCHEMA, body)
        assert list(quick) == list(Schema.load(SCHEMA, body))


def test_odd_input_goes_to_marshmallow():
    ids = {"id": str(uuid.uuid4()), "client_id": str(uuid.uuid4())}
    for body in (
        {**ids, "outcome": "reached", "happened_at": "2024-05-01T09:30:00"},  # no offset
        {**ids, "outcome": "reached", "callback_id": str(uuid.uuid4())},  # no callback_at
        {**ids, "outcome": "reached", "happened_at": None},
        {**ids, "outcome": "reached", "extra": 1},
        {**ids, "outcome": "Reached"},
        {"id": ids["id"], "outcome": "reached"},
        {**ids, "outcome": "reached", "note": "x" * 10_001},
    ):
        assert _quick_touch(body) is None, body
    # A list body, or many=True, is marshmallow's to answer.
    assert SCHEMA.load([{**ids, "outcome": "reached"}], many=True)[0]["outcome"] == "reached"
