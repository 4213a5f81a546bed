"""The playground in headless Chromium: what a person clicks reaches the real app, and the
page shows what Slack would.

The session shares one seeded playground, so each test works on demo tokens no other test
changes, or on tokens it makes itself, and reads the newest of its messages.
"""

from __future__ import annotations

import http.client
import json
import re
import socket

import pytest

from playground import demo
from playground.server import Playground
from storage.errors import StartupRefused
from tests.playground.browser import (
    RunningPlayground,
    Watched,
    browser,
    browser_missing,
    card_button,
    card_details,
    card_id,
    choose_in_menu,
    close,
    expect,
    headers,
    modal_titled,
    no_modal,
    open_card,
    open_list,
    required_under_ci,
    run_command,
    running_playground,
    shown_secret,
    sign_in_as,
    submit,
    type_in_channel,
    watched,
)

# The fixtures, used by name: pytest finds them imported here.
__all__ = ["browser", "running_playground", "watched"]

# One line for the whole file when the browser is missing on a developer's machine; under
# CI the fixtures fail each test instead.
if browser_missing() is not None and not required_under_ci():
    pytest.skip(str(browser_missing()), allow_module_level=True)


def test_tokens_shows_the_list_to_the_one_who_typed_it(watched: Watched) -> None:
    page = watched.page
    listing = open_list(page)
    expect(listing.locator(".only-you")).to_have_text(re.compile("Only visible to you"))
    expect(listing.locator(".bk-header").filter(has_text="Billing sync")).to_have_count(1)
    ts = listing.get_attribute("data-ts")

    sign_in_as(page, demo.SAM)
    expect(page.locator("#pane-title")).to_contain_text("token-desk")
    expect(page.locator(f"article[data-ts='{ts}']")).to_have_count(0)
    sign_in_as(page, demo.ANA)
    expect(page.locator(f"article[data-ts='{ts}']")).to_have_count(1)


def test_next_and_previous_page_through_the_list(
    watched: Watched, running_playground: RunningPlayground
) -> None:
    running_playground.add_token("Pager check")  # the demo fills one page: this starts a second
    page = watched.page
    listing = open_list(page)
    first_page = headers(listing)
    assert len(first_page) == 10
    expect(listing.locator("[data-block-id='range']")).to_contain_text("1–10 of")

    listing.locator("button[data-action-id='page_next']").click()
    expect(listing.locator("[data-block-id='range']")).to_contain_text(re.compile("^11–"))
    second_page = headers(listing)
    assert second_page and not set(second_page) & set(first_page)

    listing.locator("button[data-action-id='page_previous']").click()
    expect(listing.locator("[data-block-id='range']")).to_contain_text("1–10 of")
    assert headers(listing) == first_page


def test_filters_by_name_on_enter_and_by_state(watched: Watched) -> None:
    page = watched.page
    listing = open_list(page)
    search = listing.locator("input[data-action-id='filter_name']")
    search.fill("partner")
    search.press("Enter")
    expect(listing.locator("[data-block-id='range']")).to_contain_text("of 2")
    assert sorted(headers(listing)) == ["Partner portal", "Partner portal v1"]
    expect(listing.locator("input[data-action-id='filter_name']")).to_have_value("partner")

    listing.locator("button[data-action-id='filters_clear']").first.click()
    expect(listing.locator("input[data-action-id='filter_name']")).to_have_value("")
    listing.locator("select[data-action-id='filter_state']").select_option(label="Disabled")
    expect(listing.locator("select[data-action-id='filter_state']")).to_have_value("disabled")
    expect(listing.locator(".bk-header", has_text="Billing sync")).to_have_count(0)
    assert "Old reporting job" in headers(listing)
    for details in listing.locator("[data-block-id^='details.']").all():
        expect(details).to_contain_text("State Disabled")


def test_edit_saves_the_form(watched: Watched) -> None:
    page = watched.page
    listing, token = open_card(page, "Analytics dashboard")
    card_button(listing, token, "token_edit").click()
    form = modal_titled(page, "Edit Access Token")
    name = form.locator("[data-block-id='name'] input")
    expect(name).to_have_value("Analytics dashboard")
    name.fill("Analytics dashboard (EU)")
    form.locator("[data-block-id='description'] textarea").fill("Edited <in> the browser & saved")
    submit(form)
    no_modal(page)
    expect(listing.locator(f"[data-block-id='card.{token}']")).to_have_text(
        "Analytics dashboard (EU)"
    )
    expect(listing.locator("[data-block-id='notice']")).to_contain_text(
        "Analytics dashboard (EU) saved"
    )


