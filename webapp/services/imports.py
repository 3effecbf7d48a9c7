"""Import clients from a CSV file or an address book (vCard), safely and more than once.

The file is read as a stream: decoded and parsed row by row (card by card for a vCard file) and
written in batches of ``BATCH`` rows. Memory holds the rep's existing clients (to match against),
the match keys of each row created, and one batch: never the file. Rows go to the database as
the driver's own parameters through statements compiled once (``_write``): SQLAlchemy's
per-row parameter handling was over half of a large import's time.

Matching, so that importing the same file again creates nothing new: within the rep's own
non-archived clients, a row is the same client as one with the same ``id`` (our own export), else
the same normalised phone, else the same email (any case), else the same name (any case, spaces
collapsed). A matched client gets the row's non-blank fields: a blank cell never erases anything,
tags are added to the client's own, and a tier replaces the client's tier tag. A client that
would not change counts as ``skipped``.

All of it runs in the caller's transaction: the caller commits once at the end, so a crash
leaves nothing half-imported.
"""

from __future__ import annotations

import codecs
import collections
import csv
import functools
import io
import itertools
import json
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import sqlalchemy as sa
import vobject
from marshmallow import validate

from ..db import Prepared
from ..errors import ApiError
from ..models import clients, utcnow
from ..scheduling import effective_cadence
from .phones import to_e164

MAX_BYTES = 5 * 1024 * 1024
SNIFF_BYTES = 64 * 1024
BATCH = 500
MAX_REPORTED = 200
# The fields an import may set, in the order of our own export (exports.CLIENT_COLUMNS).
FIELDS = ("name", "phone", "email", "company", "notes", "talking_points", "tags", "cadence_days")
LIMITS = {"name": 200, "phone": 64, "email": 254, "company": 200, "notes": 10_000}
LIMITS["talking_points"] = 10_000
# Our export guards cells against spreadsheet formulas with a leading apostrophe (exports.py);
# an apostrophe before one of these characters is that guard, and is taken off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


@dataclass
class Summary:
    """What an import did: the API's answer and the CLI's output."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    _unreported: int = 0

    def problem(self, line: int, message: str) -> None:
        """Note a problem on ``line``; past ``MAX_REPORTED`` only count them."""
        if len(self.errors) < MAX_REPORTED:
            self.errors.append({"line": line, "message": message})
        else:
            self._unreported += 1

    def as_dict(self) -> dict[str, Any]:
        """The answer of ``POST /import``."""
        errors = list(self.errors)
        if self._unreported:
            last = errors[-1]["line"]
            errors.append({"line": last, "message": f"…and {self._unreported} more problems."})
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": errors,
        }


# ---------------------------------------------------------------------------------------------
# Recognising the file


_CONTROL_BYTES = bytes([*range(9), *range(14, 32)])  # not tab, newlines, form feed


def _looks_binary(head: bytes) -> str | None:
    """Why ``head`` is not a text file we read, or None when it may be one."""
    if head.startswith(b"PK\x03\x04"):
        return "This looks like a spreadsheet workbook (.xlsx). Save it as CSV and import that."
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "This looks like an old Excel workbook (.xls). Save it as CSV and import that."
    if head.startswith(b"%PDF"):
        return "This is a PDF. Import a CSV or vCard (.vcf) file."
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # UTF-16 text (Excel's "Unicode text"): NUL bytes are expected
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\x00" in head or controls > len(head) // 100:
        return "This is not a text file. Import a CSV or vCard (.vcf) file."
    return None


def _encoding(stream: IO[bytes], head: bytes) -> str:
    """UTF-16 or UTF-8 (BOM or not) when the file is that, else Windows-1252.

    The whole file is checked as UTF-8 chunk by chunk (nothing kept), because a spreadsheet
    saved as Windows-1252 may have its first accented letter deep in the file.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in iter(lambda: stream.read(SNIFF_BYTES), b""):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    finally:
        stream.seek(0)
    return "utf-8-sig"


