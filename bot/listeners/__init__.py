"""Listener registration: one module per feature, each with `register(app)`.

`/tokens` is one Slack command: `commands` dispatches its sub-commands, from a table, to the
feature modules (`roles` and `help` are reached only that way).
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import access, audit, card_actions, commands, events, token_forms, token_list


def register(app: AsyncApp) -> None:
    for feature in (commands, token_list, card_actions, token_forms, access, audit, events):
        feature.register(app)
