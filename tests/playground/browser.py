"""The playground in a real browser: fixtures and the few moves every browser test makes.

One playground (the real app wired to the Slack stand-in, seeded with the demo) runs for the
whole session on its own event loop in a thread, on a free loopback port; one headless
Chromium (the system's, driven by Playwright) serves every test, each test in a fresh
browser context (no cookies, no localStorage: the page starts as Ana, in #token-desk).
Every console error and uncaught page error of a test fails it.

Without Chromium or Playwright the tests skip, saying how to get them; under CI
(`CI=true`) they are required, and fail instead.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from playground import demo
from playground.server import Playground

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, ViewportSize
    from playwright.sync_api._generated import LocatorAssertions

T = TypeVar("T")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
# How long a step may wait for the page: the app answers in milliseconds; a slow shared
# machine gets room, a broken page fails the test instead of hanging it.
STEP_TIMEOUT_MS = 10_000
CALL_TIMEOUT_SECONDS = 30.0


def browser_missing() -> str | None:
    """What the browser tests lack, and how to get it; None when nothing."""
    missing = []
    if shutil.which("chromium") is None:
        missing.append("Chromium (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright (pip install -e .[dev])")
    return "browser tests need " + " and ".join(missing) if missing else None


def required_under_ci() -> bool:
    """Under CI the browser tests must run: a missing browser fails them."""
    return os.environ.get("CI") == "true"


def chromium_path() -> str:
    """The system Chromium's path, with Playwright importable; else the test skips, or
    fails under CI."""
    missing = browser_missing()
    if missing is not None:
        if required_under_ci():
            pytest.fail(missing)
        pytest.skip(missing)
    path = shutil.which("chromium")
    assert path is not None
    return path


class RunningPlayground:
    """A started Playground on an event loop of its own, in a thread: the browser talks to
    it over HTTP, and the test arranges its world with `call`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.playground = Playground(port=0)

    def start(self) -> None:
        self._thread.start()
        self.call(self.playground.start())

    def stop(self) -> None:
        try:
            self.call(self.playground.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CALL_TIMEOUT_SECONDS)
            self.loop.close()

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """`work` run on the playground's loop; its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(CALL_TIMEOUT_SECONDS)

    @property
    def url(self) -> str:
        return self.playground.url

    @property
    def port(self) -> int:
        return self.playground.port

    def secret_of(self, name: str) -> str:
        """The current secret the demo seed gave the token `name`."""
        return self.playground.demo.secrets[name]

    def close_every_modal(self) -> None:
        """Each person closes the modals an earlier test left open (as the X of their
        bottom modal does)."""

        async def close_all() -> None:
            standin = self.playground.standin
            for person in demo.PEOPLE:
                stack = standin.modal_stack(person.id)
                if stack:
                    standin.close_view(person.id, stack[0]["id"])

        self.call(close_all())

    def add_token(self, name: str) -> None:
        """A token made as Ana makes one, straight through the playground's store."""
        today = datetime.now(UTC).date()
        self.call(
            self.playground.store.tokens.create(
                actor=demo.ANA,
                name=name,
                access_rights=["reports:read"],
                primary_contact=demo.ANA,
                expires_on=today + timedelta(days=30),
            )
        )


@dataclass
class Watched:
    """A page, and what went wrong in it: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")


# Module-scoped: Playwright's sync API keeps an event loop running in this thread while it
# is open, and the asyncio tests of the other modules need the thread to themselves.
@pytest.fixture(scope="module")
def running_playground() -> Iterator[RunningPlayground]:
    running = RunningPlayground()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives the browser a fresh profile (user-data dir) and removes it after.
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def watched(browser: Browser, running_playground: RunningPlayground) -> Iterator[Watched]:
    """The playground's page, freshly opened as Ana in #token-desk; the test fails on any
    console error or page error it caused."""
    running_playground.close_every_modal()
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    watching = Watched(page)
    page.on("console", watching.console)
    page.on("pageerror", watching.page_error)
    try:
        open_page(page, running_playground.url)
        yield watching
        assert not watching.errors, "\n".join(watching.errors)
    finally:
        context.close()


def expect(target: Locator) -> LocatorAssertions:
    """Playwright's `expect`, imported when a test runs: without Playwright the module still
    loads, and its browser tests skip (or fail under CI) in the fixtures."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def open_page(page: Page, url: str) -> None:
    """Opens the playground at `url` and waits until it has drawn the workspace."""
    page.goto(url)
    page.locator("#user-switch option").first.wait_for(state="attached")


