"""``api.JSONProvider`` answers the very bytes Flask's own provider answers."""

from __future__ import annotations

from decimal import Decimal

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp import Touchbase
from webapp.api import JSONProvider

APP = Touchbase(__name__)  # (the app class alone: no settings or instance folder needed)

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: json writes them as Flask's does
    st.text(),
    st.uuids(),
    st.datetimes(),
    st.dates(),
    st.decimals(allow_nan=False).map(Decimal),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _answer(provider: DefaultJSONProvider, value: object) -> tuple[bytes, str]:
    with APP.app_context():
        resp = provider.response(value)
    return resp.get_data(), resp.mimetype


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values)
def test_answers_equal_flasks(value):
    assert _answer(APP.json, value) == _answer(DefaultJSONProvider(APP), value)


def test_the_app_uses_it_and_follows_its_options():
    assert isinstance(APP.json, JSONProvider)
    assert not isinstance(Flask(__name__).json, JSONProvider)
    ours, flasks = JSONProvider(APP), DefaultJSONProvider(APP)
    value = {"b": "é", "a": [1, 2]}
    for options in ({"sort_keys": False}, {"ensure_ascii": False}, {"compact": False}):
        for provider in (ours, flasks):
            for name, setting in options.items():
                setattr(provider, name, setting)
        assert _answer(ours, value) == _answer(flasks, value), options
