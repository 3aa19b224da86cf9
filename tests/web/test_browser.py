"""Browser tests in headless Chromium (Debian's package) against the live server: the decision flow as
people use it. Skipped locally without Chromium; they must run under REQUIRE_SERVICES=1."""

import re

import pytest

from deployments.gate import services
from tests import factories
from tests.services_required import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


@pytest.fixture
def browser(monkeypatch):
    path = require_chromium()
    # Playwright's sync API runs an event loop in this thread; the live server's database access from
    # the test thread is then flagged by Django's async-safety check, which does not apply here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def scene(db):
    """A production-like environment needing two approvals, its requester, two approvers and an outsider."""
    environment = factories.make_environment(name="production", required_approvals=2)
    requester = factories.engineer(environment, username="rita")
    first, second = (factories.approver(environment, username=name) for name in ("carol", "dave"))
    outsider = factories.engineer(username="mallory")
    request = services.submit_request(
        actor=requester, environment=environment, sha=factories.sha("release"), ref="refs/heads/main",
        title="Currency rounding fix", source_url="https://ci.example/runs/42",
        change_set={"commits": [{"sha": factories.sha("c1"), "author": "rita", "message": "Round half even"}],
                    "files_changed": 2, "additions": 10, "deletions": 3},
    )
    return {"request": request, "requester": requester, "first": first, "second": second, "outsider": outsider}


def sign_in(browser, live_server, username):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def decide(page, *, decision, comment="", tick=True):
    if tick:
        for box in page.locator("input[name=checklist]").all():
            box.check()
        page.check("input[name=acknowledge_policy]")
    if comment:
        page.fill("#id_comment", comment)
    page.click(f"button[name=decision][value={decision}]")


def test_two_approvers_approve_and_the_requester_sees_the_decision(browser, live_server, scene):
    request = scene["request"]
    page = sign_in(browser, live_server, "carol")
    assert page.evaluate("typeof htmx") == "object"  # vendored htmx loaded, no CDN
    page.click("text=Approval queue")
    row = page.locator("tr", has_text="Currency rounding fix")
    assert "0 of 2 approvals" in row.inner_text()
    row.locator(f"a[href='/requests/{request.pk}/']").click()
    assert "Round half even" in page.content()
    decide(page, decision="approve", comment="Reviewed the rounding change")
    assert page.locator(".flash.success").inner_text() == f"You approved request #{request.pk}."
    assert "1 of 2 approvals" in page.locator("#h-verdict + p").inner_text()
    assert page.locator("button[name=decision]").count() == 0  # decided: no more controls

    page = sign_in(browser, live_server, "dave")
    page.goto(f"{live_server.url}/queue/")
    assert "1 of 2 approvals" in page.locator("tr", has_text="Currency rounding fix").inner_text()
    page.goto(f"{live_server.url}/requests/{request.pk}/")
    decide(page, decision="approve", comment="Second approval")
    assert "Approved" in page.locator("h1 .status").inner_text()

    page = sign_in(browser, live_server, "rita")
    page.click("text=My requests")
    assert "Approved" in page.locator("tr", has_text="production").first.inner_text()
    page.goto(f"{live_server.url}/requests/{request.pk}/")
    decisions = page.locator("#h-decisions + ul").inner_text()
    assert "carol" in decisions and "dave" in decisions and "Second approval" in decisions
    assert page.locator("button[name=decision]").count() == 0  # the requester never decides


def test_an_outsider_gets_404_on_the_request(browser, live_server, scene):
    page = sign_in(browser, live_server, "mallory")
    response = page.goto(f"{live_server.url}/requests/{scene['request'].pk}/")
    assert response.status == 404
    assert "Currency rounding fix" not in page.content()


def test_a_rejection_without_a_comment_is_refused_with_a_visible_message(browser, live_server, scene):
    request = scene["request"]
    page = sign_in(browser, live_server, "carol")
    page.goto(f"{live_server.url}/requests/{request.pk}/")
    decide(page, decision="reject")
    alert = page.get_by_role("alert")
    assert alert.is_visible()
    assert re.search("A rejection needs a comment", alert.inner_text())
    assert "Awaiting approval" in page.locator("h1 .status").inner_text()
    request.refresh_from_db()
    assert request.status == "awaiting_approval" and not request.approvals.exists()


def test_the_queue_refreshes_itself(browser, live_server, scene):
    page = sign_in(browser, live_server, "carol")
    page.clock.install()  # control htmx's 30-second poll instead of waiting for it
    page.goto(f"{live_server.url}/queue/")
    assert page.locator("tr", has_text="Hotfix for invoices").count() == 0
    other = factories.make_environment(name="staging")
    factories.grant(scene["first"], "approve", other)
    factories.grant(scene["requester"], "request", other)
    services.submit_request(actor=scene["requester"], environment=other, sha=factories.sha("hotfix"), ref="main",
                            title="Hotfix for invoices")
    with page.expect_response(lambda r: "/queue/" in r.url and r.request.headers.get("hx-request") == "true"):
        page.clock.run_for(31_000)
    page.locator("tr", has_text="Hotfix for invoices").wait_for()
    assert page.locator("tr", has_text="Currency rounding fix").count() == 1
