"""Import clients from a CSV file or an address book (vCard), safely and more than once.

The file is read as a stream: a CSV is decoded and parsed row by row and written in batches, so
memory holds the rep's existing clients (to match against) and the rows written, never the file
twice. A vCard file is read whole (address books are small, and cards must be cut apart first).

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
import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import sqlalchemy as sa
import vobject
from marshmallow import ValidationError, validate

from ..errors import ApiError
from ..models import clients, new_id, utcnow
from ..scheduling import effective_cadence
from .clients import clean_fields
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

_is_email = validate.Email()


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
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
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

    def read(self, row: list[str]) -> dict[str, Any]:
        """The row's values by field (text as found, not yet cleaned)."""

        def cell(i: int | None) -> str:
            if i is None or i >= len(row):
                return ""
            value = row[i].strip()
            if value[:1] == "'" and value[1:2] in FORMULA_STARTS and len(value) > 1:
                value = value[1:]
            return value

        out: dict[str, Any] = {f: cell(i) for f, i in self.simple.items()}
        name = cell(self.name)
        if not name:
            name = " ".join(p for p in (cell(self.first), cell(self.middle), cell(self.last)) if p)
        out["company"] = cell(self.company)
        out["name"] = name or out["company"]
        out["phone"] = self._phone(cell)
        out["email"] = next((v for v in (_multi(cell(i)) for i in self.emails) if v), "")
        return out

    def _phone(self, cell: Any) -> str:
        found = [(_multi(cell(i)), cell(t) if t is not None else "") for i, t in self.phones]
        found = [(v, t) for v, t in found if v]
        for value, kind in found:
            if "mobile" in kind.casefold() or "cell" in kind.casefold():
                return value
        return found[0][0] if found else ""


def _multi(value: str) -> str:
    """Google puts several values in one cell as "a ::: b"; take the first."""
    return value.split(" ::: ", 1)[0].strip() if " ::: " in value else value


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
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            merger.summary.problem(line, f"This row cannot be read: {exc}.")
            line = reader.line_num + 1
            continue
        if any(cell.strip() for cell in row):
            merger.add(line, columns.read(row))
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
# Matching and writing


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _split_tags(text: str) -> list[str]:
    """Tags from one cell: "a, b", "a;b" (Outlook), "a ::: b" (Google), or our own export's
    quoted form for tags that hold a separator ('"x, y", z')."""
    if '"' in text:
        parts = next(csv.reader([text], skipinitialspace=True), [])
    else:
        parts = re.split(r"\s*(?:,|;|:::)\s*", text)
    # Google's system labels ("* myContacts", "* starred") are not the rep's tags.
    return [p.strip() for p in parts if p.strip() and not p.strip().startswith("*")]


_LOAD = sa.select(
    clients.c.id, *(clients.c[f] for f in FIELDS if f != "tags"), clients.c.tags
).where(clients.c.archived_at.is_(None))


