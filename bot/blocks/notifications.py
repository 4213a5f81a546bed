"""Direct messages about a token, to the people who should hear of a change to it. Never a
secret: only names, SIDs, people and times. Pure: data in, blocks out."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import Block, ContextBlock, PlainTextObject, SectionBlock

from bot.blocks.common import Message, escape, mention, mrkdwn, slack_date
from storage.models import Presenter, RetiredPresentation, Token


def _message(fallback: str, text: str) -> Message:
    return Message(text=fallback, blocks=[SectionBlock(text=mrkdwn(text))])


def _about(token: Token) -> str:
    return f"*{escape(token.name)}* (`{token.sid}`)"


def token_reset(token: Token, *, actor: str, at: datetime) -> Message:
    """After a Reset: until when the previous secret works (`token.previous_until`, its
    grace window's end), or that it stopped at once."""
    until = token.previous_until
    if until is None:
        old_value = "The previous secret no longer works: integrations need the new one"
    else:
        old_value = (
            f"The previous secret keeps working until {slack_date(until)}: integrations need"
            " the new one before then"
        )
    return _message(
        f"Token {escape(token.name)} was reset",
        f":arrows_counterclockwise: {_about(token)} was reset by {mention(actor)}"
        f" {slack_date(at)}. {old_value}, which only the person who reset it has seen.",
    )


def token_disabled(token: Token, *, actor: str, at: datetime) -> Message:
    return _message(
        f"Token {escape(token.name)} was disabled",
        f":no_entry: {_about(token)} was disabled by {mention(actor)} {slack_date(at)}."
        " Calls using it fail until it is enabled again.",
    )


def token_deleted(token: Token, *, actor: str, at: datetime) -> Message:
    return _message(
        f"Token {escape(token.name)} was deleted",
        f":wastebasket: {_about(token)} was deleted by {mention(actor)} {slack_date(at)}."
        " Calls using it fail from now on.",
    )


def contact_changed(token: Token, *, actor: str, at: datetime, now_contact: bool) -> Message:
    if now_contact:
        return _message(
            f"You are now the primary contact of {escape(token.name)}",
            f":bust_in_silhouette: {mention(actor)} made you the primary contact of"
            f" {_about(token)} {slack_date(at)}. You will hear about resets, disabling and"
            " deletion.",
        )
    return _message(
        f"You are no longer the primary contact of {escape(token.name)}",
        f":bust_in_silhouette: {mention(actor)} made {mention(token.primary_contact)} the"
        f" primary contact of {_about(token)} {slack_date(at)}, instead of you.",
    )


def _presenter_texts(presenter: Presenter) -> list[PlainTextObject]:
    """Where a presentation came from, as the gateway said: untrusted text, so shown plain."""
    address = presenter.address or "an unknown address"
    agent = presenter.user_agent or "none given"
    return [
        PlainTextObject(text=f"From {address}", emoji=False),
        PlainTextObject(text=f"User agent: {agent}", emoji=False),
    ]


def retired_secret_presented(presentation: RetiredPresentation) -> Message:
    """To the primary contact, the first time a secret retired from a token is presented:
    an integration still uses it and is refused."""
    token = presentation.token
    text = (
        f":mag: An old secret of {_about(token)} was presented to the auth check"
        f" {slack_date(presentation.at)}, after it had stopped working, and was refused."
        " Some integration still uses it: give it the token's current secret."
    )
    blocks: list[Block] = [SectionBlock(text=mrkdwn(text))]
    if presentation.presenter is not None:
        blocks.append(ContextBlock(elements=_presenter_texts(presentation.presenter)))
    return Message(text=f"An old secret of {escape(token.name)} is still in use", blocks=blocks)
