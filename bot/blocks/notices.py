"""Short texts a user reads as the answer to what they did with a token: the list's notice
area, one-line replies, the messages of a modal, and what they are told when something
fails.

Pure: data in, mrkdwn out. A token name reaches mrkdwn only through `escape`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bot.blocks.common import escape, mention, slack_date
from bot.blocks.token_list import Notice
from bot.ids import COMMAND
from storage.models import SlackStatus, Token

# -- when something fails -----------------------------------------------------------------

ROLE_REQUIRED = (
    "Token Desk is only for Account Administrators and Implementation Specialists."
    " Ask an Account Administrator if you need access."
)
ADMIN_REQUIRED = "Only Account Administrators can do that."
MODAL_NOT_OPENED = "Slack did not open the form in time. Please click again."
STORE_BUSY = "Token Desk is busy right now. Please try again in a moment."
TOKEN_GONE = "That token no longer exists."
FORM_GONE = "This form is no longer valid. Please start again from the list."
ALREADY_CREATED = "This token was already created."
ALREADY_DONE = "That was already done."
LIST_NOT_SHOWN = f"Done, but Slack could not show the updated list. Run `{COMMAND}` to see it."


def something_went_wrong(reference: str) -> str:
    """For an unexpected error: the reference is also in the log, beside the traceback."""
    return f"Something went wrong (ref {reference}). Nothing you need to do differently."


def changed_meanwhile(*, by: str, at: datetime, name: str | None = None) -> str:
    """The token moved on since the user saw it: who changed it, when, and that nothing was
    applied. With the token's `name` it is for the list or Home, which then show the token as
    it is now; without, for a modal, which cannot."""
    subject = f"*{escape(name)}*" if name is not None else "That token"
    changed = f"{subject} was changed by {mention(by)} {slack_date(at)}"
    if name is None:
        return f"{changed}. Nothing was applied; look again and retry."
    return f"{changed} since you saw it. Here it is as it is now; nothing was applied."


# -- secrets pasted where they do not belong ----------------------------------------------

PASTED_SECRET = (
    ":warning: That looks like a Token Desk secret, so it was neither used nor shown back."
    f" `{COMMAND} search` with it finds the token it belongs to, to reset it."
)


def secret_found(token: Token) -> Notice:
    return Notice(
        f":rotating_light: That secret belongs to *{escape(token.name)}*. If it was exposed,"
        " reset it now: integrations using the current value will stop working.",
        offer_reset=token,
    )


def secret_unknown() -> Notice:
    return Notice(
        ":mag: That looks like a Token Desk secret, or part of one, but no token has it"
        " (it may have been reset, or the token deleted). Search by name instead."
    )


# -- the results of token actions ---------------------------------------------------------


class Issued(StrEnum):
    """Why a secret is being shown, as the secret view and the list say it."""

    CREATED = "was created"
    COPIED = "was created as a copy"
    RESET = "has a new secret"


def secret_issued(name: str, why: Issued) -> Notice:
    return Notice(f":key: *{escape(name)}* {why}.")


def api_access_on() -> Notice:
    return Notice(":white_check_mark: *API access is on.* Enabled tokens now pass the auth check.")


def enabled_changed(token: Token, *, enabled: bool, changed: bool) -> Notice:
    """After Enable or Disable; after an Enable, the tip to reset, with the button."""
    name = escape(token.name)
    if not changed:
        return Notice(f"*{name}* was already {'enabled' if enabled else 'disabled'}.")
    if enabled:
        return Notice(
            f":white_check_mark: *{name}* enabled. Tip: when you enable a token, reset it too,"
            " so that a value that leaked while it was off is useless.",
            offer_reset=token,
        )
    return Notice(f":no_entry: *{name}* disabled. Calls using it now fail.")


def grace_ended(token: Token, *, changed: bool) -> Notice:
    """After End grace now: the previous secret stopped, or had already."""
    name = escape(token.name)
    if not changed:
        return Notice(f"*{name}*: the previous secret had already stopped working.")
    return Notice(
        f":stop_sign: *{name}*: the previous secret stopped working. Only the current one"
        " passes the auth check now."
    )


def stale_card(token: Token) -> Notice:
    return Notice(changed_meanwhile(by=token.updated_by, at=token.updated_at, name=token.name))


def already_newest(token: Token) -> Notice:
    version = escape(token.api_version)
    return Notice(f"*{escape(token.name)}* already uses `{version}`, the newest API version.")


def saved(name: str, *, changed: bool) -> Notice:
    if changed:
        return Notice(f":pencil2: *{escape(name)}* saved.")
    return Notice(f"*{escape(name)}*: nothing changed.")


def upgraded(token: Token) -> Notice:
    return Notice(f":arrow_up: *{escape(token.name)}* now uses `{escape(token.api_version)}`.")


def deleted(name: str) -> Notice:
    return Notice(f":wastebasket: *{escape(name)}* deleted.")


def list_unreachable(notice: Notice) -> str:
    """The notice, for a modal's last view when the list it came from cannot be refreshed."""
    return f"{notice.text}\n\nRun `{COMMAND}` again to see the list."


# -- a secret posted in Slack (the leak guard) -------------------------------------------


def enable_refused_leaked(token: Token) -> Notice:
    """Enable refused: the token's secret was posted in Slack, and only a Reset replaces it."""
    return Notice(
        f":rotating_light: *{escape(token.name)}* was not enabled: its secret was posted in"
        " Slack. Reset it first, then enable it.",
        offer_reset=token,
    )


def disabled_after_leak(token: Token, *, changed: bool) -> Notice:
    """After Disable now from a leak DM."""
    name = escape(token.name)
    if not changed:
        return Notice(f"*{name}* was already disabled. Reset it to issue a new secret.")
    return Notice(
        f":no_entry: *{name}* disabled: calls using it now fail. Reset it to issue a new"
        " secret before enabling it again."
    )


def reset_after_leak(token: Token) -> Notice:
    """After Reset now from a leak DM: the new secret was shown to whoever reset it."""
    return Notice(
        f":key: *{escape(token.name)}* has a new secret: the one posted in Slack no longer works."
    )


# -- the expiry choice's own field errors (the store words those about the date) ----------

EXPIRY_NOT_CHOSEN = "Choose until when the token works."
EXPIRY_DATE_MISSING = "Pick a date here, or another choice in Works until."


# -- the primary contact field ------------------------------------------------------------

CONTACT_NOT_CONFIRMED = "Slack did not confirm this person in time. Please try again."
CONTACT_PROBLEMS = {
    SlackStatus.BOT: "Choose a person, not a bot.",
    SlackStatus.GUEST: "Guests cannot be primary contacts. Choose a full member.",
    SlackStatus.DEACTIVATED: "That person has left the workspace.",
    SlackStatus.UNKNOWN_TO_SLACK: "Choose a person from this workspace.",
}
