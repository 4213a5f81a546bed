"""`python -m playground.screenshots`: the playground as the README shows it, rendered in
headless Chromium at 1280×900 into docs/images/*.png.

A fresh playground (its own database, demo secrets random on this run) is driven the way a
person drives it: Ana types `/tokens`, opens a card's menu, submits an empty Create form,
resets a token, reads the reminder DM the scheduler's first pass sent her (Billing sync
stops within the reminder days), opens Home, and posts a demo secret in #token-desk for the
leak guard to answer in its thread. Needs the system's Chromium and Playwright (the dev
dependencies).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from playwright.async_api import Browser, Locator, Page, ViewportSize, async_playwright

from playground.server import Playground

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
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
STEP_TIMEOUT_MS = 15_000
LEAKED = "Nightly data export"


async def _fresh_page(browser: Browser, url: str) -> Page:
    """The page as a first visit sees it: Ana, in #token-desk."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(url)
    await page.locator("#user-switch option").first.wait_for(state="attached")
    return page


async def _type(page: Page, text: str) -> None:
    await page.click("#nav-channel")
    await page.fill("#composer", text)
    await page.press("#composer", "Enter")


async def _open_list(page: Page) -> Locator:
    await _type(page, "/tokens")
    listing = page.locator("article.msg-ephemeral").last
    await listing.locator(".bk-header", has_text="API Access Tokens").wait_for()
    return listing


async def _card_menu(page: Page, listing: Locator, name: str) -> None:
    header = listing.locator(".bk-header", has_text=name).first
    block_id = await header.get_attribute("data-block-id")
    token_id = (block_id or "").removeprefix("card.")
    await listing.locator(f"[data-block-id='details.{token_id}'] .bk-overflow").click()
    await page.locator(".bk-menu").wait_for()


async def _modal(page: Page, title: str) -> Locator:
    modal = page.locator("#modals .modal-top")
    await modal.locator(".modal-title", has_text=title).wait_for()
    return modal


# Replaces, in the page's text and inputs, every Token Desk secret by dots of its length:
# an image in the repository holds no secret, not even a throwaway run's.
MASK_SECRETS = r"""() => {
  const secret = /tdk_[0-9A-Za-z]{38}/g;
  const dots = (found) => "tdk_" + "•".repeat(found.length - 4);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    node.nodeValue = node.nodeValue.replace(secret, dots);
  }
  for (const field of document.querySelectorAll("input, textarea")) {
    field.value = field.value.replace(secret, dots);
  }
}"""


async def _shoot(page: Page, name: str) -> Path:
    # The page answers in milliseconds; a short pause lets the last render and scroll settle.
    await page.wait_for_timeout(300)
    await page.evaluate(MASK_SECRETS)
    path = IMAGES / f"{name}.png"
    await page.screenshot(path=path)
    return path


async def _list_and_modals(browser: Browser, url: str) -> list[Path]:
    page = await _fresh_page(browser, url)
    shots = []
    listing = await _open_list(page)
    shots.append(await _shoot(page, "list"))

    await _card_menu(page, listing, "Billing sync")
    shots.append(await _shoot(page, "card-menu"))
    await page.keyboard.press("Escape")

    await listing.locator("[data-block-id='create'] button").click()
    form = await _modal(page, "Create Access Token")
    # Only blanks: the app refuses the name, and the form shows why under the field.
    await form.locator("[data-block-id='name'] input").fill("   ")
    await form.locator("[data-block-id='access_rights'] select").select_option("reports:read")
    await form.locator(".modal-submit").click()
    await form.locator("[data-block-id='name'] .bk-error").wait_for()
    shots.append(await _shoot(page, "modal-error"))
    await form.locator(".modal-close").click()
    await page.locator("#modals .modal").first.wait_for(state="detached")

    await _card_menu(page, listing, "Analytics dashboard")
    await page.locator(".bk-menu [role=menuitem]", has_text="Reset").click()
    confirm = await _modal(page, "Reset token")
    await confirm.locator(".modal-submit").click()
    secret_view = await _modal(page, "Copy the secret")
    shots.append(await _shoot(page, "secret"))
    await secret_view.locator(".modal-close").click()
    await page.locator("#modals .modal").first.wait_for(state="detached")
    await page.context.close()
    return shots


async def _dm_home_and_leak(browser: Browser, playground: Playground) -> list[Path]:
    page = await _fresh_page(browser, playground.url)
    shots = []
    await page.click("#nav-dms")
    await page.locator(
        "article.msg[data-kind='dm'] [data-block-id^='reminder_actions.']"
    ).first.wait_for()
    shots.append(await _shoot(page, "reminder-dm"))

    await page.click("#nav-home")
    await page.locator("#pane-body .home [data-block-id='summary']").wait_for()
    shots.append(await _shoot(page, "home"))

    secret = playground.demo.secrets[LEAKED]
    await _type(page, f"Here's the key for the nightly export: {secret}")
    posted = page.locator("article.msg[data-kind='channel']").filter(has_text="nightly export")
    toggle = posted.locator(".thread-toggle")
    await toggle.filter(has_text="1 reply").wait_for()
    await toggle.click()
    await posted.locator(".thread .msg").first.wait_for()
    await posted.scroll_into_view_if_needed()
    shots.append(await _shoot(page, "leak-thread"))
    await page.context.close()
    return shots


async def render() -> list[Path]:
    """Every screenshot, written into docs/images; their paths."""
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("playground.screenshots needs Chromium: apt-get install chromium")
    IMAGES.mkdir(parents=True, exist_ok=True)
    playground = Playground(port=0)
    await playground.start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS
            )
            try:
                shots = await _list_and_modals(browser, playground.url)
                shots += await _dm_home_and_leak(browser, playground)
            finally:
                await browser.close()
    finally:
        await playground.stop()
    return shots


def main() -> None:
    for path in asyncio.run(render()):
        print(path.relative_to(IMAGES.parent.parent))


if __name__ == "__main__":
    main()
