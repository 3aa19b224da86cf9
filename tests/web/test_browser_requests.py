"""In headless Chromium: an engineer requests a deployment from the web, reads what happens next and
cancels it; an approver finds a request they may not decide shown apart, with the reason."""

import pytest

from deployments.choices import RequestStatus
from deployments.gate import services
from deployments.models import DeploymentRequest
from tests import factories
from tests.web.test_browser import browser, sign_in  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(db):
    staging = factories.make_environment(name="staging")
    production = factories.make_environment(service=staging.service, name="production")
    secret = factories.make_environment(name="secret")
    rita = factories.engineer(staging, username="rita")
    factories.grant(rita, "request", production)
    carol = factories.approver(staging, username="carol")
    return {"staging": staging, "production": production, "secret": secret, "rita": rita, "carol": carol}


def test_an_engineer_requests_from_the_web_sees_what_happens_next_and_cancels(browser, live_server, scene):  # noqa: F811
    page = sign_in(browser, live_server, "rita")
    page.click("nav >> text=New request")
    options = page.locator("#id_environment option").all_inner_texts()
    service = scene["staging"].service.name
    assert f"{service} / staging (Staging)" in options and f"{service} / production (Staging)" in options
    assert not any("secret" in option for option in options)
    page.fill("#id_ref", "")
    page.click("form.request-form button[type=submit]")  # nothing filled in: every field error at once
    assert page.locator(".field-error").count() == 3  # environment, sha, ref
    assert page.get_by_role("alert").is_visible()
    page.select_option("#id_environment", label=f"{service} / staging (Staging)")
    page.fill("#id_sha", factories.sha("web-request"))
    page.fill("#id_ref", "main")
    page.fill("#id_title", "Refund rounding")
    page.fill("#id_change_authors", "rita")
    page.click("form.request-form button[type=submit]")
    request = DeploymentRequest.objects.get()
    page.wait_for_url(f"{live_server.url}/requests/{request.pk}/")
    assert f"Request #{request.pk} submitted." in page.locator(".flash.success").inner_text()
    steps = page.locator("#next-steps").inner_text()
    assert "1 more approval needed." in steps and "must be decided before" in steps
    assert "must start within 2 hours" in steps
    page.fill("#id_cancel_reason", "Wrong commit.")
    page.click("#cancel-form button[type=submit]")
    assert "cancelled" in page.locator(".flash.success").inner_text()
    assert "Cancelled" in page.locator("h1 .status").inner_text()
    assert page.locator("#cancel-form").count() == 0
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED and request.source == "web"


def test_a_change_author_sees_the_request_apart_with_the_reason(browser, live_server, scene):  # noqa: F811
    staging = scene["staging"]
    services.update_policy(actor=None, approval_policy=staging.policy, exclude_change_authors=True)
    other = services.submit_request(
        actor=scene["rita"],
        environment=staging,
        sha=factories.sha("by-rita"),
        ref="main",
        title="Rita's change",
        change_authors=["carol"],
    )
    page = sign_in(browser, live_server, "carol")
    page.goto(f"{live_server.url}/queue/")
    assert page.locator("#results tr", has_text="Rita's change").count() == 0
    row = page.locator("#not-yours tr", has_text=f"#{other.pk}")
    assert row.count() == 1
    assert "author" in row.locator(".why-not").inner_text()


def test_on_a_375px_phone_the_home_page_fits_and_shas_stay_whole(browser, live_server, scene):  # noqa: F811
    for index in range(3):
        services.submit_request(
            actor=scene["rita"],
            environment=scene["staging"],
            sha=factories.sha(f"phone-{index}"),
            ref="refs/heads/release/2026.12-with-a-long-name",
            title="Phone check",
        )
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "correct-horse-battery")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shas = page.locator("code.sha")
    assert shas.count() >= 1
    for index in range(shas.count()):
        assert shas.nth(index).evaluate("el => el.getClientRects().length") == 1  # one line, never split
    assert page.locator("link[rel=icon]").count() == 1
    icon = page.request.get(live_server.url + page.locator("link[rel=icon]").get_attribute("href"))
    assert icon.status == 200