def test_duplicate_issues_a_copy_with_its_own_secret(watched: Watched) -> None:
    page = watched.page
    listing, token = open_card(page, "Mobile app backend")
    choose_in_menu(listing, token, "Duplicate")
    confirm = modal_titled(page, "Duplicate token")
    expect(confirm).to_contain_text("Create a copy of Mobile app backend")
    submit(confirm)
    secret_view = modal_titled(page, "Copy the secret")
    secret = shown_secret(secret_view)
    close(secret_view)
    no_modal(page)
    copies = [name for name in headers(listing) if name.startswith("Mobile app backend")]
    assert len(copies) == 2, copies
    assert secret not in page.content()


def test_reset_shows_the_new_secret_once(watched: Watched) -> None:
    page = watched.page
    listing, token = open_card(page, "Legacy CRM import")
    choose_in_menu(listing, token, "Reset")
    confirm = modal_titled(page, "Reset token")
    expect(confirm.locator("[data-block-id='grace'] select")).to_have_value("stop")
    submit(confirm)
    secret_view = modal_titled(page, "Copy the secret")
    secret = shown_secret(secret_view)
    expect(secret_view).to_contain_text("it will not be shown again")
    expect(secret_view.locator(".modal-submit")).to_have_count(0)
    close(secret_view)
    no_modal(page)
    expect(card_details(listing, token)).to_contain_text(f"ends in {secret[-4:]}")
    assert secret not in page.content()

    page.reload()
    expect(page.locator("article.msg-ephemeral").last).to_contain_text("Legacy CRM import")
    expect(page.locator("#modals .modal")).to_have_count(0)
    assert secret not in page.content()


def test_upgrade_version_on_the_newest_says_so(watched: Watched) -> None:
    page = watched.page
    listing, token = open_card(page, "Billing sync")
    choose_in_menu(listing, token, "Upgrade Version")
    expect(listing.locator("[data-block-id='notice']")).to_contain_text(
        "Billing sync already uses v3, the newest API version."
    )


def test_disable_then_enable(watched: Watched) -> None:
    page = watched.page
    listing, token = open_card(page, "Website contact form")
    choose_in_menu(listing, token, "Disable")
    expect(card_details(listing, token)).to_contain_text("State Disabled")
    choose_in_menu(listing, token, "Enable")
    expect(card_details(listing, token)).to_contain_text("State Enabled")
    notice = listing.locator("[data-block-id='notice']")
    expect(notice).to_contain_text("Website contact form enabled")
    expect(notice.locator("button[data-action-id='token_reset_now']")).to_have_text("Reset now")


def test_delete_asks_first(watched: Watched) -> None:
    page = watched.page
    listing, token = open_card(page, "Partner portal v1")
    choose_in_menu(listing, token, "Delete")
    confirm = modal_titled(page, "Delete token")
    expect(confirm).to_contain_text("Delete Partner portal v1?")
    submit(confirm)
    no_modal(page)
    expect(listing.locator("[data-block-id='notice']")).to_contain_text("Partner portal v1 deleted")
    expect(listing.locator(f"[data-block-id='card.{token}']")).to_have_count(0)


def test_create_shows_field_errors_then_the_secret(watched: Watched) -> None:
    page = watched.page
    listing = open_list(page)
    listing.locator("[data-block-id='create'] button").click()
    form = modal_titled(page, "Create Access Token")
    submit(form)
    expect(form.locator("[data-block-id='name'] .bk-error")).to_be_visible()
    expect(form.locator("[data-block-id='access_rights'] .bk-error")).to_be_visible()
    expect(form.locator("[data-block-id='name'] input")).to_be_focused()

    # Only blanks: Slack's client lets it through, the app refuses it on the field.
    form.locator("[data-block-id='name'] input").fill("   ")
    form.locator("[data-block-id='access_rights'] select").select_option("reports:read")
    expect(form.locator("[data-block-id='access_rights'] .bk-chip")).to_contain_text("reports:read")
    submit(form)
    expect(form.locator("[data-block-id='name'] .bk-error")).to_be_visible()
    expect(form.locator("[data-block-id='access_rights'] .bk-error")).to_have_count(0)

    form.locator("[data-block-id='name'] input").fill("Browser <check> & co")
    submit(form)
    secret_view = modal_titled(page, "Copy the secret")
    expect(secret_view).to_contain_text("Browser <check> & co")
    shown_secret(secret_view)
    close(secret_view)
    no_modal(page)
    assert "Browser <check> & co" in headers(listing)


