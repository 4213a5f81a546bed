from __future__ import annotations

from datetime import date

import pytest

from storage.credentials import generate_secret
from storage.fields import (
    SECRET_REFUSED,
    clean_access_rights,
    clean_contact,
    clean_description,
    clean_name,
    copy_name,
    expiry_error,
    latest_expiry,
    name_key,
)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("  Lifecycle Alpha  ", "Lifecycle Alpha"),
        ("ﬁle export", "file export"),  # NFKC folds the ligature
        ("Ｆｕｌｌ", "Full"),
        ("R&D <x>", "R&D <x>"),
        ("مرحبا", "مرحبا"),
        ("한국어 토큰", "한국어 토큰"),
        ("\u1112\u1161\u11ab", "한"),  # conjoining jamo compose into a syllable
        ("Café\u0301", "Café\u0301"),  # a combining mark that shows stays
        ("🚀" * 100, "🚀" * 100),
    ],
)
def test_clean_name_normalises(raw: str, stored: str) -> None:
    assert clean_name(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "two\nlines",
        "tab\there",
        "bell\x07",
        "right-to-left \u202eoverride",
        "isolate \u2066x\u2069",
        "zero\u200bwidth",
        "joiner\u200d",
        "bom\ufeff",
        "line\u2028separator",
        "x" * 101,
    ],
)
def test_clean_name_refuses(raw: str) -> None:
    with pytest.raises(ValueError):
        clean_name(raw)


# The Default_Ignorable_Code_Point ranges of the Unicode standard (DerivedCoreProperties.txt),
# by their first and last code points, written out apart from the table in the code.
DEFAULT_IGNORABLE_ENDS = [
    *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180F),
    *(0x200B, 0x200F, 0x202A, 0x202E, 0x2060, 0x206F, 0x3164, 0xFE00, 0xFE0F, 0xFEFF),
    *(0xFFA0, 0xFFF0, 0xFFF8, 0x1BCA0, 0x1BCA3, 0x1D173, 0x1D17A, 0xE0000, 0xE0FFF),
]
BLANKS = ["\u2800", "\U00016fe4", "\U0001d159"]
INVISIBLE = [chr(code_point) for code_point in DEFAULT_IGNORABLE_ENDS] + BLANKS


@pytest.mark.parametrize(
    "raw",
    [
        "\u3164",  # Hangul filler
        "\u115f",
        "\u1160",
        "\uffa0",  # halfwidth Hangul filler
        "\u2800",  # braille blank
        " \u2800\u3164 ",
        "\u1100\u1160",  # a consonant with a vowel filler: not a syllable
    ],
)
def test_a_name_of_fillers_and_blanks_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="visible"):
        clean_name(raw)


@pytest.mark.parametrize("invisible", INVISIBLE, ids=lambda text: f"U+{ord(text):04X}")
def test_no_invisible_mark_makes_a_look_alike_of_a_name(invisible: str) -> None:
    for raw in (f"Lifecycle Alpha{invisible}", f"Life{invisible}cycle Alpha", invisible):
        with pytest.raises(ValueError, match="visible"):
            clean_name(raw)
        with pytest.raises(ValueError, match="visible"):
            clean_description(f"First line\n{raw}")


def test_clean_name_counts_characters_after_normalising() -> None:
    assert clean_name("x" * 100) == "x" * 100
    assert clean_name(" " + "x" * 100 + " ") == "x" * 100


def test_a_secret_in_any_text_field_is_refused_without_echo() -> None:
    secret = generate_secret()
    for text in (secret, f"prefix{secret}suffix", f"line one\n{secret}"):
        for clean in (clean_name, clean_description):
            with pytest.raises(ValueError) as refused:
                clean(text)
            assert str(refused.value) == SECRET_REFUSED


def test_a_secret_shaped_string_with_a_bad_checksum_is_ordinary_text() -> None:
    secret = generate_secret()
    broken = secret[:-1] + ("0" if secret[-1] != "0" else "1")
    assert clean_description(broken) == broken