def import_file(
    conn: sa.Connection,
    user_id: str,
    stream: IO[bytes],
    region: str,
    tiers: dict[str, int],
) -> dict[str, Any]:
    """Import a CSV or vCard file for one rep; return ``{created, updated, skipped, errors}``.

    ``stream`` must be seekable (an upload's spooled file, or an open file). Raises a 4xx
    ``ApiError`` when the file as a whole cannot be read; row problems are reported instead.
    """
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if not head.strip():
        raise ApiError(422, "The file is empty.", code="empty_file")
    why = _looks_binary(head)
    if why:
        raise ApiError(415, why, code="unsupported_file")
    encoding = _encoding(stream, head)
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")
    try:
        first = text.read(4096)
        text.seek(0)
        merger = _Merger(conn, user_id, region, tiers)
        if first.lstrip("\ufeff \t\r\n").upper().startswith("BEGIN:VCARD"):
            _import_vcards(text, merger)
        else:
            _import_csv(text, merger)
        merger.flush()
    finally:
        text.detach()  # the caller owns (and closes) the binary stream
    return merger.summary.as_dict()


# ---------------------------------------------------------------------------------------------
# CSV


def _key(header: str) -> str:
    """A header compared without case, spaces or punctuation ("E-mail 1 - Value": email1value)."""
    return re.sub(r"[^0-9a-z]", "", header.casefold())


NAME_KEYS = ("name", "fullname", "displayname", "contactname", "clientname", "client")
FIRST_KEYS = ("firstname", "givenname", "first")
MIDDLE_KEYS = ("middlename", "additionalname")
LAST_KEYS = ("lastname", "familyname", "surname", "last")
# Phone columns, best first: a field rep calls mobiles first, then the office.
PHONE_KEYS = (
    "mobile",
    "mobilephone",
    "mobilenumber",
    "cell",
    "cellphone",
    "phone",
    "phonenumber",
    "tel",
    "telephone",
    "primaryphone",
    "businessphone",
    "workphone",
    "companymainphone",
    "businessphone2",
    "homephone",
    "otherphone",
    "homephone2",
    "carphone",
)
EMAIL_KEYS = ("email", "emailaddress", "mail", "workemail", "email2address", "email3address")
COMPANY_KEYS = ("company", "companyname", "organisation", "organization", "organizationname")
COMPANY_KEYS += ("organisationname", "organization1name", "business", "account")
SIMPLE_KEYS = {
    "notes": ("notes", "note", "comments"),
    "talking_points": ("talkingpoints",),
    "tags": ("tags", "labels", "categories", "groupmembership"),
    "tier": ("tier",),
    "cadence_days": ("cadencedays", "cadence", "cadenceindays"),
    "id": ("id",),
}
_GOOGLE_PHONE = re.compile(r"phone(\d+)value")
_GOOGLE_EMAIL = re.compile(r"e?mail(\d+)value")