def test_home_summarises_and_its_actions_update_it(watched: Watched) -> None:
    page = watched.page
    page.click("#nav-home")
    home = page.locator("#pane-body .home")
    expect(home.locator("[data-block-id='summary']")).to_contain_text("leaked")
    expect(home.locator(".bk-header", has_text="Needs attention")).to_have_count(1)
    token = card_id(home, "Support inbox webhook")
    expect(home.locator(f"[data-block-id='reason.{token}']")).to_contain_text("Leaked")

    choose_in_menu(home, token, "Reset")
    confirm = modal_titled(page, "Reset token")
    submit(confirm)
    secret_view = modal_titled(page, "Copy the secret")
    shown_secret(secret_view)
    close(secret_view)
    no_modal(page)
    expect(home.locator(f"[data-block-id='reason.{token}']", has_text="Leaked")).to_have_count(0)
    expect(home.locator("[data-block-id='notice']")).to_contain_text("Support inbox webhook")


def test_a_leak_dm_button_resets_the_token(
    watched: Watched, running_playground: RunningPlayground
) -> None:
    page = watched.page
    secret = running_playground.secret_of("Nightly data export")
    type_in_channel(page, f"the export's key is {secret}")
    posted = page.locator("article.msg[data-kind='channel']").filter(has_text="the export's key")
    expect(posted.locator(".thread-toggle")).to_have_text(re.compile("^1 reply"))
    posted.locator(".thread-toggle").click()
    expect(posted.locator(".thread .msg")).to_contain_text("Token Desk")

    page.click("#nav-dms")
    leak_dm = page.locator("article.msg[data-kind='dm']").filter(
        has=page.locator("button[data-action-id='leak_reset']")
    )
    expect(leak_dm).to_contain_text("Nightly data export")
    leak_dm.locator("button[data-action-id='leak_reset']").click()
    confirm = modal_titled(page, "Reset token")
    expect(confirm).to_contain_text("posted in Slack")
    submit(confirm)
    fresh = shown_secret(modal_titled(page, "Copy the secret"))
    assert fresh != secret


def test_the_gateway_box_tries_a_secret(
    watched: Watched, running_playground: RunningPlayground
) -> None:
    page = watched.page
    page.fill("#gateway-secret", running_playground.secret_of("Mobile app backend"))
    page.click("#gateway-try")
    result = page.locator("#gateway-result")
    expect(result.locator(".gateway-status")).to_have_text("HTTP 200")
    expect(result.locator(".gateway-headers")).to_contain_text(re.compile("x-token-sid", re.I))

    page.fill("#gateway-secret", "tdk_" + "0" * 40)
    page.click("#gateway-try")
    expect(result.locator(".gateway-status")).to_have_text("HTTP 401")


def test_nora_without_a_role_is_refused_and_sees_who_to_ask(watched: Watched) -> None:
    page = watched.page
    sign_in_as(page, demo.NORA)
    refusal = run_command(page)
    expect(refusal).to_contain_text("Token Desk is only for Account Administrators")
    expect(refusal.locator(".bk-header")).to_have_count(0)

    page.click("#nav-home")
    home = page.locator("#pane-body .home")
    expect(home.locator("[data-block-id='admins']")).to_contain_text("@Ana")
    expect(home.locator("[data-block-id='summary']")).to_have_count(0)


def test_the_playground_listens_on_loopback_only() -> None:
    for host in ("0.0.0.0", "::", "localhost", "192.0.2.10"):
        with pytest.raises(StartupRefused, match="127.0.0.1 only"):
            Playground(port=0, host=host)


def test_the_page_is_not_reachable_at_another_address(
    running_playground: RunningPlayground,
) -> None:
    # Bound to 127.0.0.1 itself, not to every address: another loopback address of this
    # machine finds nothing listening.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", running_playground.port), timeout=5).close()


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_page_answers_only_to_its_own_host_and_origin(
    running_playground: RunningPlayground,
) -> None:
    port = running_playground.port
    state = f"/api/state?user={demo.ANA}"
    for own in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, body = _get(port, state, {"Host": own})
        assert status == 200 and json.loads(body)["users"]
    # A name an attacker's DNS points at 127.0.0.1 (DNS rebinding), or another port.
    for foreign in (f"attacker.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}"):
        status, body = _get(port, state, {"Host": foreign})
        assert status == 421 and b"users" not in body
    status, body = _get(
        port, state, {"Host": f"127.0.0.1:{port}", "Origin": "http://attacker.example"}
    )
    assert status == 403 and b"users" not in body
