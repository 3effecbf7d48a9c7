"""``api.quick_dump`` answers exactly what marshmallow's ``dump`` answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, post_dump

from webapp.api import quick_dump
from webapp.schemas import TouchSchema

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
    n = fields.Integer()


class _WithHook(Schema):
    a = fields.String()

    @post_dump
    def _wrap(self, data, **_kwargs):
        return {"data": data}


@pytest.mark.parametrize("schema", [_WithNumber(), _WithHook(), TouchSchema(many=True)])
def test_schemas_it_cannot_copy_are_refused_at_start_up(schema):
    with pytest.raises(TypeError):
        quick_dump(schema)
