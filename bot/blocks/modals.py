"""Modals: the create/edit form, the confirmations, the one-time secret view, messages.

Pure builders. Token names reach mrkdwn only escaped, in `verbatim` texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DatePickerElement,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticMultiSelectElement,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.common import escape, mrkdwn, slack_date
from bot.blocks.notices import Issued
from bot.ids import (
    COMMAND,
    ActionId,
    BlockId,
    CallbackId,
    ExpiryChoice,
    FormField,
    GraceChoice,
    MenuChoice,
)
from bot.inputs.modal_context import ModalContext
from storage.fields import DESCRIPTION_MAX, NAME_MAX, day_month_year, latest_expiry
from storage.models import IssuedToken, Token

TITLE = "Token Desk"
EXPIRY_PRESETS = ((7, "7 days"), (30, "30 days"), (60, "60 days"), (90, "90 days"), (365, "1 year"))
EXPIRY_DATE_HINT = "Read as a UTC date. Used when Works until is On a date…"


def _plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=text, emoji=False)


def message_view(text: str, *, title: str = TITLE) -> View:
    """A modal with a message and a close button only. `text` is mrkdwn, already escaped."""
    return View(
        type="modal",
        callback_id=CallbackId.NOTICE,
        title=title,
        close="Close",
        blocks=[SectionBlock(text=mrkdwn(text))],
    )


def _scope_option(scope: str) -> Option:
    return Option(text=_plain(scope), value=scope)


# -- the expiry choice --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiryOffer:
    """What the expiry choice offers. Dates are counted from `today` (UTC) and none is after
    `latest`, `max_lifetime_days` after the day the secret was (or, for a new one, is)
    issued; `latest` None means no maximum, and then Never is offered too. It starts on
    `default_days` (0: Never) or, when `editing`, on the token's `current` expiry."""

    today: date
    latest: date | None
    max_lifetime_days: int
    default_days: int
    editing: bool = False
    current: date | None = None

    @classmethod
    def for_new_secret(
        cls, *, today: date, max_lifetime_days: int, default_days: int
    ) -> ExpiryOffer:
        """Create, Duplicate and Reset: the secret is issued today."""
        latest = latest_expiry(secret_issued_on=today, max_lifetime_days=max_lifetime_days)
        return cls(today, latest, max_lifetime_days, default_days)

    @classmethod
    def for_edit(
        cls, token: Token, *, today: date, max_lifetime_days: int, default_days: int
    ) -> ExpiryOffer:
        """Edit: the maximum counts from the current secret's issue day, so extending a
        token never dodges its rotation."""
        latest = latest_expiry(
            secret_issued_on=token.secret_issued_at.date(), max_lifetime_days=max_lifetime_days
        )
        return cls(today, latest, max_lifetime_days, default_days, True, token.expires_on)


def _days_option(offer: ExpiryOffer, days: int, label: str) -> Option | None:
    until = offer.today + timedelta(days=days)
    if offer.latest is not None and until > offer.latest:
        return None
    return Option(text=_plain(f"{label} ({day_month_year(until)})"), value=until.isoformat())


def _latest_hint(offer: ExpiryOffer) -> str | None:
    if offer.latest is None:
        return None
    latest = day_month_year(offer.latest)
    if offer.editing:
        return (
            f"At the latest {latest}, {offer.max_lifetime_days} days after this secret was"
            " issued; only Reset goes further."
        )
    return f"At the latest {latest}, {offer.max_lifetime_days} days from today."


def expiry_blocks(offer: ExpiryOffer) -> list[Block]:
    """`Works until`: the presets within the maximum, each with its date, the default among
    them when it is not one; `On a date…` with its date picker; `Never` without a maximum.
    A token edited without an expiry while a maximum is set starts on nothing chosen, which
    keeps it as it is."""
    days = dict(EXPIRY_PRESETS)
    if offer.default_days and offer.default_days not in days:
        days[offer.default_days] = f"{offer.default_days} days"
    offered = [_days_option(offer, count, days[count]) for count in sorted(days)]
    options = [option for option in offered if option is not None]
    on_a_date = Option(text=_plain("On a date…"), value=ExpiryChoice.ON_A_DATE)
    never = Option(text=_plain("Never"), value=ExpiryChoice.NEVER)
    options.append(on_a_date)
    if offer.latest is None:
        options.append(never)
    picked_date: date | None = None
    initial: Option | None
    if offer.editing:
        picked_date = offer.current
        initial = on_a_date if offer.current else (never if offer.latest is None else None)
    elif offer.default_days:
        default = (offer.today + timedelta(days=offer.default_days)).isoformat()
        initial = next((option for option in options if option.value == default), None)
    else:
        initial = never
    keeps_none = offer.editing and initial is None
    return [
        InputBlock(
            block_id=BlockId.EXPIRY,
            label="Works until",
            hint=_latest_hint(offer),
            optional=keeps_none,
            element=StaticSelectElement(
                action_id=ActionId.EXPIRY_CHOICE,
                placeholder="No expiry: choose one" if keeps_none else "Choose",
                options=options,
                initial_option=initial,
            ),
        ),
        InputBlock(
            block_id=BlockId.EXPIRY_DATE,
            label="Date",
            hint=EXPIRY_DATE_HINT,
            optional=True,
            element=DatePickerElement(
                action_id=ActionId.EXPIRY_DATE,
                initial_date=picked_date.isoformat() if picked_date else None,
            ),
        ),
    ]


