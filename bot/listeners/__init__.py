"""Listener registration, one module per kind of request."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, administration, commands, events, views


def register(app: AsyncApp) -> None:
    commands.register(app)
    actions.register(app)
    administration.register(app)
    views.register(app)
    events.register(app)
