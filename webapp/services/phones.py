"""Phone numbers: E.164 where the number can be understood, as typed where it cannot."""

from __future__ import annotations

import re

import phonenumbers

# North American numbers written with the usual separators: "(312) 555-0177", "312.555.0177",
# "+1 312 555 0177", "1-312-555-0177". These are most of what a US or Canadian rep types or
# imports, and phonenumbers takes ~25 µs for each; the answer for this exact shape is known
# (country code 1, an optional trunk "1", ten digits whose first is 2-9), so it is computed
# directly. tests/unit/test_phones.py checks that it always agrees with phonenumbers.
_NANP_REGIONS = frozenset({"US", "CA"})
_NANP_SHAPE = re.compile(r"\+?[0-9 ().\-]+")
_NANP_DIGITS = re.compile(r"1?([2-9][0-9]{9})")
_SEPARATORS = str.maketrans("", "", " ().-")


# The commonest layouts of all, in one pattern: "(312) 555-0177", "312-555-0177", "312.555.0177",
# "+1 312 555 0177". Everything it matches, _nanp below reads the same way (a subset of its shape).
_NANP_COMMON = re.compile(
    r"(?:\+?1[ .\-]?)?\(?([2-9][0-9]{2})\)?[ .\-]?([0-9]{3})[ .\-]?([0-9]{4})"
)


def _nanp(text: str) -> str | None:
    common = _NANP_COMMON.fullmatch(text)
    if common is not None:
        return "+1" + "".join(common.groups())
    if not _NANP_SHAPE.fullmatch(text):
        return None
    plus = text.startswith("+")
    digits = text[1:].translate(_SEPARATORS) if plus else text.translate(_SEPARATORS)
    match = _NANP_DIGITS.fullmatch(digits)
    if match is None or (plus and not digits.startswith("1")):
        return None
    return "+1" + match.group(1)


def to_e164(text: str, region: str) -> str | None:
    """Return ``text`` as E.164 when it parses as a possible number, else None."""
    if region in _NANP_REGIONS:
        fast = _nanp(text)
        if fast is not None:
            return fast
    return parsed_e164(text, region)


def parsed_e164(text: str, region: str) -> str | None:
    """``to_e164`` by phonenumbers alone, with no fast path (the reference the tests hold it to)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_phone(raw: str | None, region: str) -> str | None:
    """Return ``raw`` as E.164 (``+15551234567``) when it parses as a possible number.

    ``region`` (ISO 3166 alpha-2) is assumed for numbers typed without a country code. A number
    that cannot be parsed is kept exactly as typed (trimmed), so nothing the rep entered is lost.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    return to_e164(text, region) or text