class _Merger:
    """Matches rows to the rep's clients and writes creates and updates in batches."""

    def __init__(self, conn: sa.Connection, user_id: str, region: str, tiers: dict[str, int]):
        self.conn = conn
        self.user_id = user_id
        self.region = region
        self.tiers = tiers
        self.summary = Summary()
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_phone: dict[str, str] = {}
        self.by_email: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.inserts: list[dict[str, Any]] = []
        self.updates: dict[str, dict[str, Any]] = {}
        self.pending: set[str] = set()  # ids in ``inserts``
        self._tiers_seen: dict[str, str | None] = {}
        self.now = utcnow()
        rows = conn.execute(
            _LOAD.where(clients.c.user_id == user_id).order_by(clients.c.created_at, clients.c.id)
        ).mappings()
        for row in rows:
            record = dict(row)
            record["tags"] = record["tags"] or []
            self._index(record)

    def _index(self, record: dict[str, Any]) -> None:
        self.by_id[record["id"]] = record
        if record["phone"]:
            self.by_phone.setdefault(record["phone"], record["id"])
        if record["email"]:
            self.by_email.setdefault(record["email"].casefold(), record["id"])
        self.by_name.setdefault(_name_key(record["name"]), record["id"])

    def _clean(self, line: int, values: dict[str, Any]) -> dict[str, Any] | None:
        """The row as client fields (blank ones left out), or None when it cannot be imported."""
        problem = self.summary.problem
        name = " ".join(str(values.get("name") or "").split())
        if not name:
            problem(line, "No name: give a name (or first and last name, or a company).")
            return None
        fields: dict[str, Any] = {"name": name}
        for key in ("company", "notes", "talking_points", "email"):
            value = values.get(key)
            if value:
                fields[key] = value
        for key, limit in LIMITS.items():
            if key in fields and len(fields[key]) > limit:
                if key == "name":
                    problem(line, f"The name is longer than {limit} characters.")
                    return None
                problem(line, f"The {key.replace('_', ' ')} was cut to {limit} characters.")
                fields[key] = fields[key][:limit]
        if "email" in fields:
            try:
                _is_email(fields["email"].strip())
            except ValidationError:
                problem(line, f'"{fields["email"]}" is not an email address; it was left out.')
                del fields["email"]
        phone = str(values.get("phone") or "").strip()
        if phone:
            e164 = to_e164(phone, self.region)
            if e164 is None:
                problem(line, f'The phone number "{phone}" could not be read; kept as typed.')
            fields["phone"] = e164 or phone[: LIMITS["phone"]]
        tags = _split_tags(values.get("tags") or "")
        tier = str(values.get("tier") or "").strip()
        fields["tier"] = None
        if tier:
            name_of = {t.casefold(): t for t in self.tiers}
            key = re.sub(r"^tier\s*[:\-_]?\s*", "", tier, flags=re.IGNORECASE).casefold()
            if key in name_of:
                fields["tier"] = name_of[key]
            else:
                known = ", ".join(self.tiers) or "none"
                problem(line, f'Unknown tier "{tier}" (the tiers are {known}); it was left out.')
        if tags:
            fields["tags"] = [t[:50] for t in tags][:50]
        cadence = str(values.get("cadence_days") or "").strip()
        if cadence:
            try:
                days = int(float(cadence))
                if not 1 <= days <= 3650 or days != float(cadence):
                    raise ValueError
                fields["cadence_days"] = days
            except ValueError:
                problem(
                    line,
                    f'The cadence "{cadence}" is not a whole number of days from 1 to '
                    "3650; it was left out.",
                )
        return fields

    def _match(self, values: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any] | None:
        found = self.by_id.get(str(values.get("id") or "").strip())
        if found is None and fields.get("phone"):
            found = self.by_id.get(self.by_phone.get(fields["phone"], ""))
        if found is None and fields.get("email"):
            found = self.by_id.get(self.by_email.get(fields["email"].casefold(), ""))
        if found is None:
            found = self.by_id.get(self.by_name.get(_name_key(fields["name"]), ""))
        return found

    def _tier_of(self, tag: str) -> str | None:
        """The tier a tag names ("tier a" → "A"), or None; remembered, as tags repeat a lot."""
        if tag not in self._tiers_seen:
            self._tiers_seen[tag] = next(
                (t for t in self.tiers if effective_cadence(None, [tag], {t: 1}) is not None),
                None,
            )
        return self._tiers_seen[tag]

    def _tags(self, current: list[str], fields: dict[str, Any]) -> list[str]:
        """The client's tags with the row's added, and its tier tag replaced by the row's tier."""
        tags = list(current) + fields.pop("tags", [])
        tier = fields.pop("tier")
        if tier is not None:
            # Tags naming this tier stay as the client spelled them; other tiers' tags go.
            same = [t for t in tags if self._tier_of(t) == tier]
            tags = [t for t in tags if t in same or self._tier_of(t) is None]
            if not same:
                tags.append(tier)
        return tags

    def add(self, line: int, values: dict[str, Any]) -> None:
        """Create, update or skip the client for one row (or card) of the file."""
        fields = self._clean(line, values)
        if fields is None:
            return
        record = self._match(values, fields)
        current = record["tags"] if record is not None else []
        fields["tags"] = self._tags(current, fields)
        # The same cleaning as the API's (tags de-duplicated, text trimmed, blanks as null);
        # the phone was normalised above, with a warning when it could not be.
        phone = fields.pop("phone", None)
        fields = clean_fields(fields, self.region)
        if phone is not None:
            fields["phone"] = phone
        if record is None:
            record = {f: None for f in FIELDS} | fields | {"id": new_id()}
            self._index(record)
            self.inserts.append(record)
            self.pending.add(record["id"])
            self.summary.created += 1
            if len(self.inserts) >= BATCH:
                self._flush_inserts()
            return
        changed = {k: v for k, v in fields.items() if record.get(k) != v}
        if not changed:
            self.summary.skipped += 1
            return
        record.update(changed)
        self._index(record)
        if record["id"] not in self.pending:  # (a pending insert writes the new values itself)
            self.updates[record["id"]] = record
        self.summary.updated += 1
        if len(self.updates) >= BATCH:
            self._flush_updates()

    def _flush_inserts(self) -> None:
        if self.inserts:
            rows = [{"id": r["id"], **{f: r[f] for f in FIELDS}} for r in self.inserts]
            # The values shared by every row are written into the statement once.
            stmt = sa.insert(clients).values(
                user_id=self.user_id, created_at=self.now, updated_at=self.now
            )
            self.conn.execute(stmt, rows)
            self.inserts = []
            self.pending = set()

    def _flush_updates(self) -> None:
        if self.updates:
            stmt = (
                sa.update(clients)
                .where(clients.c.id == sa.bindparam("_id"), clients.c.user_id == self.user_id)
                .values({**{f: sa.bindparam(f"_{f}") for f in FIELDS}, "updated_at": self.now})
            )
            rows = [
                {"_id": r["id"], **{f"_{f}": r[f] for f in FIELDS}} for r in self.updates.values()
            ]
            self.conn.execute(stmt, rows)
            self.updates = {}

    def flush(self) -> None:
        """Write what is still pending (the caller commits)."""
        self._flush_inserts()
        self._flush_updates()
