"""The import's own fast versions of shared rules agree with the rules themselves."""

from __future__ import annotations

import uuid

from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError, validate

from webapp.services.clients import clean_fields
from webapp.services.imports import _is_email, _new_ids, _split_tags, _unique_tags

_PIECES = [*"ab.-_+@[]\"\\ 1é'!#", "xn--", ".com", "example", "localhost", "255"]
_EMAILISH = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


def _marshmallow_says(value: str) -> bool:
    try:
        validate.Email()(value)
    except ValidationError:
        return False
    return True


@settings(max_examples=1000, deadline=None)
@given(value=st.one_of(_EMAILISH, st.emails().map(str), st.text(max_size=30)))
@example("a@localhost")
@example('"quoted person"@example.com')
@example("a@[127.0.0.1]")
@example("a@@example.com")
@example("@example.com")
@example("ann@")
@example("zoë@café.example")
def test_is_email_agrees_with_marshmallow(value):
    assert _is_email(value) == _marshmallow_says(value), value


def test_new_ids_are_random_uuid4_text():
    ids = _new_ids(2000)
    assert len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


_TAG = st.text(alphabet=st.sampled_from(list("aAbB ßSs\tİi")), max_size=6)


@settings(max_examples=500, deadline=None)
@given(tags=st.lists(_TAG, max_size=6))
def test_unique_tags_agree_with_the_api(tags):
    assert list(_unique_tags(tags)) == clean_fields({"tags": tags}, "US")["tags"]


def test_split_tags_shapes():
    assert _split_tags("a, b;c ::: d") == ("a", "b", "c", "d")
    assert _split_tags('"x, y", z') == ("x, y", "z")
    assert _split_tags("* myContacts ::: Clients") == ("Clients",)
    assert _split_tags("") == ()