class _Columns:
    """Where each field is in a row, worked out once from the header."""

    def __init__(self, header: list[str]) -> None:
        keys = [_key(h) for h in header]
        pos = {}
        for i, k in enumerate(keys):
            pos.setdefault(k, i)

        def first(names: Iterable[str]) -> int | None:
            return next((pos[n] for n in names if n in pos), None)

        self.name = first(NAME_KEYS)
        self.first = first(FIRST_KEYS)
        self.middle = first(MIDDLE_KEYS)
        self.last = first(LAST_KEYS)
        self.company = first(COMPANY_KEYS)
        self.simple = {f: first(names) for f, names in SIMPLE_KEYS.items()}
        self.simple = {f: i for f, i in self.simple.items() if i is not None}
        # Google: "Phone 1 - Value" with "Phone 1 - Type" (a Mobile one is preferred).
        self.phones: list[tuple[int, int | None]] = []
        for i, k in enumerate(keys):
            match = _GOOGLE_PHONE.fullmatch(k)
            if match:
                n = match.group(1)
                self.phones.append((i, pos.get(f"phone{n}label", pos.get(f"phone{n}type"))))
        self.phones += [(pos[n], None) for n in PHONE_KEYS if n in pos]
        self.emails = [i for i, k in enumerate(keys) if _GOOGLE_EMAIL.fullmatch(k)]
        self.emails += [pos[n] for n in EMAIL_KEYS if n in pos]
        self.known = any(
            i is not None for i in (self.name, self.first, self.last, self.company)
        ) or bool(self.phones or self.emails)
        # The one-cell fields, read by one loop; a single phone column needs no choosing.
        singles = {**self.simple, "name": self.name, "company": self.company}
        singles |= {"first": self.first, "middle": self.middle, "last": self.last}
        self.one_phone = len(self.phones) == 1 and self.phones[0][1] is None
        if self.one_phone:
            singles["phone"] = self.phones[0][0]
        self.one_email = len(self.emails) == 1
        if self.one_email:
            singles["email"] = self.emails[0]
        singles = {key: i for key, i in singles.items() if i is not None}
        self.singles = list(singles.items())
        used = [*singles.values(), *self.emails]
        used += [i for pair in self.phones for i in pair if i is not None]
        self.width = max(used, default=-1) + 1

    def read(self, row: list[str]) -> dict[str, str]:
        """The row's values by field (text trimmed, not yet cleaned)."""
        if len(row) < self.width:
            row = row + [""] * (self.width - len(row))
        out = {}
        for key, i in self.singles:
            value = row[i].strip()
            if value[:1] == "'":
                value = _unguarded(value)
            out[key] = value
        if not out.get("name"):
            parts = (out.pop(k, "") for k in ("first", "middle", "last"))
            out["name"] = " ".join(p for p in parts if p) or out.get("company", "")
        if not self.one_phone:
            out["phone"] = self._phone(row)
        elif " ::: " in out["phone"]:
            out["phone"] = _multi(out["phone"])
        if not self.one_email:
            out["email"] = next((v for v in (_multi(_cell(row[i])) for i in self.emails) if v), "")
        elif " ::: " in out["email"]:
            out["email"] = _multi(out["email"])
        return out

    def _phone(self, row: list[str]) -> str:
        found = [
            (_multi(_cell(row[i])), _cell(row[t]) if t is not None else "") for i, t in self.phones
        ]
        found = [(v, t) for v, t in found if v]
        for value, kind in found:
            if "mobile" in kind.casefold() or "cell" in kind.casefold():
                return value
        return found[0][0] if found else ""


def _unguarded(value: str) -> str:
    """A cell without the apostrophe our export puts before formula-like text (exports.py)."""
    return value[1:] if value[:1] == "'" and value[1:2] in FORMULA_STARTS else value


def _cell(value: str) -> str:
    """One cell's text, trimmed and unguarded."""
    return _unguarded(value.strip())


def _multi(value: str) -> str:
    """Google puts several values in one cell as "a ::: b"; take the first."""
    return value.split(" ::: ", 1)[0].strip()


def _delimiter(header_line: str) -> str:
    """``;`` (Excel in much of Europe), tab, or ``,``: whichever the header line has most of."""
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _import_csv(text: IO[str], merger: _Merger) -> None:
    header_line = text.readline()
    reader = csv.reader(itertools.chain([header_line], text), delimiter=_delimiter(header_line))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ApiError(422, f"The header row cannot be read: {exc}.", code="bad_file") from exc
    columns = _Columns(header)
    if not columns.known:
        raise ApiError(
            415,
            "No known columns in the first row. Use a header row with columns such as "
            "name, phone, email, company, notes, tags, tier, cadence_days, or import a "
            "vCard (.vcf) file.",
            code="unsupported_file",
        )
    line = reader.line_num + 1
    while True:
        try:
            for row in reader:
                if "".join(row).strip():
                    merger.add(line, columns.read(row))
                line = reader.line_num + 1
            break
        except csv.Error as exc:  # this row is reported; the reader goes on with the next one
            merger.summary.problem(line, f"This row cannot be read: {exc}.")
            line = reader.line_num + 1


# ---------------------------------------------------------------------------------------------
# vCard

_BINARY_PROPS = ("PHOTO", "LOGO", "SOUND", "KEY")


def _prop_name(line: str) -> str:
    """The property name of a content line, without its group ("item1.TEL;..." → "TEL")."""
    name = re.split(r"[;:]", line, maxsplit=1)[0]
    return name.rsplit(".", 1)[-1].upper()


# Single-valued text where vobject keeps only the part before the first unescaped comma.
_TEXT_PROPS = ("NOTE", "FN", "TITLE")


