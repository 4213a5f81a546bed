"""Text that crosses into or out of Slack: mrkdwn escaping and slash-command parsing.

With `should_escape: true`, Slack sends command text with `&`, `<`, `>` escaped and with
mentions as `<@U…|label>`, groups as `<!subteam^S…|@label>`. `parse_command` turns it back
into plain words and IDs; `escape` is the only way user text goes into mrkdwn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_USER = re.compile(r"<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>")
_GROUP = re.compile(r"<!subteam\^(S[A-Z0-9]{2,20})(?:\|[^>]*)?>")
_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def escape(text: str) -> str:
    """mrkdwn-safe user text: `&`, `<`, `>` and nothing else, as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