def test_a_fullwidth_secret_is_caught_after_normalising() -> None:
    secret = generate_secret()
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in secret)
    with pytest.raises(ValueError):
        clean_name(fullwidth)


def test_description_may_span_lines() -> None:
    assert clean_description(" first\r\nsecond \n") == "first\nsecond"
    assert clean_description("") == ""
    assert clean_description("x" * 500) == "x" * 500
    for bad in ("x" * 501, "a\x00b", "a\u202eb", "a\tb"):
        with pytest.raises(ValueError):
            clean_description(bad)


def test_name_key_folds_case_and_compatibility_forms() -> None:
    assert name_key("Straße") == name_key("STRASSE") == "strasse"
    assert name_key("ＡＢＣ") == name_key("abc")


def test_access_rights_come_from_the_catalog_in_catalog_order() -> None:
    catalog = ("reports:read", "reports:write", "actions:write")
    assert clean_access_rights(["actions:write", "reports:read"], catalog) == (
        "reports:read",
        "actions:write",
    )
    for bad in ([], ["reports:delete"]):
        with pytest.raises(ValueError):
            clean_access_rights(bad, catalog)


def test_contacts_are_slack_user_ids() -> None:
    assert clean_contact("U012AB3CD") == "U012AB3CD"
    assert clean_contact("W012AB3CD") == "W012AB3CD"
    for bad in ("", "B012AB3CD", "u012ab3cd", "<@U012AB3CD>", "S012AB3CD"):
        with pytest.raises(ValueError):
            clean_contact(bad)


@pytest.mark.parametrize(
    ("name", "attempt", "copy"),
    [
        ("Report", 1, "Report (copy)"),
        ("Report", 2, "Report (copy 2)"),
        ("Report (copy)", 1, "Report (copy)"),
        ("Report (copy 7)", 3, "Report (copy 3)"),
        ("Report (copy) (copy)", 1, "Report (copy) (copy)"),
        ("(copy)", 1, "(copy) (copy)"),
        ("x" * 100, 1, "x" * 93 + " (copy)"),
        ("x" * 100, 12, "x" * 90 + " (copy 12)"),
        ("x" * 92 + " " + "y" * 7, 1, "x" * 92 + " (copy)"),
    ],
)
def test_copy_name(name: str, attempt: int, copy: str) -> None:
    assert copy_name(name, attempt) == copy
    assert len(copy) <= 100


def test_the_latest_expiry_counts_from_the_secrets_issue_day() -> None:
    issued = date(2026, 2, 28)
    assert latest_expiry(secret_issued_on=issued, max_lifetime_days=365) == date(2027, 2, 28)
    assert latest_expiry(secret_issued_on=issued, max_lifetime_days=1) == date(2026, 3, 1)
    assert latest_expiry(secret_issued_on=issued, max_lifetime_days=0) is None


TODAY = date(2026, 9, 21)
LATEST = date(2027, 9, 21)


@pytest.mark.parametrize(
    ("expires_on", "latest", "error"),
    [
        (TODAY, LATEST, None),  # works through today
        (LATEST, LATEST, None),
        (date(2026, 9, 20), LATEST, "must not be in the past"),
        (date(2026, 9, 20), None, "must not be in the past"),
        (
            date(2027, 9, 22),
            LATEST,
            "must be on or before 21 Sep 2027, 365 days after this secret was issued;"
            " reset the token to go further",
        ),
        (None, LATEST, "Choose a date: tokens must expire"),
        (None, None, None),
        (date(9999, 12, 31), None, None),
    ],
)
def test_expiry_errors(expires_on: date | None, latest: date | None, error: str | None) -> None:
    assert expiry_error(expires_on, today=TODAY, latest=latest, max_lifetime_days=365) == error


def test_an_expiry_error_names_the_latest_date_even_without_the_lifetime() -> None:
    error = expiry_error(date(2027, 3, 6), today=TODAY, latest=date(2027, 3, 5))
    assert error == (
        "must be on or before 5 Mar 2027, the latest allowed for this secret;"
        " reset the token to go further"
    )
