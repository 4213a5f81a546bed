"""The leak guard's scan (bot/leak_scan.py): which messages it reads, each message's
identity and thread, and every candidate secret wherever it sits, on any payload shape."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from bot.leak_scan import WALK_DEPTH_MAX, WALK_VALUES_MAX, candidates, scan_event
from storage.credentials import (
    ALPHABET,
    CHECKSUM_LENGTH,
    PREFIX,
    RANDOM_LENGTH,
    generate_secret,
    is_valid_secret,
)

OWN_BOT, OWN_USER = "B0TOKENDESK", "U0TOKENDESK"
POSTER = "U0POSTER"
CHANNEL = "C0LEAKS"
TS, PARENT_TS, EDIT_TS = "1700000000.000200", "1700000000.000100", "1700000050.000300"


def forged() -> str:
    """A secret's shape with a checksum that does not match."""
    real = generate_secret()
    last = real[-1]
    return real[:-1] + ("0" if last != "0" else "1")


def message(**fields: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": CHANNEL,
        "channel_type": "channel",
        "user": POSTER,
        "ts": TS,
        "text": "",
    } | fields


def scan(event: Any) -> Any:
    return scan_event(event, own_bot_id=OWN_BOT, own_user_id=OWN_USER)


def found(event: Any) -> tuple[str, ...]:
    scanned = scan(event)
    return () if scanned is None else scanned.candidates


# -- candidates ---------------------------------------------------------------------------


def test_a_text_without_the_prefix_has_no_candidate() -> None:
    assert candidates("") == []
    assert candidates("nothing to see, tdk but no underscore, TDK_" + "a" * 38) == []


@pytest.mark.parametrize(
    "template",
    [
        "{}",
        "here it is: *{}* (bold)",
        "code `{}` span",
        "```\nexport TOKEN={}\n```",
        "see <https://example.com/x?token={}&y=1|the link>",
        "<https://x|{}>",
        "https://api.example.com/v1?key={}",
        "prefix{}suffix",
        "_{}_ and ~{}~",
        "tdk_tdk_{}",
        "a line\n> quoted {}\n",
    ],
)
def test_a_secret_is_found_wherever_it_sits(template: str) -> None:
    secret = generate_secret()
    assert set(candidates(template.format(secret, secret))) == {secret}


def test_only_valid_checksums_are_candidates_all_of_them_in_order() -> None:
    first, second = generate_secret(), generate_secret()
    text = f"{forged()} {first} {forged()} {forged()} {second} {first}"
    assert candidates(text) == [first, second, first]


def test_near_misses_are_not_candidates() -> None:
    secret = generate_secret()
    body = secret[len(PREFIX) :]
    fullwidth = body[:-1] + "\uff41"  # a letter, but not ASCII
    assert candidates(secret[:-1]) == []
    assert candidates(secret[:-1] + " " + secret[-1]) == []
    assert candidates("TDK_" + body) == []
    assert candidates(PREFIX + fullwidth) == []
    assert candidates(PREFIX + "-" + body) == []


def test_thousands_of_lookalikes_cost_little_and_hide_nothing() -> None:
    rng = random.Random(15)
    decoys = [
        PREFIX + "".join(rng.choice(ALPHABET) for _ in range(RANDOM_LENGTH + CHECKSUM_LENGTH))
        for _ in range(5_000)
    ]
    assert not any(is_valid_secret(decoy) for decoy in decoys)
    secret = generate_secret()
    text = " ".join(decoys + ["tdk_"] * 2_000 + [forged()] * 1_000 + [secret])
    started = time.perf_counter()
    result = found(message(text=text))
    # About 10 ms on a laptop: the bound is for a loaded, shared machine.
    assert time.perf_counter() - started < 1.0
    assert result == (secret,)


def test_a_long_message_is_scanned_to_its_end() -> None:
    first, middle, last = generate_secret(), generate_secret(), generate_secret()
    filler = "lorem ipsum dolor sit amet " * 700
    text = f"{first} {filler} {middle} {filler}"
    text += "x" * (40_000 - len(text) - len(last)) + last
    assert len(text) == 40_000
    assert found(message(text=text)) == (first, middle, last)


# -- which messages are read --------------------------------------------------------------


def test_a_plain_message_is_its_own_thread() -> None:
    secret = generate_secret()
    scanned = scan(message(text=f"oops {secret}"))
    assert scanned is not None
    assert (scanned.channel, scanned.message_ts, scanned.thread_ts) == (CHANNEL, TS, TS)
    assert (scanned.poster, scanned.candidates) == (POSTER, (secret,))


def test_a_private_channel_is_read_and_so_is_an_event_without_channel_type() -> None:
    secret = generate_secret()
    private = message(channel="G0PRIVATE", channel_type="group", text=secret)
    assert found(private) == (secret,)
    without_type = message(text=secret)
    del without_type["channel_type"]
    assert found(without_type) == (secret,)


