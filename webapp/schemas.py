"""Marshmallow schemas: the shapes of API.md, module-level instances, no permission rules.

Loading validates; dumping formats. Unknown fields are refused (marshmallow's default RAISE),
timestamps must carry an offset (``AwareDateTime``), integers are strict.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import available_timezones

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from .models import CALLBACK_STATUSES, OUTCOMES

TIMEZONES = frozenset(available_timezones())
HHMM = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="Use 24-hour time, like 09:00.")


def _timezone(value: str) -> None:
    if value not in TIMEZONES:
        raise ValidationError("Unknown time zone; use an IANA name like America/Chicago.")


# Instants far outside these bounds overflow Python's datetime once shifted into a rep's zone or
# moved by a cadence (a 500), so they are refused at the door.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> None:
    try:
        ok = _EARLIEST <= value.astimezone(UTC) < _LATEST
    except OverflowError:
        ok = False
    if not ok:
        raise ValidationError("Use a date between the years 1900 and 2999.")


def Instant(**kwargs: Any) -> fields.AwareDateTime:  # noqa: N802 (reads like a field class)
    """An ISO 8601 timestamp that must carry an offset (and lie between 1900 and 2999)."""
    return fields.AwareDateTime(format="iso", validate=_in_range, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: marshmallow's Boolean also takes "yes", 1 and "on"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class QuietHoursSchema(Schema):
    start = fields.String(required=True, validate=HHMM)
    end = fields.String(required=True, validate=HHMM)


class TiersSchema(Schema):
    A = fields.Integer(strict=True, validate=validate.Range(1, 3650))
    B = fields.Integer(strict=True, validate=validate.Range(1, 3650))
    C = fields.Integer(strict=True, validate=validate.Range(1, 3650))


class UserSchema(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    timezone = fields.String()
    daily_goal = fields.Integer()
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True)
    reconnect_after_days = fields.Integer()
    call_time = fields.String(metadata={"description": "Default time of day for callbacks"})
    tiers = fields.Nested(TiersSchema, metadata={"description": "Cadence in days per tier tag"})
    digest_time = fields.String(
        allow_none=True, metadata={"description": "Local time of the morning digest push, or null"}
    )
    weekly_push = fields.Boolean(metadata={"description": "Weekly summary push on Monday mornings"})
    streak_weekends = fields.Boolean(metadata={"description": "Weekends count toward the streak"})
    prompts = fields.List(
        fields.String(), metadata={"description": "Conversation prompts for clients with none"}
    )


class _StripEmail:
    """Phones' keyboards add a trailing space after an autocompleted email: drop it."""

    @pre_load
    def _strip_email(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip()}
        return data


class RegisterSchema(_StripEmail, Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(min=10, max=1024))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    timezone = fields.String(required=True, validate=_timezone)


class LoginSchema(_StripEmail, Schema):
    email = fields.String(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=validate.Length(max=1024))


class PasswordSchema(Schema):
    """The rep's password, asked again before something that cannot be undone."""

    password = fields.String(required=True, validate=validate.Length(max=1024))


class MeUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(max=200))
    timezone = fields.String(validate=_timezone)
    daily_goal = fields.Integer(strict=True, validate=validate.Range(1, 500))
    quiet_hours = fields.Nested(QuietHoursSchema, allow_none=True)
    reconnect_after_days = fields.Integer(strict=True, validate=validate.Range(1, 3650))
    call_time = fields.String(validate=HHMM)
    tiers = fields.Nested(TiersSchema)
    digest_time = fields.String(allow_none=True, validate=HHMM)
    weekly_push = StrictBoolean()
    streak_weekends = StrictBoolean()
    # null puts the built-in prompts back.
    prompts = fields.List(
        fields.String(validate=validate.Length(max=200)),
        allow_none=True,
        validate=validate.Length(min=1, max=20),
    )


class AuthResultSchema(Schema):
    user = fields.Nested(UserSchema)
    csrf_token = fields.String()


class CsrfSchema(Schema):
    csrf_token = fields.String()


_TEXT = validate.Length(max=10_000)


