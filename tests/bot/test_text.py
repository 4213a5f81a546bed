from __future__ import annotations

import pytest

from bot.blocks.common import escape
from bot.inputs.command_text import group_id_of, parse_command, unescape, user_id_of


def test_escape_touches_only_the_three_control_characters() -> None:
    assert escape("<!channel> & <@U1> *b*") == "&lt;!channel&gt; &amp; &lt;@U1&gt; *b*"


@pytest.mark.parametrize(
    ("text", "verb", "rest"),
    [
        ("", "", ""),
        ("   ", "", ""),
        ("LIST", "list", ""),
        ("create R&amp;D &lt;x&gt;", "create", "R&D <x>"),
        ("search   two  words ", "search", "two  words"),
        ("search see <https://example.com|the docs>", "search", "see the docs"),
        ("search <https://example.com>", "search", "https://example.com"),
        ("search &amp;lt;", "search", "&lt;"),
    ],
)
def test_parse_command_round_trips_what_was_typed(text: str, verb: str, rest: str) -> None:
    parsed = parse_command(text)
    assert (parsed.verb, parsed.rest) == (verb, rest)


def test_mentions_keep_their_ids() -> None:
    parsed = parse_command("roles grant <@U012AB3CD|alice> admin")
    assert parsed.words == ["grant", "<@U012AB3CD|alice>", "admin"]
    assert user_id_of(parsed.words[1]) == "U012AB3CD"
    assert user_id_of("<@W012AB3CD>") == "W012AB3CD"
    assert user_id_of("@alice") is None
    assert group_id_of("<!subteam^S012AB3CD|@ops>") == "S012AB3CD"
    assert group_id_of("<!subteam^S012AB3CD>") == "S012AB3CD"
    assert group_id_of("@ops") is None


def test_unescape_leaves_special_mentions_alone() -> None:
    assert unescape("<!here> <#C123|general>") == "<!here> <#C123|general>"
