"""The flask-smorest Blueprint every API module uses, with a JSON parser that never 500s, and
the app's JSON provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
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


def quick_dump(schema: Schema) -> Schema:
    """Give ``schema`` (an instance) a faster ``dump`` for flat dicts, with the same output.

    For the hot path (logging a call): marshmallow's per-field machinery was about 5% of the
    request, to turn eight values into strings. A schema of plain ``String`` fields and ISO
    ``DateTime`` fields dumps a ``str`` as itself, a ``datetime`` with ``isoformat()`` and None
    as None, leaving out missing keys, as marshmallow does; any other field is refused here, at
    start-up, and any value of another type goes to marshmallow's own ``dump``. The schema, and
    so the OpenAPI document, is unchanged: only this instance's ``dump`` is replaced.
    """
    if schema.many or any(schema._hooks.values()):
        raise TypeError(f"{type(schema).__name__}: quick_dump takes flat schemas without hooks")
    plan: list[tuple[str, str, type]] = []
    for name, field in schema.dump_fields.items():
        if field.dump_default is not missing:
            raise TypeError(f"{name}: quick_dump cannot fill in dump defaults")
        if type(field) is fields.String:
            kind: type = str
        elif type(field) in (fields.DateTime, fields.AwareDateTime) and field.format == "iso":
            kind = datetime
        else:
            raise TypeError(f"{name}: quick_dump cannot dump a {type(field).__name__} field")
        key = name if field.data_key is None else field.data_key
        plan.append((key, field.attribute or name, kind))
    slow: Callable[..., Any] = schema.dump

    def dump(obj: Any, *, many: bool | None = None) -> Any:
        if many or type(obj) is not dict:
            return slow(obj, many=many)
        out: dict[str, Any] = {}
        for key, attr, kind in plan:
            if attr not in obj:
                continue
            value = obj[attr]
            if value is None:
                out[key] = None
            elif type(value) is not kind:
                return slow(obj)
            else:
                out[key] = value if kind is str else value.isoformat()
        return out

    schema.dump = dump  # type: ignore[method-assign]
    return schema
