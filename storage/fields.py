"""The rules for a token's fields, as pure functions shared by the store and the app."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from datetime import date, timedelta
from typing import Any

from storage.credentials import contains_secret
from storage.errors import InvalidInput

NAME_MAX = 100
DESCRIPTION_MAX = 500

# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned code
# points, and the line and paragraph separators: none belongs in a name a person reads.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Default_Ignorable_Code_Point, from the Unicode Character Database's
# DerivedCoreProperties.txt (Unicode 14.0, the version of Python 3.11's unicodedata), with
# adjacent ranges merged. These render as nothing, whatever their category (letters such
# as the Hangul fillers, marks such as the combining grapheme joiner and the variation
# selectors): one in a name makes a blank name, or a look-alike of another token's name.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, joiners, directional marks
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFEFF, 0xFEFF),  # zero-width no-break space
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors 17-256, unassigned
)
# Drawn as blank space, though not default-ignorable and not white space either.
_BLANKS = "\u2800\U00016fe4\U0001d159"  # braille blank, Khitan filler, null notehead
_INVISIBLE = re.compile(
    "["
    + "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in _DEFAULT_IGNORABLE)
    + _BLANKS
    + "]"
)
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_SLACK_GROUP_ID = re.compile(r"S[A-Z0-9]{2,20}")
_COPY_SUFFIX = re.compile(r" \(copy(?: [1-9][0-9]*)?\)\Z")

SECRET_REFUSED = "looks like a Token Desk secret; never paste a secret into a token's details"


def _forbidden_character(text: str, *, allow_newlines: bool) -> bool:
    """Whether `text` holds a control or an invisible character. Both are refused, never
    silently dropped, so that a name is stored as its author saw it when typing it."""
    return _INVISIBLE.search(text) is not None or any(
        unicodedata.category(character) in _FORBIDDEN_CATEGORIES
        and not (allow_newlines and character == "\n")
        for character in text
    )


def clean_name(raw: str) -> str:
    """The stored form of a token name, or ValueError with a message fit for the field."""
    if contains_secret(raw):
        raise ValueError(SECRET_REFUSED)
    name = unicodedata.normalize("NFKC", raw).strip()
    if contains_secret(name):
        raise ValueError(SECRET_REFUSED)
    if not name:
        raise ValueError("enter a name")
    if _forbidden_character(name, allow_newlines=False):
        raise ValueError("use one line of visible characters (no control or invisible ones)")
    if len(name) > NAME_MAX:
        raise ValueError(f"use at most {NAME_MAX} characters")
    return name


def name_key(name: str) -> str:
    """What names are compared by: unique, and searched, case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def clean_description(raw: str) -> str:
    if contains_secret(raw):
        raise ValueError(SECRET_REFUSED)
    description = unicodedata.normalize("NFKC", raw.replace("\r\n", "\n")).strip()
    if contains_secret(description):
        raise ValueError(SECRET_REFUSED)
    if _forbidden_character(description, allow_newlines=True):
        raise ValueError("use visible characters and line breaks only")
    if len(description) > DESCRIPTION_MAX:
        raise ValueError(f"use at most {DESCRIPTION_MAX} characters")
    return description


def clean_access_rights(chosen: Iterable[str], catalog: Collection[str]) -> tuple[str, ...]:
    rights = frozenset(chosen)
    if not rights:
        raise ValueError("choose at least one access right")
    unknown = rights - frozenset(catalog)
    if unknown:
        raise ValueError("choose access rights from the catalog only")
    return tuple(scope for scope in catalog if scope in rights)


def is_user_id(value: str) -> bool:
    return _SLACK_USER_ID.fullmatch(value) is not None


def is_group_id(value: str) -> bool:
    return _SLACK_GROUP_ID.fullmatch(value) is not None


def clean_contact(user_id: str) -> str:
    if not is_user_id(user_id):
        raise ValueError("choose a person from this workspace")
    return user_id


def copy_name(name: str, attempt: int) -> str:
    """The name of a duplicate: `<base> (copy)`, then `(copy 2)`, … where `<base>` is the
    name without an earlier copy suffix, shortened so that the result fits NAME_MAX."""
    base = _COPY_SUFFIX.sub("", name)
    suffix = " (copy)" if attempt == 1 else f" (copy {attempt})"
    return base[: NAME_MAX - len(suffix)].rstrip() + suffix


def latest_expiry(*, secret_issued_on: date, max_lifetime_days: int) -> date | None:
    """The last day a secret issued on `secret_issued_on` may work through; None when
    lifetimes are not capped (`max_lifetime_days` 0). Counted from the secret's issue day,
    not from the day the expiry is chosen: extending a token never dodges its rotation."""
    if max_lifetime_days == 0:
        return None
    return secret_issued_on + timedelta(days=max_lifetime_days)


def day_month_year(day: date) -> str:
    """`5 Mar 2027`: unambiguous whatever the reader's locale."""
    return f"{day.day} {day:%b %Y}"


def expiry_error(
    expires_on: date | None,
    *,
    today: date,
    latest: date | None,
    max_lifetime_days: int | None = None,
) -> str | None:
    """What is wrong with `expires_on` as a token's expiry (a UTC date it works through,
    None for none), or None. Today is allowed; `latest` is `latest_expiry`'s answer, and
    `max_lifetime_days`, when given, is named in the message about it."""
    if expires_on is None:
        return None if latest is None else "Choose a date: tokens must expire"
    if expires_on < today:
        return "must not be in the past"
    if latest is not None and expires_on > latest:
        after = (
            f"{max_lifetime_days} days after this secret was issued"
            if max_lifetime_days
            else "the latest allowed for this secret"
        )
        return (
            f"must be on or before {day_month_year(latest)}, {after}; reset the token to go further"
        )
    return None


def clean_token_fields(scopes: Collection[str], **values: Any) -> dict[str, Any]:
    """The given fields (`name`, `description`, `access_rights` from the catalog `scopes`,
    `primary_contact`; None leaves one out) in their stored form, or InvalidInput naming
    every bad one."""
    cleaners: dict[str, Callable[[Any], Any]] = {
        "name": clean_name,
        "description": clean_description,
        "access_rights": lambda rights: list(clean_access_rights(rights, scopes)),
        "primary_contact": clean_contact,
    }
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            cleaned[key] = cleaners[key](value)
        except ValueError as error:
            errors[key] = str(error)
    if errors:
        raise InvalidInput(errors)
    return cleaned
