"""The flask-smorest Blueprint every API module uses, with a JSON parser that never 500s."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import flask
import flask_smorest
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
