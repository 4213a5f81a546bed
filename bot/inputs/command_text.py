"""The text after `/tokens`, read back into plain words, user and group IDs.

With `should_escape: true`, Slack sends command text with `&`, `<`, `>` escaped, mentions as
`<@U…|label>` and groups as `<!subteam^S…|@label>`: `parse_command` turns it back into what
the user typed, so that `create R&D <x>` round-trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.list_view import NAME_FILTER_MAX
from storage.credentials import has_secret_part
from storage.models import Role
from storage.roles import role_from_name

AUDIT_NAME_MAX = 100
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_USER = re.compile(r"<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>")
_GROUP = re.compile(r"<!subteam\^(S[A-Z0-9]{2,20})(?:\|[^>]*)?>")
_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def unescape(text: str) -> str:
    """Slack's escaped text back to what the user typed (mentions left to the callers)."""

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "!", "#")):
            return match.group(0)
        return label if label is not None else target

    return _ENTITY.sub(lambda match: _ENTITIES[match.group(1)], _LINK.sub(link, text))


def user_id_of(word: str) -> str | None:
    match = _USER.fullmatch(word)
    return match.group(1) if match else None


def group_id_of(word: str) -> str | None:
    match = _GROUP.fullmatch(word)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """`verb` lower-cased ("" for none), `rest` the remaining text unescaped, `words` split."""

    verb: str
    rest: str

    @property
    def words(self) -> list[str]:
        return self.rest.split()


def parse_command(text: str) -> ParsedCommand:
    stripped = text.strip()
    verb, _, rest = stripped.partition(" ")
    if not verb and not rest:
        return ParsedCommand(verb="", rest="")
    return ParsedCommand(verb=unescape(verb).lower(), rest=unescape(rest.strip()))


def prefilled_name(parsed: ParsedCommand) -> str:
    """The name `create NAME` prefills: a pasted secret is never echoed, not even into a
    form only its owner sees."""
    return "" if has_secret_part(parsed.rest) else parsed.rest[:NAME_FILTER_MAX]


def audit_filter(parsed: ParsedCommand) -> str:
    return parsed.rest[:AUDIT_NAME_MAX]


def switch(parsed: ParsedCommand) -> bool | None:
    """`on` or `off` (any case) and nothing else, or None."""
    words = [word.lower() for word in parsed.words]
    return {"on": True, "off": False}.get(words[0]) if len(words) == 1 else None


class RolesProblem(StrEnum):
    """What is wrong with a `roles` sub-command's words, found before any look-up."""

    UNKNOWN_VERB = "unknown_verb"
    WRONG_SHAPE = "wrong_shape"
    NOT_A_PERSON = "not_a_person"
    NOT_A_GROUP = "not_a_group"
    UNKNOWN_ROLE = "unknown_role"


ROLE_WORDS = ("admin", "specialist")
ROLES_WORD_COUNTS = {"grant": 3, "revoke": 2, "group": 3, "ungroup": 2}


@dataclass(frozen=True, slots=True)
class RoleGrant:
    """`roles grant @user ROLE` (`target` a user ID) or `roles group @group ROLE` (`group`,
    `target` a user group ID)."""

    target: str
    role: Role
    group: bool


@dataclass(frozen=True, slots=True)
class RoleRevoke:
    """`roles revoke @user` or `roles ungroup @group` (`group`)."""

    target: str
    group: bool


def role_change(words: list[str]) -> RoleGrant | RoleRevoke | RolesProblem:
    """`roles <verb> …` (the words after `roles`; at least one)."""
    verb = words[0].lower()
    if verb not in ROLES_WORD_COUNTS:
        return RolesProblem.UNKNOWN_VERB
    if len(words) != ROLES_WORD_COUNTS[verb]:
        return RolesProblem.WRONG_SHAPE
    group = verb in ("group", "ungroup")
    target = group_id_of(words[1]) if group else user_id_of(words[1])
    if target is None:
        return RolesProblem.NOT_A_GROUP if group else RolesProblem.NOT_A_PERSON
    if verb in ("revoke", "ungroup"):
        return RoleRevoke(target=target, group=group)
    if words[2].lower() not in ROLE_WORDS:
        return RolesProblem.UNKNOWN_ROLE
    return RoleGrant(target=target, role=role_from_name(words[2].lower()), group=group)