def test_a_thread_reply_is_answered_in_its_thread() -> None:
    secret = generate_secret()
    scanned = scan(message(text=secret, thread_ts=PARENT_TS))
    assert scanned is not None
    assert (scanned.message_ts, scanned.thread_ts) == (TS, PARENT_TS)


def test_an_edit_is_the_inner_message_with_its_new_text() -> None:
    old, new = generate_secret(), generate_secret()
    event = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "channel_type": "channel",
        "ts": EDIT_TS,
        "hidden": True,
        "message": {
            "type": "message",
            "user": POSTER,
            "text": f"now {new}",
            "ts": TS,
            "thread_ts": PARENT_TS,
            "edited": {"user": POSTER, "ts": EDIT_TS},
        },
        "previous_message": {"type": "message", "user": POSTER, "text": old, "ts": TS},
    }
    scanned = scan(event)
    assert scanned is not None
    assert (scanned.message_ts, scanned.thread_ts, scanned.poster) == (TS, PARENT_TS, POSTER)
    assert scanned.candidates == (new,)


def test_an_edit_without_its_message_is_nothing() -> None:
    event = message(subtype="message_changed", text=generate_secret())
    assert scan(event) is None


@pytest.mark.parametrize("subtype", ["message_replied", None])
def test_a_redelivered_parent_keeps_its_own_identity(subtype: str | None) -> None:
    secret = generate_secret()
    parent = {
        "type": "message",
        "user": POSTER,
        "text": secret,
        "ts": PARENT_TS,
        "thread_ts": PARENT_TS,
        "reply_count": 1,
    }
    event = {"type": "message", "channel": CHANNEL, "ts": EDIT_TS, "message": parent}
    if subtype is not None:
        event["subtype"] = subtype
    scanned = scan(event)
    assert scanned is not None
    assert (scanned.message_ts, scanned.thread_ts, scanned.candidates) == (
        PARENT_TS,
        PARENT_TS,
        (secret,),
    )


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ({"bot_id": OWN_BOT}, {}),
        ({"user": OWN_USER}, {}),
        ({}, {"bot_id": OWN_BOT}),
        ({}, {"user": OWN_USER}),
    ],
)
def test_token_desks_own_messages_are_ignored(outer: dict[str, Any], inner: dict[str, Any]) -> None:
    secret = generate_secret()
    plain = message(text=secret) | outer | inner
    assert scan(plain) is None
    edited = message(subtype="message_changed", ts=EDIT_TS, text="") | outer
    edited["message"] = {"type": "message", "text": secret, "ts": TS, "user": POSTER} | inner
    assert scan(edited) is None


def test_without_own_ids_nothing_counts_as_own() -> None:
    secret = generate_secret()
    event = message(text=secret, bot_id="B0OTHER", subtype="bot_message")
    del event["user"]
    scanned = scan_event(event, own_bot_id=None, own_user_id=None)
    assert scanned is not None and scanned.poster is None
    assert scan(event) is not None  # another bot's message is read


@pytest.mark.parametrize("channel_type", ["im", "mpim", "app_home", "", None, ["channel"]])
def test_direct_messages_are_never_read(channel_type: Any) -> None:
    assert scan(message(channel_type=channel_type, text=generate_secret())) is None


def test_a_dm_channel_is_never_read_even_without_channel_type() -> None:
    event = message(channel="D0DIRECT", text=generate_secret())
    del event["channel_type"]
    assert scan(event) is None


def test_a_deletion_is_nothing() -> None:
    secret = generate_secret()
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "channel_type": "channel",
        "ts": EDIT_TS,
        "deleted_ts": TS,
        "previous_message": {"type": "message", "user": POSTER, "text": secret, "ts": TS},
    }
    assert scan(event) is None


@pytest.mark.parametrize(
    "event",
    [
        message(subtype="channel_join", text=f"<@{POSTER}> has joined the channel"),
        message(text="a message with no secret at all"),
        message(text=forged()),
        {"type": "app_mention", "channel": CHANNEL, "ts": TS, "text": "tdk_"},
    ],
)
def test_nothing_to_look_up_is_none(event: dict[str, Any]) -> None:
    assert scan(event) is None


def test_another_event_type_is_none_even_with_a_secret() -> None:
    assert scan(message(type="app_mention", text=generate_secret())) is None


@pytest.mark.parametrize(
    "identity",
    [
        {"channel": None},
        {"channel": "C0LEAKS; DROP"},
        {"channel": "c0leaks"},
        {"ts": 1700000000.0002},
        {"ts": "yesterday"},
        {"ts": "1" * 40 + ".1"},
    ],
)
def test_a_message_without_slacks_identity_is_none(identity: dict[str, Any]) -> None:
    assert scan(message(text=generate_secret()) | identity) is None


def test_a_thread_ts_or_a_poster_of_the_wrong_shape_is_not_kept() -> None:
    scanned = scan(message(text=generate_secret(), thread_ts="<!channel>", user="someone"))
    assert scanned is not None
    assert (scanned.thread_ts, scanned.poster) == (TS, None)