class ClientFieldsSchema(Schema):
    """The fields a rep edits; shared by create and update."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    phone = fields.String(allow_none=True, validate=validate.Length(max=64))
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    company = fields.String(allow_none=True, validate=validate.Length(max=200))
    notes = fields.String(allow_none=True, validate=_TEXT)
    talking_points = fields.String(allow_none=True, validate=_TEXT)
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=50)), validate=validate.Length(max=50)
    )
    cadence_days = fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, 3650))


class ClientCreateSchema(ClientFieldsSchema):
    id = fields.UUID()
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ClientUpdateSchema(ClientFieldsSchema):
    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Send at least one field to change.")


class OpenCallbackSchema(Schema):
    id = fields.String()
    due_at = Instant()


class ClientSchema(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    talking_points = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    cadence_days = fields.Integer(allow_none=True)
    created_at = Instant()
    updated_at = Instant()
    archived_at = Instant(allow_none=True)
    last_touch_at = Instant(allow_none=True)
    last_reached_at = Instant(allow_none=True)
    attempts_since_reached = fields.Integer()
    open_callback = fields.Nested(OpenCallbackSchema, allow_none=True)


class ListArgsSchema(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    cursor = fields.String(validate=validate.Length(max=1000))


class ClientListArgsSchema(ListArgsSchema):
    q = fields.String(validate=validate.Length(max=200))
    updated_since = Instant(
        metadata={"description": "Sync: clients changed since then, archived ones included"}
    )


class ClientListSchema(Schema):
    items = fields.List(fields.Nested(ClientSchema))
    next_cursor = fields.String(allow_none=True)


class TouchCreateSchema(Schema):
    id = fields.UUID(required=True)
    client_id = fields.UUID(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    note = fields.String(allow_none=True, validate=_TEXT)
    happened_at = Instant()
    callback_at = Instant(allow_none=True)
    callback_id = fields.UUID()

    @validates_schema
    def _callback_id_needs_time(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("callback_id") and not data.get("callback_at"):
            raise ValidationError("callback_id needs callback_at.", "callback_id")

    def load(
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: bool | Sequence[str] | None = None,
        unknown: str | None = None,
    ) -> Any:
        """marshmallow's ``load``, with a shortcut for a body that is plainly valid as sent.

        Logging a call is the hot path, and marshmallow's per-field machinery was a twentieth of
        it. ``_quick_touch`` loads a dict of known keys whose values are all valid into the very
        dict marshmallow makes; any other input (a missing or unknown key, a wrong type, a bad
        value) goes to marshmallow, so every error, and its wording, is marshmallow's own. Both
        paths are checked against each other in tests/unit/test_touch_schema.py.
        """
        if not (many or self.many or partial) and type(data) is dict:
            loaded = _quick_touch(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)


def _aware_instant(value: Any) -> datetime | None:
    """What ``Instant()`` loads ``value`` to, or None where it would refuse it."""
    if type(value) is not str:
        return None
    when = datetime.fromisoformat(value)  # (a ValueError: see _quick_touch)
    if when.tzinfo is None or when.utcoffset() is None:
        return None
    return when if _EARLIEST <= when.astimezone(UTC) < _LATEST else None


def _quick_touch(data: dict[str, Any]) -> dict[str, Any] | None:
    """``TouchCreateSchema().load(data)`` for a body it accepts as sent; None for any other.

    Each value is checked as its field would check it (types as JSON gives them: ``str`` for
    ids and instants), and the result keeps marshmallow's key order (the fields' order).
    """
    keys = data.keys()
    if not (_TOUCH_REQUIRED <= keys <= _TOUCH_FIELDS):
        return None
    out: dict[str, Any] = {}
    try:
        for key in _TOUCH_ORDER:
            if key not in data:
                continue
            value = data[key]
            if key in ("id", "client_id", "callback_id"):
                if type(value) is not str:
                    return None
                out[key] = uuid.UUID(value)
            elif key == "outcome":
                if type(value) is not str or value not in OUTCOMES:
                    return None
                out[key] = value
            elif key == "note":
                if value is not None and (type(value) is not str or len(value) > _TEXT.max):
                    return None
                out[key] = value
            elif value is None and key == "callback_at":
                out[key] = None
            else:  # happened_at, callback_at
                when = _aware_instant(value)
                if when is None:
                    return None
                out[key] = when
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None
    if out.get("callback_id") and not out.get("callback_at"):
        return None
    return out


_TOUCH_ORDER = tuple(TouchCreateSchema._declared_fields)
_TOUCH_FIELDS = frozenset(_TOUCH_ORDER)
_TOUCH_REQUIRED = frozenset(k for k, f in TouchCreateSchema._declared_fields.items() if f.required)


def _shape(field: fields.Field) -> tuple[Any, ...]:
    """What ``_quick_touch`` relies on about a field, to compare at start-up."""
    checks = tuple(
        ("OneOf", tuple(v.choices))
        if isinstance(v, validate.OneOf)
        else ("Length", v.min, v.max, v.equal)
        if isinstance(v, validate.Length)
        else v
        for v in field.validators
    )
    kind = type(field).__name__
    extra = (field.format, field.default_timezone) if isinstance(field, fields.DateTime) else ()
    return (kind, field.required, field.allow_none, field.data_key, field.attribute, checks, *extra)


# _quick_touch knows the fields exactly as declared: a change to them must be made there too.
if {k: _shape(f) for k, f in TouchCreateSchema._declared_fields.items()} != {
    "id": ("UUID", True, False, None, None, ()),
    "client_id": ("UUID", True, False, None, None, ()),
    "outcome": ("String", True, False, None, None, (("OneOf", OUTCOMES),)),
    "note": ("String", False, True, None, None, (("Length", None, _TEXT.max, None),)),
    "happened_at": ("AwareDateTime", False, False, None, None, (_in_range,), "iso", None),
    "callback_at": ("AwareDateTime", False, True, None, None, (_in_range,), "iso", None),
    "callback_id": ("UUID", False, False, None, None, ()),
}:
    raise TypeError("TouchCreateSchema changed: make _quick_touch match it")


class TouchSchema(Schema):
    id = fields.String()
    client_id = fields.String()
    outcome = fields.String()
    note = fields.String(allow_none=True)
    happened_at = Instant()
    callback_at = Instant(allow_none=True)
    callback_id = fields.String(allow_none=True)
    created_at = Instant()


class TouchListArgsSchema(ListArgsSchema):
    updated_since = Instant(
        metadata={
            "description": "Sync: the touches that arrived since then, oldest arrival first"
            " (touches never change after they arrive)"
        }
    )


class TouchListSchema(Schema):
    items = fields.List(fields.Nested(TouchSchema))
    next_cursor = fields.String(allow_none=True)


class CallbackSchema(Schema):
    id = fields.String()
    client_id = fields.String()
    due_at = Instant()
    status = fields.String()
    created_at = Instant()
    updated_at = Instant()
    done_at = Instant(allow_none=True)
    notified_at = Instant(allow_none=True)
    last_error = fields.String(allow_none=True)


class CallbackListArgsSchema(ListArgsSchema):
    status = fields.String(validate=validate.OneOf(CALLBACK_STATUSES))
    updated_since = Instant()


class CallbackListSchema(Schema):
    items = fields.List(fields.Nested(CallbackSchema))
    next_cursor = fields.String(allow_none=True)


class SnoozeSchema(Schema):
    until = Instant(required=True)


class CallbackCreateSchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "Chosen by the phone (offline)"})
    client_id = fields.UUID(required=True)
    due_at = Instant(required=True)


class TodayItemSchema(Schema):
    client = fields.Nested(ClientSchema)
    reason = fields.String()
    due_at = Instant(allow_none=True)
    overdue = fields.Boolean()
    days_overdue = fields.Integer()
    callback_id = fields.String(allow_none=True)


class TodaySchema(Schema):
    date = fields.Date()
    items = fields.List(fields.Nested(TodayItemSchema))
    done_today = fields.Integer()
    goal = fields.Integer()


class PushKeySchema(Schema):
    public_key = fields.String(
        metadata={"description": "VAPID public key: base64url, uncompressed P-256 point"}
    )


class PushKeysSchema(Schema):
    p256dh = fields.String(required=True, validate=validate.Length(min=1, max=100))
    auth = fields.String(required=True, validate=validate.Length(min=1, max=40))


class PushSubscribeSchema(Schema):
    """``PushSubscription.toJSON()`` as the browser gives it (``expirationTime`` is ignored)."""

    endpoint = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    keys = fields.Nested(PushKeysSchema, required=True)
    expiration_time = fields.Float(allow_none=True, data_key="expirationTime", load_only=True)


class PushUnsubscribeSchema(Schema):
    endpoint = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class PushSubscriptionSchema(Schema):
    id = fields.String()
    endpoint = fields.String()
    created_at = Instant()


class PushTestSchema(Schema):
    devices = fields.Integer(metadata={"description": "How many devices the test was queued for"})


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "e.g. not_found"})
    message = fields.String(required=True, metadata={"description": "A human sentence"})
    field_errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        data_key="fields",
        metadata={"description": "Only for validation errors: messages by field name"},
    )


class ErrorSchema(Schema):
    """The one error shape of API.md (documents ``errors.py``; the OpenAPI doc's error answers)."""

    error = fields.Nested(ErrorDetailSchema, required=True)


user_schema = UserSchema()
client_schema = ClientSchema()
touch_schema = TouchSchema()
callback_schema = CallbackSchema()


class ImportFileSchema(Schema):
    file = Upload(
        required=True, metadata={"description": "A CSV file or a vCard (.vcf) file, at most 5 MB"}
    )


class ImportProblemSchema(Schema):
    line = fields.Integer(metadata={"description": "Line of the file (a card's first line)"})
    message = fields.String()


class ImportSummarySchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    skipped = fields.Integer()
    errors = fields.List(fields.Nested(ImportProblemSchema))


class CalendarSchema(Schema):
    url = fields.String(metadata={"description": "The feed's private URL (no cookie needed)"})
    created = fields.Boolean(metadata={"description": "Whether this answer made the URL"})
    created_at = Instant(allow_none=True)


# GET /stats (issue 6): the rep's habit figures. Dates are the rep's local dates.


class ClientRefSchema(Schema):
    """Enough of a client to show it in a list and call it."""

    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    company = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    attempts_since_reached = fields.Integer()
    last_touch_at = Instant(allow_none=True)
    last_reached_at = Instant(allow_none=True)


class StatsTodaySchema(Schema):
    calls = fields.Integer(metadata={"description": "Touches logged today (local day)"})
    reached = fields.Integer(metadata={"description": "Of those, outcome reached"})
    promises_kept = fields.Integer(
        metadata={"description": "Callbacks kept today, on or before their due date"}
    )
    goal = fields.Integer(metadata={"description": "The rep's daily goal"})


class StreakSchema(Schema):
    days = fields.Integer(
        metadata={"description": "Days in a row with calls >= goal, ending yesterday (or today)"}
    )
    goal = fields.Integer()
    weekends = fields.Boolean(metadata={"description": "Whether weekends count"})
    met_today = fields.Boolean()


class SlippingSchema(Schema):
    client = fields.Nested(ClientRefSchema)
    days_since_reached = fields.Integer(
        allow_none=True, metadata={"description": "null: never reached"}
    )
    days_over = fields.Integer(
        metadata={"description": "Days past the rhythm (for a never-reached client, since added)"}
    )


class TierCoverageSchema(Schema):
    tier = fields.String(metadata={"description": "A, B or C"})
    cadence_days = fields.Integer(metadata={"description": "The rep's rhythm for the tier"})
    clients = fields.Integer()
    within = fields.Integer(metadata={"description": "Reached within their rhythm"})
    share = fields.Float(allow_none=True, metadata={"description": "within / clients"})
    slipping = fields.List(fields.Nested(SlippingSchema))


class CoverageSchema(Schema):
    tiers = fields.List(fields.Nested(TierCoverageSchema))
    untiered = fields.Integer(metadata={"description": "Active clients with no tier tag"})


class BrokenPromiseSchema(Schema):
    callback_id = fields.String()
    client = fields.Nested(ClientRefSchema)
    due_at = Instant()
    status = fields.String(metadata={"description": "open or done (kept late)"})
    done_at = Instant(allow_none=True)
    days_late = fields.Integer()


class PromisesSchema(Schema):
    window_days = fields.Integer()
    due = fields.Integer()
    kept = fields.Integer()
    share = fields.Float(allow_none=True)
    broken = fields.List(fields.Nested(BrokenPromiseSchema))


class PersistenceSchema(Schema):
    client = fields.Nested(ClientRefSchema)
    attempts = fields.Integer(metadata={"description": "Unanswered calls since last reached"})


class InactiveSchema(Schema):
    client = fields.Nested(ClientRefSchema)
    days_silent = fields.Integer(allow_none=True, metadata={"description": "null: never touched"})
    opener = fields.String(metadata={"description": "A suggested way to open the call"})


class TierSharesSchema(Schema):
    A = fields.Float(allow_none=True)
    B = fields.Float(allow_none=True)
    C = fields.Float(allow_none=True)


class WeekSummarySchema(Schema):
    start = fields.Date(metadata={"description": "Monday"})
    end = fields.Date(metadata={"description": "Sunday"})
    calls = fields.Integer()
    reached = fields.Integer()
    reach_rate = fields.Float(allow_none=True)
    promises_due = fields.Integer()
    promises_kept = fields.Integer()
    promises_share = fields.Float(allow_none=True)
    coverage = fields.Nested(TierSharesSchema, metadata={"description": "Current snapshot"})


class WeeksSchema(Schema):
    this = fields.Nested(WeekSummarySchema, metadata={"description": "This week so far"})
    last = fields.Nested(WeekSummarySchema)


class StatsSchema(Schema):
    date = fields.Date(metadata={"description": "The rep's local today"})
    today = fields.Nested(StatsTodaySchema)
    streak = fields.Nested(StreakSchema)
    coverage = fields.Nested(CoverageSchema)
    promises = fields.Nested(PromisesSchema)
    persistence = fields.List(fields.Nested(PersistenceSchema))
    inactive = fields.List(fields.Nested(InactiveSchema))
    weeks = fields.Nested(WeeksSchema)
