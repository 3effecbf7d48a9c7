"""The North American fast path of ``to_e164`` agrees with phonenumbers on every input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.services.phones import normalise_phone, parsed_e164, to_e164

# Strings made of the characters the fast path looks at, in any order, plus some others.
_CHARS = st.sampled_from(list("0123456789012345678901234567890123456789 ().-+x/"))
_DIGITS = st.text(alphabet="0123456789", min_size=9, max_size=12)


@st.composite
def _formatted(draw: st.DrawFn) -> str:
    """A plausible North American number in one of the usual layouts."""
    digits = draw(_DIGITS)
    layout = draw(st.integers(0, 7))
    if layout == 0 and len(digits) >= 10:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    if layout == 6:
        prefix = draw(st.sampled_from(["", "1", "+1", "1 ", "+1 ", "+1-", "+", "+2 ", "11"]))
        sep = draw(st.sampled_from(["", " ", "-", ".", ") ", ")"]))
        open_paren = "(" if ")" in sep and draw(st.booleans()) else ""
        return f"{prefix}{open_paren}{digits[:3]}{sep}{digits[3:6]}{sep[-1:]}{digits[6:]}"
    if layout == 7:
        return f"+1 ({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    if layout == 1:
        return "+" + digits
    if layout == 2:
        return "+1 " + ".".join([digits[:3], digits[3:6], digits[6:]])
    if layout == 3:
        return "1-" + "-".join([digits[:3], digits[3:6], digits[6:]])
    if layout == 4:
        return " ".join(digits)
    return digits


@settings(max_examples=3000, deadline=None)
@given(text=st.one_of(st.text(_CHARS, min_size=1, max_size=20), _formatted()))
def test_fast_path_matches_phonenumbers(text):
    for region in ("US", "CA"):
        assert to_e164(text, region) == parsed_e164(text, region), (text, region)


def test_known_answers():
    assert normalise_phone(" (312) 555-0177 ", "US") == "+13125550177"
    assert normalise_phone("1 312 555 0177", "US") == "+13125550177"
    assert normalise_phone("+44 20 7946 0958", "US") == "+442079460958"
    assert normalise_phone("020 7946 0958", "GB") == "+442079460958"
    assert normalise_phone("ask reception", "US") == "ask reception"
    assert normalise_phone("   ", "US") is None
