"""Phone numbers: E.164 where the number can be understood, as typed where it cannot."""

from __future__ import annotations

import phonenumbers


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
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(number):
        return text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
