"""The modals, pure: the create/edit form, the confirmations, the secret view."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.blocks.modals import confirm_view, message_view, secret_view, token_form
from bot.blocks.notices import Issued
from bot.ids import MenuChoice
from bot.inputs.modal_context import ModalContext
from bot.list_view import ListView
from slack_standin.blockkit import check_view
from storage.fields import DESCRIPTION_MAX, NAME_MAX
from storage.models import IssuedToken, TokenFilter
from tests.bot.blocks.samples import HOSTILE, token
from tests.bot.blockwalk import all_text, assert_harmless, blocks_of, interactive

SCOPES = tuple(f"scope{n:02d}:{'x' * 60}" for n in range(100))
SECRET = "tdk_" + "A" * 38
CONFIRMED = (MenuChoice.DUPLICATE, MenuChoice.RESET, MenuChoice.UPGRADE, MenuChoice.DELETE)


def widest_context() -> ModalContext:
    """As much as a modal ever carries: a token, a response_url, a full filter."""
    return ModalContext.of(
        view=ListView(filters=TokenFilter(name="n" * 100), offset=9_999_990),
        response_url="https://hooks.slack.com/actions/" + "x" * 900,
        now=1_800_000_000.0,
        token_id=2**53 - 1,
        row_version=2**53 - 1,
        action=MenuChoice.DUPLICATE,
    )


def as_dict(view: View) -> dict[str, Any]:
    return view.to_dict()


def test_the_create_form_offers_only_the_newest_version_and_fits_slacks_limits() -> None:
    form = as_dict(
        token_form(
            context=widest_context(),
            newest_version="2025-06",
            scopes=SCOPES,
            contact="UCONTACT1",
            name=HOSTILE,
        )
    )
    assert check_view(form) == []
    labels = [b["label"]["text"] for b in blocks_of(form) if b["type"] == "input"]
    assert labels == ["Name", "Description", "API version", "Access rights", "Primary contact"]
    version = next(b for b in blocks_of(form) if b["block_id"] == "api_version")["element"]
    assert [o["value"] for o in version["options"]] == ["2025-06"]
    assert version["initial_option"]["value"] == "2025-06"
    name = next(b for b in blocks_of(form) if b["block_id"] == "name")["element"]
    assert name["initial_value"] == HOSTILE and name["max_length"] == NAME_MAX
    assert ModalContext.parse(form["private_metadata"]) == widest_context()
    assert (form["callback_id"], form["submit"]["text"]) == ("token_create", "Create")


def test_the_edit_form_is_prefilled_and_shows_the_version_read_only() -> None:
    hostile = token(
        name=HOSTILE,
        description="d" * DESCRIPTION_MAX,
        api_version="<v1>",
        access_rights=SCOPES[:3],
    )
    form = as_dict(
        token_form(
            context=widest_context(),
            newest_version="v3",
            scopes=SCOPES,
            contact=hostile.primary_contact,
            token=hostile,
        )
    )
    assert check_view(form) == []
    assert_harmless(form)
    version = next(b for b in blocks_of(form) if b["block_id"] == "api_version")
    assert version["type"] == "context" and "`&lt;v1&gt;`" in all_text(version)
    rights = next(b for b in blocks_of(form) if b["block_id"] == "access_rights")["element"]
    assert [o["value"] for o in rights["initial_options"]] == list(SCOPES[:3])
    assert (form["callback_id"], form["submit"]["text"]) == ("token_edit", "Save")


@pytest.mark.parametrize("choice", CONFIRMED)
def test_each_confirmation_names_the_token_escaped(choice: MenuChoice) -> None:
    hostile = token(name=HOSTILE, api_version="<v1>")
    view = as_dict(
        confirm_view(choice, token=hostile, newest_version="<v3>", context=widest_context())
    )
    assert check_view(view) == []
    assert_harmless(view)
    assert "&lt;!channel&gt; &amp; &lt;@U1&gt;" in all_text(view)
    assert view["callback_id"] == "token_confirm" and view["submit"] is not None
    if choice is MenuChoice.UPGRADE:
        assert "`&lt;v1&gt;` to `&lt;v3&gt;`" in all_text(view)


@pytest.mark.parametrize("refresh_failed", [False, True])
def test_the_secret_view_shows_the_secret_once_and_nothing_can_send_it_back(
    refresh_failed: bool,
) -> None:
    issued = IssuedToken(token=token(name=HOSTILE), secret=SECRET)
    view = as_dict(secret_view(issued, why=Issued.RESET, refresh_failed=refresh_failed))
    assert check_view(view) == []
    assert_harmless(view)
    assert SECRET in all_text(view) and "TD00000000000000000001" in all_text(view)
    assert "has a new secret" in all_text(view)
    assert view.get("submit") is None and view["notify_on_close"] is False
    assert interactive(view) == [] and "private_metadata" not in view
    assert ("Run `/tokens` again" in all_text(view)) is refresh_failed


def test_a_message_view_only_closes() -> None:
    view = as_dict(message_view("*Done*"))
    assert check_view(view) == []
    assert view.get("submit") is None and view["close"]["text"] == "Close"
