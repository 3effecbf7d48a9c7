"""The flask-smorest Blueprint every API module uses, with a JSON parser that never 500s."""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
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
