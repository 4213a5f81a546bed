"""Builds the token list message from one page of tokens: header, banner, notice, Create,
filters, cards, pager (bot/list_message.py reads the page from the store).

Pure: domain models in, Block Kit out. User text reaches mrkdwn only escaped and in
`verbatim` texts; token names are `plain_text` (card headers). The worst case — banner,
notice, filters, 10 cards and the pager — is 38 blocks, within Slack's 50: a card is three
blocks whatever it shows (End grace now joins Edit in the card's actions block). The text
stays within Slack's cap on a message's text too: what a gateway said about who presented
an old secret (untrusted, escaped) is cut short, and a card names at most PRESENTERS_SHOWN
presenters, or only the latest, or none, when a full page would run past the cap.

A card shows the token as it is at `now` (expired once past its stop instant), which the
caller reads from the store's clock.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
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

from bot.blocks.common import (
    Message,
    Rendered,
    WithAccessory,
    escape,
    mention,
    mrkdwn,
    render_once,
    slack_date,
)
from bot.ids import ActionId, BlockId
from bot.list_view import ANY, NAME_FILTER_MAX, PAGE_SIZE, ListView, stateful_block_id
from storage.models import (
    EXPIRING_SOON_DAYS,
    IDLE,
    LEAKED,
    CreatedOn,
    LastUsedFilter,
    Presenter,
    RetiredSummary,
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
# Who presented an old secret, newest first: how many a card names, and how much of each.
PRESENTERS_SHOWN = 3
ADDRESS_SHOWN = 45  # an IPv6 address in full
USER_AGENT_SHOWN = 40
# The text the notice and the cards may take: Slack refuses a message with more than about
# 12,000 characters of text in all, and the rest of the list (banner, filters, the cards'
# menus and buttons, pager) takes < 1,000 at its longest.
CARDS_TEXT_BUDGET = 10_900
# Cards kept rendered (`_card_parts`): some pages of every list and Home being looked at,
# a few kilobytes each.
CARDS_KEPT = 1024
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
    selects = _selects(filters.created_on, filters.state, filters.last_used)
    return [search, selects.under(stateful_block_id(BlockId.FILTERS, view, nonce))]


@functools.cache
def _selects(
    created_on: CreatedOn | None, state: StateFilter | None, last_used: LastUsedFilter | None
) -> Rendered:
    """The filter selects and Clear All, rendered once for each choice of filters."""
    return Rendered(
        ActionsBlock(
            block_id=BlockId.FILTERS,
            elements=[
                _select(
                    ActionId.FILTER_CREATED, "Created On", "Any date", CREATED_ON_LABELS, created_on
                ),
                _select(ActionId.FILTER_STATE, "State", "Any state", STATE_FILTER_LABELS, state),
                _select(
                    ActionId.FILTER_LAST_USED,
                    "Last used",
                    "Any last use",
                    LAST_USED_LABELS,
                    last_used,
                ),
                ButtonElement(text="Clear All", action_id=ActionId.CLEAR_FILTERS, value="clear"),
            ],
        )
    )


def _rights(rights: tuple[str, ...]) -> str:
    shown = ", ".join(f"`{escape(scope)}`" for scope in rights[:RIGHTS_SHOWN])
    hidden = len(rights) - RIGHTS_SHOWN
    return shown + (f" +{hidden} more" if hidden > 0 else "") if rights else "none"


def _menu_choices(token: Token) -> tuple[tuple[str, str], ...]:
    """Duplicate, Reset, Upgrade Version, Disable or Enable, Delete; no Enable while the
    token is leaked: only a Reset makes it safe again."""
    choices = [("duplicate", "Duplicate"), ("reset", "Reset"), ("upgrade", "Upgrade Version")]
    if token.enabled:
        choices.append(("disable", "Disable"))
    elif token.leaked_at is None:
        choices.append(("enable", "Enable"))
    choices.append(("delete", "Delete"))
    return tuple(choices)


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


def leaked(at: datetime) -> str:
    """A leaked token's first line, above all the rest: its secret was posted in Slack, and
    only a Reset replaces it. Short: a page of ten cards must stay within Slack's text cap."""
    return f":rotating_light: *Leaked in Slack* {slack_date(at, with_time=False)} — Reset it now"