# -- the grace window a Reset may leave the current secret ----------------------------------

GRACE_LABELS = {
    GraceChoice.STOP: "Stop immediately",
    GraceChoice.ONE_HOUR: "1 hour",
    GraceChoice.ONE_DAY: "24 hours",
    GraceChoice.THREE_DAYS: "3 days",
    GraceChoice.SEVEN_DAYS: "7 days",
}
GRACE_HINT = (
    "Integrations can switch to the new secret meanwhile. The current one stops at the end of"
    " this window, or when the token stops working, whichever comes first."
)


@dataclass(frozen=True, slots=True)
class GraceOffer:
    """What a Reset confirmation says about the secrets in use at `now`: the choice of how
    long the current secret keeps working, `offered` only while it works (enabled, not
    expired, not leaked); the previous secret of an earlier Reset, still working `until`
    then, which any Reset stops at once (there is one previous secret at most); and whether
    the current secret was posted in Slack (`leaked`), which is why no window is offered."""

    offered: bool
    until: datetime | None = None
    hint: str | None = None
    leaked: bool = False

    @classmethod
    def for_reset(cls, token: Token, *, now: datetime) -> GraceOffer:
        open_until = token.previous_until if token.grace_open_at(now) else None
        return cls(
            offered=token.current_secret_works_at(now),
            until=open_until,
            hint=token.previous_secret_hint if open_until else None,
            leaked=token.leaked_at is not None,
        )


def grace_blocks(offer: GraceOffer) -> list[Block]:
    """Why no grace window is offered, if the current secret leaked; the earlier previous
    secret's warning, if one still works; then `Current secret keeps working`, starting on
    Stop immediately, if offered."""
    blocks: list[Block] = []
    if offer.leaked:
        blocks.append(
            ContextBlock(
                elements=[
                    mrkdwn(
                        ":rotating_light: Its current secret was posted in Slack, so it stops"
                        " working as soon as you confirm: no grace window."
                    )
                ]
            )
        )
    if offer.until is not None:
        which = f" (ends in `{escape(offer.hint)}`)" if offer.hint else ""
        blocks.append(
            ContextBlock(
                elements=[
                    mrkdwn(
                        f":warning: The previous secret{which} of an earlier Reset, which works"
                        f" until {slack_date(offer.until)}, stops working at once when you"
                        " confirm, whatever you choose below."
                    )
                ]
            )
        )
    if offer.offered:
        options = [
            Option(text=_plain(label), value=choice) for choice, label in GRACE_LABELS.items()
        ]
        blocks.append(
            InputBlock(
                block_id=BlockId.GRACE,
                label="Current secret keeps working",
                hint=GRACE_HINT,
                element=StaticSelectElement(
                    action_id=ActionId.GRACE_CHOICE, options=options, initial_option=options[0]
                ),
            )
        )
    return blocks


def token_form(
    *,
    context: ModalContext,
    newest_version: str,
    scopes: Sequence[str],
    contact: str,
    expiry: ExpiryOffer,
    token: Token | None = None,
    name: str = "",
) -> View:
    """Create (no `token`) or Edit (`token`, prefilled; its API version read-only: only
    Upgrade Version changes it, and a new token always gets the newest), with the expiry
    choice last."""
    rights = [_scope_option(scope) for scope in scopes]
    chosen = [option for option in rights if token and option.value in token.access_rights]
    blocks: list[Block] = [
        InputBlock(
            block_id=FormField.NAME,
            label="Name",
            element=PlainTextInputElement(
                action_id=FormField.NAME,
                initial_value=(token.name if token else name) or None,
                max_length=NAME_MAX,
                placeholder="e.g. Nightly reports export",
            ),
        ),
        InputBlock(
            block_id=FormField.DESCRIPTION,
            label="Description",
            optional=True,
            element=PlainTextInputElement(
                action_id=FormField.DESCRIPTION,
                multiline=True,
                initial_value=(token.description if token else "") or None,
                max_length=DESCRIPTION_MAX,
            ),
        ),
    ]
    if token is None:
        newest = Option(text=_plain(newest_version), value=newest_version)
        blocks.append(
            InputBlock(
                block_id=FormField.API_VERSION,
                label="API version",
                hint="New tokens use the newest API version.",
                element=StaticSelectElement(
                    action_id=FormField.API_VERSION,
                    options=[newest],
                    initial_option=newest,
                ),
            )
        )
    else:
        blocks.append(
            ContextBlock(
                block_id=FormField.API_VERSION,
                elements=[
                    mrkdwn(
                        f"*API version* `{escape(token.api_version)}`: change it with"
                        " *Upgrade Version* in the card's menu."
                    )
                ],
            )
        )
    blocks += [
        InputBlock(
            block_id=FormField.ACCESS_RIGHTS,
            label="Access rights",
            element=StaticMultiSelectElement(
                action_id=FormField.ACCESS_RIGHTS,
                placeholder="Choose what the token may do",
                options=rights,
                initial_options=chosen or None,
            ),
        ),
        InputBlock(
            block_id=FormField.PRIMARY_CONTACT,
            label="Primary contact",
            hint="Hears about resets, disabling and deletion of this token.",
            element=UserSelectElement(action_id=FormField.PRIMARY_CONTACT, initial_user=contact),
        ),
        *expiry_blocks(expiry),
    ]
    return View(
        type="modal",
        callback_id=CallbackId.EDIT if token else CallbackId.CREATE,
        title="Edit Access Token" if token else "Create Access Token",
        submit="Save" if token else "Create",
        close="Cancel",
        private_metadata=context.dump(),
        blocks=blocks,
    )


