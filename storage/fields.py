"""The field rules of PRODUCT.md §2, as pure functions shared by the store and the app."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable

from storage.credentials import contains_secret

NAME_MAX = 100
DESCRIPTION_MAX = 500

# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned code
# points, and the line and paragraph separators: none belongs in a name a person reads.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_SLACK_GROUP_ID = re.compile(r"S[A-Z0-9]{2,20}")
_COPY_SUFFIX = re.compile(r" \(copy(?: [1-9][0-9]*)?\)\Z")

SECRET_REFUSED = "looks like a Token Desk secret; never paste a secret into a token's details"


def _forbidden_character(text: str, *, allow_newlines: bool) -> bool:
    return any(
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
