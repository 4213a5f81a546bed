"""Builds the token list message from one page of tokens: header, banner, notice, Create,
filters, cards, pager (bot/list_message.py reads the page from the store).

Pure: domain models in, Block Kit out. User text reaches mrkdwn only escaped and in
`verbatim` texts; token names are `plain_text` (card headers). The worst case — banner,
notice, filters, 10 cards and the pager — is 38 blocks, within Slack's 50.

A card shows the token as it is at `now` (expired once past its stop instant), which the
caller reads from the store's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    Option,
    OverflowMenuElement,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.basic_components import DispatchActionConfig

from bot.blocks.common import Message, escape, mention, mrkdwn, slack_date
from bot.ids import ActionId, BlockId
from bot.list_view import ANY, NAME_FILTER_MAX, PAGE_SIZE, ListView, stateful_block_id
from storage.models import (
    EXPIRING_SOON_DAYS,
    IDLE,
    CreatedOn,
    LastUsedFilter,
    StateFilter,
    Token,
    TokenPage,
    TokenState,
)

TITLE = "API Access Tokens"


@dataclass(frozen=True, slots=True)
class Notice:
    """The result of the last action: mrkdwn, escaped (bot/blocks/notices.py builds them), and
    the token to offer a Reset for, if any (after Enable, or a pasted secret)."""

    text: str
    offer_reset: Token | None = None


RIGHTS_SHOWN = 3
CREATED_ON_LABELS = {
    CreatedOn.LAST_7_DAYS: "Last 7 days",
    CreatedOn.LAST_30_DAYS: "Last 30 days",
    CreatedOn.MORE_THAN_30_DAYS: "More than 30 days",
}
STATE_LABELS = {
    TokenState.ENABLED: "Enabled",
    TokenState.EXPIRED: "Expired",
    TokenState.DISABLED: "Disabled",
}
STATE_FILTER_LABELS = {
    StateFilter.ENABLED: "Enabled",
    StateFilter.EXPIRED: "Expired",
    StateFilter.DISABLED: "Disabled",
    StateFilter.EXPIRING_SOON: "Expiring soon",
}
LAST_USED_LABELS = {
    LastUsedFilter.NEVER: "Never used",
    LastUsedFilter.NOT_30_DAYS: "Not in 30 days",
    LastUsedFilter.NOT_90_DAYS: "Not in 90 days",
}
FilterChoice = CreatedOn | StateFilter | LastUsedFilter


def _option(text: str, value: str) -> Option:
    return Option(text=PlainTextObject(text=text), value=value)


def _select(
    action_id: ActionId,
    label: str,
    any_label: str,
    choices: dict[CreatedOn, str] | dict[StateFilter, str] | dict[LastUsedFilter, str],
    current: FilterChoice | None,
) -> StaticSelectElement:
    """A filter select: its placeholder names the filter until a value is chosen, and an
    "Any …" option clears this one filter alone."""
    options = [_option(any_label, ANY)] + [_option(text, value) for value, text in choices.items()]
    chosen = next((option for option in options if current and option.value == current), None)
    return StaticSelectElement(
        action_id=action_id,
        placeholder=PlainTextObject(text=label),
        options=options,
        initial_option=chosen,
    )


def filter_blocks(view: ListView, nonce: str) -> list[Block]:
    """Search by Name (fires on Enter), Created On, State, Last used and Clear All."""
    filters = view.filters
    search = InputBlock(
        block_id=stateful_block_id(BlockId.SEARCH, view, nonce),
        label=PlainTextObject(text="Search by Name"),
        dispatch_action=True,
        optional=True,
        element=PlainTextInputElement(
            action_id=ActionId.FILTER_NAME,
            placeholder=PlainTextObject(text="Part of a name, then Enter"),
            initial_value=filters.name or None,
            max_length=NAME_FILTER_MAX,
            dispatch_action_config=DispatchActionConfig(trigger_actions_on=["on_enter_pressed"]),
        ),
    )
    selects = ActionsBlock(
        block_id=stateful_block_id(BlockId.FILTERS, view, nonce),
        elements=[
            _select(
                ActionId.FILTER_CREATED,
                "Created On",
                "Any date",
                CREATED_ON_LABELS,
                filters.created_on,
            ),
            _select(
                ActionId.FILTER_STATE, "State", "Any state", STATE_FILTER_LABELS, filters.state
            ),
            _select(
                ActionId.FILTER_LAST_USED,
                "Last used",
                "Any last use",
                LAST_USED_LABELS,
                filters.last_used,
            ),
            ButtonElement(text="Clear All", action_id=ActionId.CLEAR_FILTERS, value="clear"),
        ],
    )
    return [search, selects]


def _rights(rights: tuple[str, ...]) -> str:
    shown = ", ".join(f"`{escape(scope)}`" for scope in rights[:RIGHTS_SHOWN])
    hidden = len(rights) - RIGHTS_SHOWN
    return shown + (f" +{hidden} more" if hidden > 0 else "") if rights else "none"


def _menu(token: Token) -> OverflowMenuElement:
    toggle = ("disable", "Disable") if token.enabled else ("enable", "Enable")
    choices = [
        ("duplicate", "Duplicate"),
        ("reset", "Reset"),
        ("upgrade", "Upgrade Version"),
        toggle,
        ("delete", "Delete"),
    ]
    return OverflowMenuElement(
        action_id=ActionId.TOKEN_MENU,
        options=[
            _option(label, f"{action}:{token.id}:{token.row_version}") for action, label in choices
        ],
    )


def works_until(token: Token, *, now: datetime, expiry_required: bool) -> str:
    """When the token stops, in each viewer's time zone: marked when that is a week away or
    less, and a token without expiry flagged while every new secret must expire."""
    stops_at = token.stops_at
    if stops_at is None:
        if expiry_required:
            return ":warning: *No expiry*: choose a date with Edit"
        return "*Works until* no expiry"
    if stops_at <= now:
        return f"*Stopped* {slack_date(stops_at)}"
    if token.expires_within(now, EXPIRING_SOON_DAYS):
        return f":hourglass_flowing_sand: *Works until {slack_date(stops_at)}*"
    return f"*Works until* {slack_date(stops_at)}"


def card_blocks(
    token: Token, *, newest_version: str, now: datetime, expiry_required: bool
) -> list[Block]:
    """One token as it is at `now`: its name as a header, its details with the action menu,
    an Edit button. `expiry_required`: a maximum lifetime is set."""
    version = f"`{escape(token.api_version)}`"
    if token.api_version != newest_version:
        version += f" (upgrade to `{escape(newest_version)}` available)"
    last_used = slack_date(token.last_used_at, ago=True) if token.last_used_at else "never"
    state = STATE_LABELS[token.state_at(now)]
    lines = [
        f"*SID* `{token.sid}`   *State* {state}   *API version* {version}",
        works_until(token, now=now, expiry_required=expiry_required),
        f"*Access rights* {_rights(token.access_rights)}",
        f"*Created* {slack_date(token.created_at, with_time=False)}"
        f" by {mention(token.created_by)}   *Last used* {last_used}",
        f"*Secret* ends in `{escape(token.secret_hint)}`"
        f"   *Primary contact* {mention(token.primary_contact)}",
    ]
    if not token.enabled and token.disabled_reason == IDLE:
        lines.append(
            ":zzz: *Disabled by Token Desk*: unused since"
            f" {slack_date(token.last_active_at, with_time=False)}"
        )
    details = "\n".join(lines)
    return [
        HeaderBlock(
            block_id=f"card.{token.id}", text=PlainTextObject(text=token.name, emoji=False)
        ),
        SectionBlock(block_id=f"details.{token.id}", text=mrkdwn(details), accessory=_menu(token)),
        ActionsBlock(
            block_id=f"edit.{token.id}",
            elements=[
                ButtonElement(
                    text="Edit",
                    action_id=ActionId.TOKEN_EDIT,
                    value=f"{token.id}:{token.row_version}",
                )
            ],
        ),
    ]


def _empty_state(filtered: bool) -> Block:
    if filtered:
        return SectionBlock(
            block_id="empty",
            text=mrkdwn("*No tokens match* these filters."),
            accessory=ButtonElement(
                text="Clear All", action_id=ActionId.CLEAR_FILTERS, value="clear"
            ),
        )
    return SectionBlock(
        block_id="empty",
        text=mrkdwn("*No tokens yet.* Create the first one for an integration."),
        accessory=ButtonElement(
            text="Create Access Token", action_id=ActionId.CREATE, value="create", style="primary"
        ),
    )


def _pager(page: TokenPage) -> list[Block]:
    first, last = page.offset + 1, page.offset + len(page.tokens)
    label = ContextBlock(block_id="range", elements=[mrkdwn(f"{first}–{last} of {page.total}")])
    buttons = []
    if page.offset > 0:
        buttons.append(
            ButtonElement(
                text="Previous",
                action_id=ActionId.PREVIOUS_PAGE,
                value=str(max(0, page.offset - PAGE_SIZE)),
            )
        )
    if last < page.total:
        buttons.append(ButtonElement(text="Next", action_id=ActionId.NEXT_PAGE, value=str(last)))
    return [label] + ([ActionsBlock(block_id="pager", elements=buttons)] if buttons else [])


def range_text(page: TokenPage) -> str:
    if not page.tokens:
        return "no tokens"
    return f"{page.offset + 1}–{page.offset + len(page.tokens)} of {page.total}"


def render_token_list(
    *,
    page: TokenPage,
    view: ListView,
    newest_version: str,
    api_access: bool,
    now: datetime,
    expiry_required: bool,
    notice: Notice | None = None,
    nonce: str,
) -> Message:
    """The whole list message, its cards as they are at `now`."""
    blocks: list[Block] = [HeaderBlock(block_id="title", text=TITLE)]
    if not api_access:
        blocks.append(
            SectionBlock(
                block_id="banner",
                text=mrkdwn(
                    ":warning: *API access is off.* Every token fails the auth check until it"
                    " is turned on."
                ),
                accessory=ButtonElement(
                    text="Enable API Access",
                    action_id=ActionId.ENABLE_API_ACCESS,
                    value="on",
                    style="primary",
                ),
            )
        )
    if notice:
        reset = notice.offer_reset
        blocks.append(
            SectionBlock(
                block_id="notice",
                text=mrkdwn(notice.text),
                accessory=ButtonElement(
                    text="Reset now",
                    action_id=ActionId.RESET_NOW,
                    value=f"{reset.id}:{reset.row_version}",
                    style="danger",
                )
                if reset
                else None,
            )
        )
    blocks.append(
        ActionsBlock(
            block_id="create",
            elements=[
                ButtonElement(
                    text="Create Access Token",
                    action_id=ActionId.CREATE,
                    value="create",
                    style="primary",
                )
            ],
        )
    )
    blocks += filter_blocks(view, nonce)
    for token in page.tokens:
        blocks += card_blocks(
            token, newest_version=newest_version, now=now, expiry_required=expiry_required
        )
    if page.tokens:
        blocks += _pager(page)
    else:
        blocks.append(_empty_state(filtered=not view.filters.is_empty or page.total > 0))
    return Message(text=f"{TITLE}: {range_text(page)}", blocks=blocks)