_CONFIRMATIONS = {
    MenuChoice.DUPLICATE: (
        "Duplicate token",
        "Duplicate",
        "Create a copy of *{name}* with the same description, API version, access rights and"
        " primary contact? The copy gets its own SID and secret, shown to you once, and works"
        " until the date you choose below.",
    ),
    MenuChoice.RESET: (
        "Reset token",
        "Reset",
        "Reset the secret of *{name}*? Integrations using the current value will stop"
        " working as soon as you confirm{unless}. The new secret is shown to you once, and"
        " works until the date you choose below.",
    ),
    MenuChoice.UPGRADE: (
        "Upgrade version",
        "Upgrade",
        "Move *{name}* from API version `{version}` to `{newest}`? Upgrading can break"
        " existing calls that rely on the older version.",
    ),
    MenuChoice.DELETE: (
        "Delete token",
        "Delete",
        "Delete *{name}*? It is removed completely and integrations using it stop working"
        " at once. The audit log keeps its history.",
    ),
}


ISSUING_A_SECRET = (MenuChoice.DUPLICATE, MenuChoice.RESET)


def confirm_view(
    choice: MenuChoice,
    *,
    token: Token,
    newest_version: str,
    context: ModalContext,
    expiry: ExpiryOffer | None = None,
    grace: GraceOffer | None = None,
) -> View:
    """The confirmation of a card menu choice; Duplicate and Reset, which issue a secret,
    also ask until when it works (`expiry`), and Reset how long the current secret keeps
    working (`grace`)."""
    title, submit, text = _CONFIRMATIONS[choice]
    if choice is MenuChoice.RESET and grace is None:
        raise ValueError("Reset says what becomes of the secrets in use")
    body = text.format(
        name=escape(token.name),
        version=escape(token.api_version),
        newest=escape(newest_version),
        unless=", unless you let it keep working a while below" if grace and grace.offered else "",
    )
    blocks: list[Block] = [SectionBlock(text=mrkdwn(body))]
    if grace is not None:
        blocks += grace_blocks(grace)
    if choice in ISSUING_A_SECRET:
        if expiry is None:
            raise ValueError(f"{choice} asks until when the new secret works")
        blocks += expiry_blocks(expiry)
    return View(
        type="modal",
        callback_id=CallbackId.CONFIRM,
        title=title,
        submit=submit,
        close="Cancel",
        private_metadata=context.dump(),
        blocks=blocks,
    )


def secret_view(issued: IssuedToken, *, why: Issued, refresh_failed: bool) -> View:
    """The only place a secret is ever shown: a close button, no submit, no input, and
    `notify_on_close` off, so nothing in it can travel back to Token Desk."""
    token = issued.token
    blocks: list[Block] = [
        SectionBlock(text=mrkdwn(f"*{escape(token.name)}* {why}.")),
        SectionBlock(text=mrkdwn(f"*SID*\n`{token.sid}`")),
        SectionBlock(text=mrkdwn(f"*Secret*\n`{issued.secret}`")),
        ContextBlock(
            elements=[
                mrkdwn(
                    ":warning: *Copy it now — it will not be shown again.* Token Desk keeps only"
                    " a fingerprint of it."
                )
            ]
        ),
    ]
    if refresh_failed:
        blocks.append(ContextBlock(elements=[mrkdwn(f"Run `{COMMAND}` again to see the list.")]))
    return View(
        type="modal",
        callback_id=CallbackId.SECRET,
        title="Copy the secret",
        close="Done",
        notify_on_close=False,
        blocks=blocks,
    )