# -- what a person does on the page --------------------------------------------------------


def sign_in_as(page: Page, user_id: str) -> None:
    """The user switcher set to `user_id`, and the page redrawn for them."""
    page.select_option("#user-switch", user_id)
    page.locator(f"#user-switch option[value='{user_id}']:checked").wait_for(state="attached")
    # Drawn from their state, not still the previous user's messages.
    page.locator(f"body[data-shown-user='{user_id}']").wait_for(state="attached")


def type_in_channel(page: Page, text: str) -> None:
    """`text` typed in #token-desk's message box and sent with Enter."""
    page.click("#nav-channel")
    box = page.locator("#composer")
    box.fill(text)
    box.press("Enter")


def run_command(page: Page, text: str = "") -> Locator:
    """`/tokens text` sent; the ephemeral message it brought (the newest one)."""
    ephemerals = page.locator("article.msg-ephemeral")
    before = ephemerals.count()
    type_in_channel(page, f"/tokens {text}".rstrip())
    fresh = ephemerals.nth(before)
    fresh.wait_for()
    return fresh


def open_list(page: Page, text: str = "") -> Locator:
    """The token list, as `/tokens text` shows it (the newest ephemeral message)."""
    message = run_command(page, text)
    message.locator(".bk-header", has_text="API Access Tokens").wait_for()
    return message


def open_card(page: Page, name: str) -> tuple[Locator, str]:
    """The list searched for `name` (`/tokens search NAME`), and the id of the token named so."""
    listing = open_list(page, f"search {name}")
    return listing, card_id(listing, name)


def card_id(surface: Locator, name: str) -> str:
    """The id of the token whose card in `surface` is headed `name`."""
    header = surface.locator(".bk-header").filter(has_text=re.compile(f"^{re.escape(name)}$"))
    block_id = header.get_attribute("data-block-id")
    assert block_id is not None and block_id.startswith("card."), block_id
    return block_id.removeprefix("card.")


def card_details(surface: Locator, token_id: str) -> Locator:
    return surface.locator(f"[data-block-id='details.{token_id}']")


def choose_in_menu(surface: Locator, token_id: str, choice: str) -> None:
    """The card's ⋮ menu opened and `choice` clicked."""
    card_details(surface, token_id).locator(".bk-overflow").click()
    surface.page.locator(".bk-menu [role=menuitem]", has_text=choice).click()


def top_modal(page: Page) -> Locator:
    return page.locator("#modals .modal-top")


def modal_titled(page: Page, title: str) -> Locator:
    """The top modal once its title is `title`."""
    modal = top_modal(page)
    modal.locator(".modal-title", has_text=title).wait_for()
    return modal


def submit(modal: Locator) -> None:
    modal.locator(".modal-submit").click()


def close(modal: Locator) -> None:
    modal.locator(".modal-close").click()


def no_modal(page: Page) -> None:
    page.locator("#modals .modal").first.wait_for(state="detached")


def shown_secret(modal: Locator) -> str:
    """The secret a "Copy the secret" view shows."""
    secrets = [text for text in modal.locator("code").all_inner_texts() if text.startswith("tdk_")]
    assert len(secrets) == 1, secrets
    return secrets[0]


def card_button(surface: Locator, token_id: str, action_id: str) -> Locator:
    """A button in the card's actions block (Edit, End grace now)."""
    return surface.locator(
        f"[data-block-id='edit.{token_id}'] button[data-action-id='{action_id}']"
    )


def headers(surface: Locator) -> list[str]:
    """The names on the cards of `surface`, in order."""
    return [
        text.strip()
        for text in surface.locator(".bk-header[data-block-id^='card.']").all_inner_texts()
    ]
