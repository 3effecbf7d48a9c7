"""``api.quick_dump`` answers exactly what marshmallow's ``dump`` answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, post_dump

from webapp import api
from webapp.api import quick_dump
from webapp.schemas import ClientListSchema, ClientSchema, TodaySchema, TouchSchema

_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=13)), timezone(timedelta(hours=-3, minutes=-30)), None]
)
_values = st.one_of(
    st.none(),
    st.text(),
    st.datetimes(timezones=_zones),
    st.integers(),  # not what these fields hold: marshmallow's own dump must answer
    st.uuids(),
)
_keys = [*TouchSchema().dump_fields, "body_hash", "user_id"]
_objects = st.dictionaries(st.sampled_from(_keys), _values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_objects)
def test_quick_dump_equals_marshmallow(obj):
    def outcome(schema):
        try:
            return schema.dump(obj)
        except Exception as exc:  # marshmallow fails on some wrong types: so must the copy
            return type(exc)

    assert outcome(quick_dump(TouchSchema())) == outcome(TouchSchema())


def test_a_whole_touch():
    now = datetime(2026, 11, 23, 13, 5, 7, 123456, tzinfo=UTC)
    touch = {
        "id": "7d0f1f4e-8a5b-4c8e-9b61-1f2f3a4b5c6d",
        "client_id": "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9",
        "outcome": "reached",
        "note": None,
        "happened_at": now,
        "callback_at": now + timedelta(days=1),
        "callback_id": None,
        "created_at": now.replace(microsecond=0),
    }
    quick = quick_dump(TouchSchema()).dump(touch)
    assert quick == TouchSchema().dump(touch)
    assert quick["created_at"] == "2026-11-23T13:05:07+00:00"


def test_many_and_objects_go_to_marshmallow():
    touch = {"id": "a", "happened_at": datetime(2026, 1, 1, tzinfo=UTC)}
    schema = quick_dump(TouchSchema())
    assert schema.dump([touch], many=True) == TouchSchema(many=True).dump([touch])


class _WithNumber(Schema):
    n = fields.Float()


class _WithNestedNumber(Schema):
    inner = fields.Nested(_WithNumber)


class _WithHook(Schema):
    a = fields.String()

    @post_dump
    def _wrap(self, data, **_kwargs):
        return {"data": data}


@pytest.mark.parametrize(
    "schema",
    [
        _WithNumber(),
        _WithNestedNumber(),
        _WithHook(),
        TouchSchema(many=True),
        TodaySchema(only=["date"]),
    ],
)
def test_schemas_it_cannot_copy_are_refused_at_start_up(schema):
    with pytest.raises(TypeError):
        quick_dump(schema)


# Nested answers: clients (tags, an open callback), today's list, a page of clients. Values are
# mostly what the services give, with wrong types mixed in, which must go to marshmallow.
_any = st.one_of(
    st.none(), st.text(max_size=5), st.integers(), st.booleans(), st.datetimes(timezones=_zones)
)
_callbacks = st.one_of(
    st.none(),
    st.fixed_dictionaries({"id": st.text(max_size=5), "due_at": st.datetimes(timezones=_zones)}),
    _any,
)
_client = st.fixed_dictionaries(
    {
        "id": st.text(max_size=8),
        "name": st.text(max_size=8),
        "tags": st.one_of(st.lists(st.text(max_size=4), max_size=3), st.lists(_any, max_size=2)),
        "cadence_days": st.one_of(st.none(), st.integers(), st.booleans()),
        "created_at": st.datetimes(timezones=_zones),
        "archived_at": st.one_of(st.none(), st.datetimes(timezones=_zones)),
        "attempts_since_reached": st.one_of(st.integers(), _any),
        "open_callback": _callbacks,
    },
    optional={"phone": _any, "email": st.text(max_size=5), "extra": _any},
)
_item = st.fixed_dictionaries(
    {
        "client": _client,
        "reason": st.sampled_from(["callback", "cadence", "reconnect"]),
        "due_at": st.one_of(st.none(), st.datetimes(timezones=_zones)),
        "overdue": st.one_of(st.booleans(), _any),
        "days_overdue": st.integers(),
        "callback_id": st.one_of(st.none(), st.text(max_size=5)),
    }
)
_today = st.fixed_dictionaries(
    {
        "date": st.one_of(st.dates(), st.datetimes(), _any),
        "items": st.lists(_item, max_size=3),
        "done_today": st.integers(),
        "goal": st.integers(),
    }
)
_page = st.fixed_dictionaries(
    {"items": st.one_of(st.lists(_client, max_size=3), _any), "next_cursor": _any}
)


def _outcome(schema, obj):
    try:
        return schema.dump(obj)
    except Exception as exc:
        return type(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=st.one_of(_client, _callbacks))
def test_a_client_equals_marshmallow(obj):
    assert _outcome(quick_dump(ClientSchema()), obj) == _outcome(ClientSchema(), obj)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_today)
def test_todays_list_equals_marshmallow(obj):
    assert _outcome(quick_dump(TodaySchema()), obj) == _outcome(TodaySchema(), obj)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=_page)
def test_a_page_of_clients_equals_marshmallow(obj):
    assert _outcome(quick_dump(ClientListSchema()), obj) == _outcome(ClientListSchema(), obj)


def test_a_well_typed_answer_is_copied_not_sent_to_marshmallow():
    client = {
        "id": "c1",
        "name": "Dana",
        "tags": ["Tier A", "north"],
        "cadence_days": None,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "open_callback": {"id": "cb", "due_at": datetime(2026, 11, 24, 9, 0, tzinfo=UTC)},
        "attempts_since_reached": 2,
    }
    answer = {
        "date": date(2026, 11, 23),
        "items": [{"client": client, "reason": "callback", "overdue": True, "days_overdue": 0}],
        "done_today": 1,
        "goal": 8,
    }
    # (_copy raises where it would hand the answer to marshmallow.)
    assert api._copy(api._plan(TodaySchema()), answer) == TodaySchema().dump(answer)
