"""Listener registration: one module per feature, each with `register(app)`.

`/tokens` is one Slack command: `commands` dispatches its sub-commands, from a table, to the
feature modules (`roles` and `help` are reached only that way).
"""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from bot.listeners import (
    access,
    audit,
    card_actions,
    commands,
    events,
    leaks,
    token_forms,
    token_list,
)


def register(app: AsyncApp) -> None:
    for feature in (commands, token_list, card_actions, token_forms, access, audit, events, leaks):
        feature.register(app)
    # Bolt answers an event no listener matches with a 404 (over Socket Mode, no ack at all),
    # and Slack would retry it: any other event is acknowledged and ignored. Registered last,
    # since Bolt runs the first listener that matches.
    app.event(re.compile(".*"))(events.ignore)