def test_the_secret_is_not_in_the_repr() -> None:
    secret = generate_secret()
    scanned = scan(message(text=secret))
    assert scanned is not None and secret not in repr(scanned)


# -- blocks and attachments ---------------------------------------------------------------


def test_every_text_of_blocks_and_attachments_is_scanned_after_the_text() -> None:
    secrets = [generate_secret() for _ in range(16)]
    s = iter(secrets)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": next(s)}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": next(s)},
            "fields": [{"type": "mrkdwn", "text": next(s)}],
            "accessory": {
                "type": "button",
                "text": {"type": "plain_text", "text": "x"},
                "value": next(s),
            },
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": next(s)}]},
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_list",
                    "elements": [
                        {
                            "type": "rich_text_section",
                            "elements": [
                                {"type": "text", "text": next(s), "style": {"code": True}},
                                {"type": "link", "url": f"https://x/?k={next(s)}", "text": next(s)},
                            ],
                        }
                    ],
                },
                {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": next(s)}]},
            ],
        },
    ]
    attachments = [
        {
            "fallback": next(s),
            "pretext": next(s),
            "title": next(s),
            "text": next(s),
            "fields": [{"title": next(s), "value": next(s), "short": True}],
            "footer": next(s),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": next(s, "")}}],
        }
    ]
    assert next(s, None) is None
    text = generate_secret()
    result = found(message(text=text, blocks=blocks, attachments=attachments))
    assert result[0] == text
    assert sorted(result[1:]) == sorted(secrets)


def test_blocks_are_walked_level_by_level_each_level_in_document_order() -> None:
    first, second, third, deep = (generate_secret() for _ in range(4))
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": deep}},
        {"type": "divider", "block_id": first},
        {"type": "header", "block_id": second},
    ]
    attachments = [{"footer": third}]
    assert found(message(blocks=blocks, attachments=attachments)) == (first, second, third, deep)


def test_a_secret_in_text_and_blocks_is_one_candidate() -> None:
    secret = generate_secret()
    blocks = [
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [{"type": "text", "text": f"{secret} and again {secret}"}],
                }
            ],
        }
    ]
    assert found(message(text=secret, blocks=blocks, attachments=[{"text": secret}])) == (secret,)


def test_an_attachment_alone_is_enough() -> None:
    secret = generate_secret()
    event = message(text="", attachments=[{"color": "#f00", "footer": f"by {secret}"}])
    assert found(event) == (secret,)


def test_hostile_nesting_is_cut_but_the_text_is_scanned_to_its_end() -> None:
    in_text, deep = generate_secret(), generate_secret()
    nested: Any = deep
    for _ in range(200_000):
        nested = [nested]
    wide = ["tdk_x"] * 1_000_000 + [deep]
    started = time.perf_counter()
    result = found(message(text=f"x {in_text}", blocks=nested, attachments=wide))
    assert time.perf_counter() - started < 1.0
    assert result == (in_text,)


def test_the_walk_reaches_its_bounds_but_not_further() -> None:
    secret = generate_secret()
    shallow: Any = secret
    for _ in range(WALK_DEPTH_MAX - 1):
        shallow = [shallow]
    assert found(message(blocks=shallow)) == (secret,)
    assert found(message(blocks=[shallow])) == ()
    # `blocks` and `attachments` themselves are values too.
    filler = ["x"] * (WALK_VALUES_MAX - 3)
    assert found(message(blocks=[*filler, secret])) == (secret,)
    assert found(message(blocks=[*filler, "x", secret])) == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"text": 12345},
        {"text": None},
        {"text": ["tdk_"]},
        {"text": {"tdk_": "tdk_"}},
        {"blocks": "tdk_ a string"},
        {"blocks": None},
        {"blocks": [None, 1, 2.5, True, [], {}, {"text": 7}]},
        {"attachments": {"text": "not a list"}},
        {"attachments": [[["tdk_"]]]},
        {"subtype": ["message_changed"]},
        {"subtype": {"a": 1}},
        {"channel_type": {"channel": 1}},
        {"message": ["not", "a", "mapping"]},
        {"message": {"ts": None, "text": 1, "blocks": 2, "attachments": 3}},
        {"message": {}},
        {"user": ["U1"], "bot_id": {"b": 1}},
        {"ts": None, "channel": 5, "thread_ts": []},
        {"type": None},
    ],
)
def test_wrong_types_never_raise(fields: dict[str, Any]) -> None:
    assert scan(message(**fields)) is None
    secret = generate_secret()
    with_secret = message(**fields)
    with_secret.setdefault("attachments", [{"text": secret}])
    scanned = scan(with_secret)
    assert scanned is None or scanned.candidates == (secret,)


@pytest.mark.parametrize("event", [None, 3, "message", [], ["type", "message"]])
def test_an_event_that_is_not_a_mapping_is_none(event: Any) -> None:
    assert scan(event) is None
