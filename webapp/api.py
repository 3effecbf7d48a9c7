"""The flask-smorest Blueprint every API module uses, with a JSON parser that never 500s, and
the app's JSON provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import flask
import flask_smorest
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields, missing
from webargs.flaskparser import FlaskParser


class JsonParser(FlaskParser):
    """webargs' parser, with every undecodable body treated as malformed JSON (400).

    Python's json raises RecursionError for input nested thousands deep and a plain ValueError
    for integers of thousands of digits; webargs only turns ``JSONDecodeError`` into a 400.
    """

    def _raw_load_json(self, req: flask.Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as exc:
            # (webargs reads a JSONDecodeError with an empty document as "no body at all".)
            raise json.JSONDecodeError(str(exc), req.get_data(as_text=True) or " ", 0) from exc


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, with the encoder of its compact answers made once, not per answer.

    Flask hands json.dumps its options (a default function, sorted keys, compact separators) for
    every JSON answer, and json.dumps builds a new encoder whenever it is given options: about
    half the cost of encoding a logged call. The text is the same, byte for byte.
    """

    def __init__(self, app: flask.Flask) -> None:
        super().__init__(app)
        self._encoders: dict[tuple[Any, ...], json.JSONEncoder] = {}

    def response(self, *args: Any, **kwargs: Any) -> flask.Response:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)  # indented: not worth keeping
        obj = self._prepare_response_obj(args, kwargs)
        # (The options are read on each answer: they are plain attributes a caller may change.)
        options = (self.default, self.ensure_ascii, self.sort_keys)
        encoder = self._encoders.get(options)
        if encoder is None:
            default, ensure_ascii, sort_keys = options
            encoder = self._encoders[options] = json.JSONEncoder(
                default=default,
                ensure_ascii=ensure_ascii,
                sort_keys=sort_keys,
                separators=(",", ":"),
            )
        return self._app.response_class(f"{encoder.encode(obj)}\n", mimetype=self.mimetype)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with ``JsonParser`` for request bodies."""

    ARGUMENTS_PARSER = JsonParser()


class _NotCopiedError(Exception):
    """A value ``quick_dump`` does not copy: marshmallow's own ``dump`` answers instead."""


# A field's plan: (output key, attribute, kind, the nested schema's plan for nested kinds).
_Plan = list[tuple[str, str, str, Any]]


def _field_kind(name: str, field: fields.Field) -> tuple[str, Any]:
    kind = type(field)
    if kind is fields.String:
        return "str", None
    if kind in (fields.DateTime, fields.AwareDateTime) and field.format == "iso":
        return "datetime", None
    if kind is fields.Date and field.format in (None, "iso"):
        return "date", None
    if kind is fields.Integer and not field.as_string:
        return "int", None
    if kind is fields.Boolean:
        return "bool", None
    if kind is fields.Nested and not field.many and isinstance(field.nested, type | Schema):
        return "nested", _plan(field.schema)
    if kind is fields.List:
        inner_kind, inner = _field_kind(name, field.inner)
        if inner_kind == "str":
            return "list_str", None
        if inner_kind == "nested":
            return "list_nested", inner
    raise TypeError(f"{name}: quick_dump cannot dump a {kind.__name__} field")


def _plan(schema: Schema) -> _Plan:
    if schema.many or any(schema._hooks.values()) or schema.only or schema.exclude:
        raise TypeError(f"{type(schema).__name__}: quick_dump takes schemas without hooks")
    plan: _Plan = []
    for name, field in schema.dump_fields.items():
        if field.dump_default is not missing:
            raise TypeError(f"{name}: quick_dump cannot fill in dump defaults")
        kind, nested = _field_kind(name, field)
        key = name if field.data_key is None else field.data_key
        plan.append((key, field.attribute or name, kind, nested))
    return plan


def _copy(plan: _Plan, obj: Any) -> dict[str, Any]:
    if type(obj) is not dict:
        raise _NotCopiedError
    out: dict[str, Any] = {}
    for key, attr, kind, nested in plan:
        if attr not in obj:
            continue
        value = obj[attr]
        if value is None:
            out[key] = None
        elif kind == "str":
            if type(value) is not str:
                raise _NotCopiedError
            out[key] = value
        elif kind == "datetime":
            if type(value) is not datetime:
                raise _NotCopiedError
            out[key] = value.isoformat()
        elif kind == "int":
            if type(value) is not int:
                raise _NotCopiedError
            out[key] = value
        elif kind == "bool":
            if type(value) is not bool:
                raise _NotCopiedError
            out[key] = value
        elif kind == "date":
            if type(value) is not date:
                raise _NotCopiedError
            out[key] = value.isoformat()
        elif kind == "nested":
            out[key] = _copy(nested, value)
        elif type(value) is not list:
            raise _NotCopiedError
        elif kind == "list_str":
            if any(type(v) is not str for v in value):
                raise _NotCopiedError
            out[key] = list(value)
        else:  # list_nested
            out[key] = [_copy(nested, v) for v in value]
    return out


def quick_dump(schema: Schema) -> Schema:
    """Give ``schema`` (an instance) a faster ``dump`` for plain dicts, with the same output.

    For the hot path (logging a call) and the big answers (today's list, sync pages): for a
    2,000-client rep, marshmallow's per-field machinery was a third of GET /today. Fields may be
    ``String``, ISO ``DateTime``/``Date``, ``Integer``, ``Boolean``, ``Nested`` and ``List`` of
    strings or of nested schemas; any other field is refused here, at start-up. Values are
    copied as marshmallow dumps them (a ``datetime`` with ``isoformat()``, None as None, missing
    keys left out); where any value in the answer has another type than the field expects, the
    whole answer goes to marshmallow's own ``dump``. The schema, and so the OpenAPI document, is
    unchanged: only this instance's ``dump`` is replaced.
    """
    plan = _plan(schema)
    slow: Callable[..., Any] = schema.dump

    def dump(obj: Any, *, many: bool | None = None) -> Any:
        if many:
            return slow(obj, many=many)
        try:
            return _copy(plan, obj)
        except _NotCopiedError:
            return slow(obj)

    schema.dump = dump  # type: ignore[method-assign]
    return schema