def _escape_commas(text: str) -> str:
    return re.sub(r"(?<!\\),", r"\\,", text)


def _cards(text: IO[str]) -> Iterator[tuple[int, str]]:
    """Each card's first line number and text, cleaned for vobject.

    - Photos and other binary properties go (with their folded lines); they are ignored, and a
      phone's photo data often breaks the parser.
    - vCard 2.1 quoted-printable soft line breaks (a line ending in "=") are joined.
    - Commas in notes and names are escaped: vCard 2.1 (Android) does not escape them, and
      vobject would cut "Call Tuesday, after 10" at the comma.
    """
    card: list[str] = []
    start = 0
    skipping = False
    prop = ""
    for number, raw in enumerate(text, start=1):
        line = raw.rstrip("\r\n")
        if not card:
            if line.lstrip("\ufeff").strip().upper() == "BEGIN:VCARD":
                card, start, skipping = ["BEGIN:VCARD"], number, False
            continue
        folded = line[:1] in (" ", "\t")
        if skipping and (folded or not line.strip()):
            continue
        skipping = False
        if not line.strip():
            continue
        qp_soft_break = (
            card[-1].endswith("=") and "QUOTED-PRINTABLE" in card[-1].split(":", 1)[0].upper()
        )
        if not folded and not qp_soft_break:
            prop = _prop_name(line)
            if prop in _BINARY_PROPS:
                skipping = True
                continue
            if prop in _TEXT_PROPS and ":" in line:
                before, value = line.split(":", 1)
                line = f"{before}:{_escape_commas(value)}"
        elif prop in _TEXT_PROPS:
            line = _escape_commas(line)
        if qp_soft_break:
            card[-1] = card[-1][:-1] + line
            continue
        card.append(line)
        if line.strip().upper() == "END:VCARD":
            yield start, "\r\n".join(card) + "\r\n"
            card = []
    if card:
        yield start, "\r\n".join(card) + "\r\nEND:VCARD\r\n"


def _types(prop: Any) -> set[str]:
    kinds = set()
    for value in prop.params.get("TYPE", []):
        kinds |= {k.strip().casefold() for k in value.split(",")}
    kinds |= {k.casefold() for k in getattr(prop, "singletonparams", [])}
    if prop.params.get("PREF"):
        kinds.add("pref")
    return kinds


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value if v)
    return str(value or "").strip()


# Google Contacts' own groups, which its vCard export lists as categories (its CSV export marks
# them with "* " instead, see _split_tags): they are not the rep's tags.
_GOOGLE_GROUPS = frozenset({"mycontacts", "starred"})


def _card_fields(card: Any) -> dict[str, Any]:
    contents = card.contents
    name = _text(contents["fn"][0].value) if "fn" in contents else ""
    if not name and "n" in contents:
        n = contents["n"][0].value
        name = " ".join(p for p in (_text(n.given), _text(n.additional), _text(n.family)) if p)
    company = ""
    if "org" in contents:
        org = contents["org"][0].value
        company = _text(org[0] if isinstance(org, list) and org else org)
    phones = contents.get("tel", [])
    best = sorted(
        phones,
        key=lambda p: ("cell" not in _types(p), "pref" not in _types(p)),
    )
    phone = _text(best[0].value) if best else ""
    if phone.lower().startswith("tel:"):
        phone = phone[4:]
    emails = sorted(contents.get("email", []), key=lambda p: "pref" not in _types(p))
    tags: list[str] = []
    for prop in contents.get("categories", []):
        value = prop.value
        tags += value if isinstance(value, list) else str(value).split(",")
    tags = [t for t in tags if t.strip().casefold() not in _GOOGLE_GROUPS]
    return {
        "name": name or company,
        "phone": phone,
        "email": _text(emails[0].value) if emails else "",
        "company": company,
        "notes": "\n".join(_text(p.value) for p in contents.get("note", [])),
        "tags": ",".join(t.strip() for t in tags),
    }


def _import_vcards(text: IO[str], merger: _Merger) -> None:
    found = False
    for line, card_text in _cards(text):
        found = True
        try:
            card = vobject.readOne(card_text, ignoreUnreadable=True)
            values = _card_fields(card)
        except Exception as exc:  # vobject raises many kinds; the other cards still import
            merger.summary.problem(line, f"This card cannot be read ({type(exc).__name__}).")
            continue
        merger.add(line, values)
    if not found:
        raise ApiError(422, "No cards found in this vCard file.", code="bad_file")


