"""Modals: the create/edit form, the confirmations, the one-time secret view, messages.

Pure builders. Token names reach mrkdwn only escaped, in `verbatim` texts.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
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

from bot.blocks.common import escape, mrkdwn
from bot.blocks.notices import Issued
from bot.ids import COMMAND, CallbackId, FormField, MenuChoice
from bot.inputs.modal_context import ModalContext
from storage.fields import DESCRIPTION_MAX, NAME_MAX
from storage.models import IssuedToken, Token

TITLE = "Token Desk"


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


def token_form(
    *,
    context: ModalContext,
    newest_version: str,
    scopes: Sequence[str],
    contact: str,
    token: Token | None = None,
    name: str = "",
) -> View:
    """Create (no `token`) or Edit (`token`, prefilled; its API version read-only: only
    Upgrade Version changes it, and a new token always gets the newest)."""
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
        " primary contact? The copy gets its own SID and secret, shown to you once.",
    ),
    MenuChoice.RESET: (
        "Reset token",
        "Reset",
        "Reset the secret of *{name}*? Integrations using the current value will stop"
        " working as soon as you confirm. The new secret is shown to you once.",
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


def confirm_view(
    choice: MenuChoice, *, token: Token, newest_version: str, context: ModalContext
) -> View:
    title, submit, text = _CONFIRMATIONS[choice]
    body = text.format(
        name=escape(token.name),
        version=escape(token.api_version),
        newest=escape(newest_version),
    )
    return View(
        type="modal",
        callback_id=CallbackId.CONFIRM,
        title=title,
        submit=submit,
        close="Cancel",
        private_metadata=context.dump(),
        blocks=[SectionBlock(text=mrkdwn(body))],
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
