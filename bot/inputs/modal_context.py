"""What a modal carries in `private_metadata`: typed and size-bounded going out, validated
when Slack sends it back with the submission (it is still untrusted input).

The `response_url` it holds is followed only if it points at Slack (or at SLACK_API_URL's
host, for a stand-in), so a crafted payload can never make Token Desk post token data
elsewhere; a DM it names (a reminder or a leak report) is a DM channel (`D…`), where
chat.update reaches only the app's own messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yarl import URL

from bot.ids import MenuChoice
from bot.inputs.payloads import (
    BLOCKS_MAX,
    enum_member,
    home_click_of,
    list_view_of,
    response_url_of,
    token_dm_of,
)
from bot.list_view import NAME_FILTER_MAX, ListView
from storage.models import CreatedOn, LastUsedFilter, StateFilter, TokenFilter

PRIVATE_METADATA_MAX = 3000
SLACK_HOOK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60


class TokenDm(BaseModel):
    """The DM about tokens a modal was opened from — a reminder, or a leak report — and the
    tokens it lists: the modal's outcome is shown by updating it (chat.update), not a list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["reminder", "leak"]
    channel: str = Field(pattern=r"^D[A-Z0-9]{2,30}$")
    ts: str = Field(pattern=r"^[0-9]{1,12}\.[0-9]{1,9}$")
    token_ids: tuple[Annotated[int, Field(ge=1, lt=2**53)], ...] = Field(
        min_length=1, max_length=BLOCKS_MAX
    )

    @classmethod
    def of_click(cls, body: Mapping[str, Any]) -> TokenDm | None:
        """The DM about tokens a click came from, or None when it came from elsewhere."""
        found = token_dm_of(body)
        if found is None:
            return None
        kind, channel, ts, token_ids = found
        try:
            return cls(kind=kind, channel=channel, ts=ts, token_ids=tuple(dict.fromkeys(token_ids)))
        except ValidationError:
            return None


class ModalContext(BaseModel):
    """Typed and size-bounded; Slack sends it back with the submission, still untrusted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_id: int | None = Field(default=None, ge=1, lt=2**53)
    row_version: int | None = Field(default=None, ge=1, lt=2**53)
    action: str = Field(default="", max_length=20)
    response_url: str | None = Field(default=None, max_length=1000)
    response_url_at: float | None = None
    name: str = Field(default="", max_length=NAME_FILTER_MAX)
    created_on: CreatedOn | None = None
    state: StateFilter | None = None
    last_used: LastUsedFilter | None = None
    offset: int = Field(default=0, ge=0, le=10_000_000)
    dm: TokenDm | None = None
    # Opened from Home: the outcome is published there.
    home: bool = False

    @classmethod
    def of(
        cls,
        *,
        view: ListView | None,
        response_url: str | None,
        now: float,
        token_id: int | None = None,
        row_version: int | None = None,
        action: str = "",
    ) -> ModalContext:
        filters = view.filters if view else TokenFilter()
        return cls(
            token_id=token_id,
            row_version=row_version,
            action=action,
            response_url=response_url,
            response_url_at=now if response_url else None,
            name=filters.name,
            created_on=filters.created_on,
            state=filters.state,
            last_used=filters.last_used,
            offset=view.offset if view else 0,
        )

    @classmethod
    def from_click(
        cls,
        body: Mapping[str, Any],
        *,
        now: float,
        token_id: int | None = None,
        row_version: int | None = None,
        action: str = "",
    ) -> ModalContext:
        """For a modal opened from the list (the list to refresh when it is done), from a DM
        about tokens (the DM to update instead) or from Home (Home to publish instead)."""
        context = cls.of(
            view=list_view_of(body),
            response_url=response_url_of(body),
            now=now,
            token_id=token_id,
            row_version=row_version,
            action=action,
        )
        dm = TokenDm.of_click(body)
        home = home_click_of(body) is not None
        return context.model_copy(update={"dm": dm, "home": home})

    @classmethod
    def parse(cls, metadata: object) -> ModalContext | None:
        if not isinstance(metadata, str) or not metadata or len(metadata) > PRIVATE_METADATA_MAX:
            return None
        try:
            return cls.model_validate_json(metadata)
        except ValidationError:
            return None

    def dump(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    @property
    def list_view(self) -> ListView:
        filters = TokenFilter(
            name=self.name,
            created_on=self.created_on,
            state=self.state,
            last_used=self.last_used,
        )
        return ListView(filters=filters, offset=self.offset)

    @property
    def menu_choice(self) -> MenuChoice | None:
        return enum_member(MenuChoice, self.action)

    def usable_response_url(self, *, api_url: str, now: float) -> str | None:
        """The opening click's response_url while Slack still accepts it, if it points at
        Slack (or at SLACK_API_URL's host, for a stand-in): a crafted payload can never make
        Token Desk post token data elsewhere."""
        if not self.response_url or self.response_url_at is None:
            return None
        if now - self.response_url_at >= RESPONSE_URL_LIFETIME_SECONDS - 60:
            return None
        if not _plain_url(self.response_url):
            return None
        target, api = URL(self.response_url), URL(api_url)
        if target.host in SLACK_HOOK_HOSTS and target.scheme == "https":
            return self.response_url
        if (target.scheme, target.host, target.port) == (api.scheme, api.host, api.port):
            return self.response_url
        return None


def _plain_url(url: str) -> bool:
    """No user part, backslash, whitespace or control character: nothing on which two URL
    parsers could disagree about the host."""
    if not url.isprintable() or any(character in url for character in "\\@ "):
        return False
    try:
        return URL(url).is_absolute()
    except ValueError:
        return False