def previous_secret(token: Token, *, now: datetime) -> str | None:
    """Until when the secret a Reset replaced still works, and its last use; None when no
    grace window is open at `now`."""
    if token.previous_until is None or not token.grace_open_at(now):
        return None
    used = token.previous_last_used_at
    last_use = f"last used {slack_date(used, ago=True)}" if used else "not used since the reset"
    hint = f"ends in `{escape(token.previous_secret_hint)}`, " if token.previous_secret_hint else ""
    return (
        f":hourglass: *Previous secret works until* {slack_date(token.previous_until)}"
        f" ({hint}{last_use})"
    )


def _cut(text: str, limit: int) -> str:
    """`text` escaped, in at most `limit` characters: cut, with an ellipsis, between two
    characters, never inside the `&amp;` of one."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    shown, used = [], 0
    for character in text:
        piece = escape(character)
        if used + len(piece) > limit - 1:
            break
        shown.append(piece)
        used += len(piece)
    return "".join(shown) + "…"


def _presenter(presenter: Presenter) -> str:
    address = _cut(presenter.address, ADDRESS_SHOWN) if presenter.address else "unknown address"
    agent = (
        _cut(presenter.user_agent, USER_AGENT_SHOWN) if presenter.user_agent else "no user agent"
    )
    return f"{address} ({agent})"


def old_secret_presented(
    retired: RetiredSummary | None, *, presenters_shown: int = PRESENTERS_SHOWN
) -> str | None:
    """How often secrets retired from the token were still presented, when last, and by
    whom (the latest `presenters_shown` distinct presenters); None when never."""
    if retired is None or retired.presented <= 0:
        return None
    times = f"{retired.presented:,} time{'' if retired.presented == 1 else 's'}"
    last = retired.last_presented_at
    line = f":mag: *Old secret still presented* {times}"
    if last is not None:
        line += f", last {slack_date(last, ago=True)}"
    newest: dict[tuple[str, str], Presenter] = {}
    for presenter in retired.presenters:
        newest.setdefault((presenter.address, presenter.user_agent), presenter)
    distinct = list(newest.values())
    if distinct and presenters_shown > 0:
        line += ", from " + "; ".join(_presenter(p) for p in distinct[:presenters_shown])
        if len(distinct) > presenters_shown:
            line += f" +{len(distinct) - presenters_shown} more"
    return line


def _actions(ref: str, *, grace_open: bool) -> list[ButtonElement]:
    """Edit, and End grace now while a previous secret still works: in the one actions
    block a card has, so that a card costs no extra block."""
    buttons = [ButtonElement(text="Edit", action_id=ActionId.TOKEN_EDIT, value=ref)]
    if grace_open:
        buttons.append(ButtonElement(text="End grace now", action_id=ActionId.END_GRACE, value=ref))
    return buttons


def card_details(
    token: Token,
    *,
    newest_version: str,
    now: datetime,
    expiry_required: bool,
    presenters_shown: int = PRESENTERS_SHOWN,
) -> str:
    """A card's text: the token as it is at `now`. `expiry_required`: a maximum lifetime is
    set; `presenters_shown`: how many presenters of an old secret it names at most."""
    version = f"`{escape(token.api_version)}`"
    if token.api_version != newest_version:
        version += f" (upgrade to `{escape(newest_version)}` available)"
    last_used = slack_date(token.last_used_at, ago=True) if token.last_used_at else "never"
    state = STATE_LABELS[token.state_at(now)]
    lines = [] if token.leaked_at is None else [leaked(token.leaked_at)]
    lines += [
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
    elif not token.enabled and token.disabled_reason == LEAKED:
        lines.append(":no_entry: *Disabled by Token Desk*: its secret was posted in Slack")
    extra = (
        previous_secret(token, now=now),
        old_secret_presented(token.retired, presenters_shown=presenters_shown),
    )
    lines += [line for line in extra if line is not None]
    return "\n".join(lines)


def card_blocks(
    token: Token,
    *,
    newest_version: str,
    now: datetime,
    expiry_required: bool,
    details: str | None = None,
) -> list[Block]:
    """One token as it is at `now`: its name as a header, its details (`card_details`,
    unless given) with the action menu, an Edit button (and End grace now during a grace
    window)."""
    if details is None:
        details = card_details(
            token, newest_version=newest_version, now=now, expiry_required=expiry_required
        )
    header, menu, actions = _card_parts(
        token.id,
        token.name,
        f"{token.id}:{token.row_version}",
        _menu_choices(token),
        grace_open=token.grace_open_at(now),
    )
    details_block = SectionBlock(block_id=f"details.{token.id}", text=mrkdwn(details))
    return [header, WithAccessory(details_block, menu), actions]


@functools.lru_cache(maxsize=CARDS_KEPT)
def _card_parts(
    token_id: int,
    name: str,
    ref: str,
    menu: tuple[tuple[str, str], ...],
    *,
    grace_open: bool,
) -> tuple[Block, bytes, Block]:
    """A card's header, menu and actions from all they show (`ref`: the token id and row
    version the buttons and the menu act on), checked by slack_sdk once: under load the
    same cards go out in list after list and Home after Home, and slack_sdk's checks cost
    several times what building them does. Not the details, whose last use changes with
    every auth check."""
    return (
        Rendered(
            HeaderBlock(block_id=f"card.{token_id}", text=PlainTextObject(text=name, emoji=False))
        ),
        render_once(
            OverflowMenuElement(
                action_id=ActionId.TOKEN_MENU,
                options=[_option(label, f"{action}:{ref}") for action, label in menu],
            )
        ),
        Rendered(
            ActionsBlock(block_id=f"edit.{token_id}", elements=_actions(ref, grace_open=grace_open))
        ),
    )


def _cards(
    tokens: Sequence[Token],
    *,
    newest_version: str,
    now: datetime,
    expiry_required: bool,
    notice: Notice | None,
) -> list[Block]:
    """The page's cards, each naming up to PRESENTERS_SHOWN presenters of an old secret, or
    only the latest one, or none, when more would take the message past CARDS_TEXT_BUDGET."""

    def details(presenters_shown: int) -> list[str]:
        return [
            card_details(
                token,
                newest_version=newest_version,
                now=now,
                expiry_required=expiry_required,
                presenters_shown=presenters_shown,
            )
            for token in tokens
        ]

    budget = (
        CARDS_TEXT_BUDGET
        - (len(notice.text) if notice else 0)
        - sum(len(token.name) for token in tokens)
    )
    for presenters_shown in (PRESENTERS_SHOWN, 1, 0):
        texts = details(presenters_shown)
        if sum(map(len, texts)) <= budget:
            break
    blocks: list[Block] = []
    for token, text in zip(tokens, texts, strict=True):
        blocks += card_blocks(
            token,
            newest_version=newest_version,
            now=now,
            expiry_required=expiry_required,
            details=text,
        )
    return blocks


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


def api_access_banner() -> Block:
    """Shown while API access is off, with the button that turns it on."""
    return SectionBlock(
        block_id="banner",
        text=mrkdwn(
            ":warning: *API access is off.* Every token fails the auth check until it is turned on."
        ),
        accessory=ButtonElement(
            text="Enable API Access",
            action_id=ActionId.ENABLE_API_ACCESS,
            value="on",
            style="primary",
        ),
    )


def notice_block(notice: Notice) -> Block:
    """The notice area: the result of the last action, and Reset now when it offers one."""
    reset = notice.offer_reset
    return SectionBlock(
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


@functools.cache
def create_block() -> Block:
    """The Create Access Token button."""
    return Rendered(
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


@functools.cache
def title_block() -> Block:
    """The list's and a manager's Home's title."""
    return Rendered(HeaderBlock(block_id="title", text=TITLE))


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
    blocks: list[Block] = [title_block()]
    if not api_access:
        blocks.append(api_access_banner())
    if notice:
        blocks.append(notice_block(notice))
    blocks.append(create_block())
    blocks += filter_blocks(view, nonce)
    blocks += _cards(
        page.tokens,
        newest_version=newest_version,
        now=now,
        expiry_required=expiry_required,
        notice=notice,
    )
    if page.tokens:
        blocks += _pager(page)
    else:
        blocks.append(_empty_state(filtered=not view.filters.is_empty or page.total > 0))
    return Message(text=f"{TITLE}: {range_text(page)}", blocks=blocks)