# ---------------------------------------------------------------------------------------------
# Cleaning


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _is_email(value: str) -> bool:
    """marshmallow's ``validate.Email`` (the API's rule) as a test, without building the error
    message it formats on every call. tests/unit/test_imports.py holds it to marshmallow."""
    if _PLAIN_EMAIL.fullmatch(value):
        return True
    user, at, domain = value.rpartition("@")
    if not at or not _EMAIL.USER_REGEX.match(user):
        return False
    return domain in _EMAIL.DOMAIN_WHITELIST or bool(_EMAIL.DOMAIN_REGEX.match(domain))


_EMAIL = validate.Email
# The plain ASCII shape of most addresses, in one pattern: a subset of what marshmallow's two
# patterns accept (its user part is a "dot-atom", its domain labels and top-level domain are
# these and more), so a match needs no further look.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")
_TAG_SEPARATORS = re.compile(r"\s*(?:,|;|:::)\s*")
_TIER_PREFIX = re.compile(r"^tier\s*[:\-_]?\s*", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _split_tags(text: str) -> tuple[str, ...]:
    """Tags from one cell: "a, b", "a;b" (Outlook), "a ::: b" (Google), or our own export's
    quoted form for tags that hold a separator ('"x, y", z'). Remembered: the same few tag
    cells repeat down a whole file."""
    if '"' in text:
        parts = next(csv.reader([text], skipinitialspace=True), [])
    else:
        parts = _TAG_SEPARATORS.split(text)
    # Google's system labels ("* myContacts", "* starred") are not the rep's tags.
    tags = [p.strip() for p in parts if p.strip() and not p.strip().startswith("*")]
    return tuple(t[:50] for t in tags[:50])


def _unique_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as the API keeps them (services/clients.clean_fields): inner spaces collapsed,
    blanks dropped, and the first spelling of each tag kept, compared without case."""
    seen: dict[str, str] = {}
    for tag in tags:
        tag = " ".join(tag.split())
        if tag and tag.lower() not in seen:
            seen[tag.lower()] = tag
    return tuple(seen.values())


@functools.lru_cache(maxsize=4096)
def _tags_from_json(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text) or ())


def _stored_tags(value: str | list[str] | None) -> tuple[str, ...]:
    """A client's tags as loaded: JSON text on SQLite, decoded once for each distinct text
    (the same few tag sets repeat over a rep's clients), or a list from PostgreSQL's driver."""
    if isinstance(value, str):
        return _tags_from_json(value)
    return tuple(value or ())


_UUID_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))  # version 4 (random)
_UUID_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))  # RFC 4122


def _new_ids(count: int) -> list[str]:
    """``count`` new ids: random UUIDs (version 4) as text, like ``models.new_id``.

    Made from one read of the system's random source, with the version and variant bits set
    for all of them at once: ``str(uuid.uuid4())`` costs ~3 µs, a quarter of a row's budget.
    """
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_UUID_VERSION)
    raw[8::16] = raw[8::16].translate(_UUID_VARIANT)
    ids = []
    for one in raw.hex(" ", 16).split():
        ids.append(f"{one[:8]}-{one[8:12]}-{one[12:16]}-{one[16:20]}-{one[20:]}")
    return ids


# ---------------------------------------------------------------------------------------------
# Matching and writing


@dataclass(slots=True)
class _Client:
    """A client as an import sees it: its id and the fields an import may change.

    ``tags`` is a tuple here: records share them, and a tuple is written as a JSON list too.
    """

    id: str
    name: str
    phone: str | None
    email: str | None
    company: str | None
    notes: str | None
    talking_points: str | None
    tags: tuple[str, ...]
    cadence_days: int | None


# The statements, compiled once per database dialect (db.Prepared) and run on the driver's own
# parameters and rows (_read, _write). Tags are read as the driver gives them (_stored_tags).
_SELECT = sa.select(
    clients.c.id,
    *(sa.type_coerce(clients.c[f], sa.Text) if f == "tags" else clients.c[f] for f in FIELDS),
)
_LOAD = Prepared(
    _SELECT.where(
        clients.c.user_id == sa.bindparam("user_id"), clients.c.archived_at.is_(None)
    ).order_by(clients.c.created_at, clients.c.id)
)
_LOAD_ONE = Prepared(_SELECT.where(clients.c.id == sa.bindparam("id")))
_INSERT_KEYS = ("id", "user_id", *FIELDS, "created_at", "updated_at", "attempts_since_reached")
_INSERT = Prepared(sa.insert(clients), column_keys=list(_INSERT_KEYS))
_UPDATE_KEYS = (*(f"b_{f}" for f in FIELDS), "b_now", "b_id", "b_user_id")
_UPDATE = Prepared(
    sa.update(clients)
    .where(clients.c.id == sa.bindparam("b_id"), clients.c.user_id == sa.bindparam("b_user_id"))
    .values({**{f: sa.bindparam(f"b_{f}") for f in FIELDS}, "updated_at": sa.bindparam("b_now")})
)


def _converters(conn: sa.Connection, prepared: Prepared) -> dict[str, Callable[[Any], Any]]:
    """The column types' conversions of a statement's values, by key (tags to JSON text,
    instants to UTC), each remembering its answers: the same few tag sets come again and
    again. A key without one converts to itself."""
    found = {k: functools.lru_cache(1024)(fn) for k, fn in prepared.compiled(conn.dialect).binds}
    return collections.defaultdict(lambda: _same, found)


def _same(value: Any) -> Any:
    return value


def _read(conn: sa.Connection, prepared: Prepared, params: dict[str, Any]) -> Iterator[Any]:
    """The rows of a ``Prepared`` select, converted as SQLAlchemy would (SQLite and psycopg
    give these columns as they are, so usually without any step)."""
    compiled = prepared.compiled(conn.dialect)
    args = params if compiled.names is None else tuple(params[n] for n in compiled.names)
    result = conn.exec_driver_sql(compiled.sql, args)
    if not any(compiled.results):
        return iter(result)
    return (
        tuple(v if fn is None else fn(v) for v, fn in zip(row, compiled.results, strict=True))
        for row in result
    )


def _write(conn: sa.Connection, prepared: Prepared, keys: tuple[str, ...], rows: list) -> None:
    """Run ``prepared`` once for each of ``rows`` (tuples of converted values, in ``keys``'
    order) with one executemany on the driver.

    SQLAlchemy's own executemany builds and converts each row's parameters through its
    compiled-statement machinery, which was over half of an import's time. The statement is
    still SQLAlchemy's, compiled once (``db.Prepared``), and the values still get the column
    types' conversions (``_converters``); the caller converts a value the rows share once.
    """
    if not rows:
        return
    compiled = prepared.compiled(conn.dialect)
    if compiled.names is None:  # named parameters (psycopg)
        rows = [dict(zip(keys, row, strict=True)) for row in rows]
    elif compiled.names != list(keys):  # positional (SQLite), in another order
        pick = operator.itemgetter(*(keys.index(name) for name in compiled.names))
        rows = [pick(row) for row in rows]
    conn.exec_driver_sql(compiled.sql, rows)


class _Merger:
    """Matches rows to the rep's clients and writes creates and updates in batches.

    Memory: a record (``_Client``) for each of the rep's clients; for each row created, its
    match keys (a created row is read back if a later row matches it); a batch of pending
    writes at most. Never the file.
    """

    def __init__(self, conn: sa.Connection, user_id: str, region: str, tiers: dict[str, int]):
        self.conn = conn
        self.user_id = user_id
        self.region = region
        self.tiers = tiers
        self.tier_names = {t.casefold(): t for t in tiers}
        self.summary = Summary()
        self.records: dict[str, _Client] = {}  # the rep's clients (and created ones read back)
        # Match keys (normalised phone, email any case, name any case and spacing) to ids.
        self.by_phone: dict[str, str] = {}
        self.by_email: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.inserts: dict[str, tuple[Any, ...]] = {}  # id: the row to insert, as _INSERT_KEYS
        self.updates: dict[str, _Client] = {}
        self._ids: list[str] = []
        self._tier_cells: dict[str, str | None] = {}
        self._tiers_seen: dict[str, str | None] = {}
        self._merged_tags: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self.now = utcnow()
        self._insert_conv = _converters(conn, _INSERT)
        self._update_conv = _converters(conn, _UPDATE)
        conv = self._insert_conv  # the values every created row shares, converted once
        self._user_value = conv["user_id"](user_id)
        self._tags_value = conv["tags"]
        self._tail = (
            conv["created_at"](self.now),
            conv["updated_at"](self.now),
            conv["attempts_since_reached"](0),
        )
        for row in _read(conn, _LOAD, {"user_id": user_id}):
            client = _Client(*row)
            client.tags = _stored_tags(client.tags)
            self.records[client.id] = client
            self._index(client.id, client.phone, client.email, _name_key(client.name))

    def _index(self, client_id: str, phone: str | None, email: str | None, name_key: str) -> None:
        if phone:
            self.by_phone.setdefault(phone, client_id)
        if email:
            self.by_email.setdefault(email.casefold(), client_id)
        self.by_name.setdefault(name_key, client_id)

    def _tier(self, line: int, text: str) -> str | None:
        """The rep's tier a tier cell names ("a", "Tier A" → "A"), or None with a warning."""
        if text not in self._tier_cells:
            self._tier_cells[text] = self.tier_names.get(_TIER_PREFIX.sub("", text).casefold())
        tier = self._tier_cells[text]
        if tier is None:
            known = ", ".join(self.tiers) or "none"
            self.summary.problem(
                line, f'Unknown tier "{text}" (the tiers are {known}); it was left out.'
            )
        return tier

    def _clean(self, line: int, values: dict[str, str]) -> dict[str, Any] | None:
        """The row as client fields (blank ones left out) plus ``tags`` (a tuple, maybe empty)
        and ``tier`` (a tier name or None); None when the row cannot be imported.

        The same cleaning as the API's (services/clients.clean_fields): text trimmed, blanks
        as nothing, the phone as E.164 (kept as typed, with a warning, when it cannot be).
        """
        problem = self.summary.problem
        name = " ".join((values.get("name") or "").split())
        if not name:
            problem(line, "No name: give a name (or first and last name, or a company).")
            return None
        if len(name) > LIMITS["name"]:
            problem(line, f"The name is longer than {LIMITS['name']} characters.")
            return None
        fields: dict[str, Any] = {"name": name}
        for key in ("email", "company", "notes", "talking_points"):
            value = values.get(key)
            if value and (value := value.strip()):
                if len(value) > LIMITS[key]:
                    label = key.replace("_", " ")
                    problem(line, f"The {label} was cut to {LIMITS[key]} characters.")
                    value = value[: LIMITS[key]].strip()
                fields[key] = value
        if "email" in fields and not _is_email(fields["email"]):
            problem(line, f'"{fields["email"]}" is not an email address; it was left out.')
            del fields["email"]
        phone = (values.get("phone") or "").strip()
        if phone:
            e164 = to_e164(phone, self.region)
            if e164 is None:
                problem(line, f'The phone number "{phone}" could not be read; kept as typed.')
            fields["phone"] = e164 or phone[: LIMITS["phone"]]
        fields["tags"] = _split_tags(values.get("tags") or "")
        tier = (values.get("tier") or "").strip()
        fields["tier"] = self._tier(line, tier) if tier else None
        cadence = (values.get("cadence_days") or "").strip()
        if cadence:
            try:
                days = int(float(cadence))
                if not 1 <= days <= 3650 or days != float(cadence):
                    raise ValueError
                fields["cadence_days"] = days
            except (ValueError, OverflowError):  # (OverflowError: "1e999" is infinite)
                problem(
                    line,
                    f'The cadence "{cadence}" is not a whole number of days from 1 to '
                    "3650; it was left out.",
                )
        return fields

    def _match(self, row_id: str | None, fields: dict[str, Any], name_key: str) -> _Client | None:
        """The client this row is: by our own id, else phone, else email, else name."""
        found = row_id if row_id and row_id in self.records else None
        if found is None and "phone" in fields:
            found = self.by_phone.get(fields["phone"])
        if found is None and "email" in fields:
            found = self.by_email.get(fields["email"].casefold())
        if found is None:
            found = self.by_name.get(name_key)
        if found is None:
            return None
        if found in self.inserts:  # created by an earlier row: write it, then read it back
            self._flush_inserts()
        return self.records.get(found) or self._read_back(found)

    def _read_back(self, client_id: str) -> _Client:
        """A client this import created and wrote, which a later row matches."""
        (row,) = _read(self.conn, _LOAD_ONE, {"id": client_id})
        client = self.records[client_id] = _Client(*row)
        client.tags = _stored_tags(client.tags)
        return client

    def _tier_of(self, tag: str) -> str | None:
        """The tier a tag names ("tier a" → "A"), or None; remembered, as tags repeat a lot."""
        if tag not in self._tiers_seen:
            self._tiers_seen[tag] = next(
                (t for t in self.tiers if effective_cadence(None, [tag], {t: 1}) is not None),
                None,
            )
        return self._tiers_seen[tag]

    def _tags(self, current: tuple[str, ...], added: tuple[str, ...], tier: str | None):
        """The client's tags with the row's added, and its tier tag replaced by the row's tier.

        Remembered: the rows of a file, and the rep's clients, share a few sets of tags.
        """
        key = (current, added, tier)
        found = self._merged_tags.get(key)
        if found is None:
            if len(self._merged_tags) >= 4096:
                self._merged_tags.clear()
            tags = [*current, *added]
            if tier is not None:
                # Tags naming this tier stay as the client spelled them; other tiers' tags go.
                same = [t for t in tags if self._tier_of(t) == tier]
                tags = [t for t in tags if t in same or self._tier_of(t) is None]
                if not same:
                    tags.append(tier)
            found = self._merged_tags[key] = _unique_tags(tags)
        return found

    def add(self, line: int, values: dict[str, str]) -> None:
        """Create, update or skip the client for one row (or card) of the file."""
        fields = self._clean(line, values)
        if fields is None:
            return
        name_key = fields["name"].casefold()  # (its spaces were collapsed already: _name_key)
        client = self._match(values.get("id"), fields, name_key)
        added, tier = fields.pop("tags"), fields.pop("tier")
        if client is None:
            self._create(fields, self._tags((), added, tier), name_key)
            return
        fields["tags"] = self._tags(client.tags, added, tier)
        changed = False
        for key, value in fields.items():
            if getattr(client, key) != value:
                setattr(client, key, value)
                changed = True
        if not changed:
            self.summary.skipped += 1
            return
        self._index(client.id, client.phone, client.email, name_key)
        self.updates[client.id] = client
        self.summary.updated += 1
        if len(self.updates) >= BATCH:
            self._flush_updates()

    def _create(self, fields: dict[str, Any], tags: tuple[str, ...], name_key: str) -> None:
        if not self._ids:
            self._ids = _new_ids(BATCH)
        client_id = self._ids.pop()
        get = fields.get
        self.inserts[client_id] = (  # as _INSERT_KEYS
            client_id,
            self._user_value,
            fields["name"],
            get("phone"),
            get("email"),
            get("company"),
            get("notes"),
            get("talking_points"),
            self._tags_value(tags),
            get("cadence_days"),
            *self._tail,
        )
        self._index(client_id, get("phone"), get("email"), name_key)
        self.summary.created += 1
        if len(self.inserts) >= BATCH:
            self._flush_inserts()

    def _flush_inserts(self) -> None:
        _write(self.conn, _INSERT, _INSERT_KEYS, list(self.inserts.values()))
        self.inserts = {}

    def _flush_updates(self) -> None:
        conv = self._update_conv
        now, user_id = conv["b_now"](self.now), conv["b_user_id"](self.user_id)
        rows = [
            (
                c.name,
                c.phone,
                c.email,
                c.company,
                c.notes,
                c.talking_points,
                conv["b_tags"](c.tags),
                c.cadence_days,
                now,
                c.id,
                user_id,
            )
            for c in self.updates.values()
        ]
        _write(self.conn, _UPDATE, _UPDATE_KEYS, rows)
        self.updates = {}

    def flush(self) -> None:
        """Write what is still pending (the caller commits)."""
        self._flush_inserts()
        self._flush_updates()
