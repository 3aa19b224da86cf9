"""In headless Chromium: the approver's path from sign-in to a decision is short, works with the
keyboard and on a phone, reports every mistake of the form at once (and records none of them); the
decision's evidence, a superseded request and per-environment grants read truthfully."""

import pytest

from compliance.people.roles import Role
from deployments.choices import RequestStatus
from deployments.gate import services
from deployments.models import Approval, Refusal
from tests import factories
from tests.web.test_browser import PASSWORD, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHECKLIST = ["Rollback plan reviewed", "Customer impact assessed"]


@pytest.fixture
def scene(db):
    production = factories.make_environment(name="production", impact_checklist=CHECKLIST)
    billing = factories.make_environment(name="production", impact_checklist=CHECKLIST)  # another service
    rita = factories.engineer(production, username="rita")
    factories.grant(rita, "request", billing)
    carol = factories.approver(production, username="carol")
    factories.grant(carol, "approve", billing)
    first, second = (
        services.submit_request(actor=rita, environment=environment, sha=factories.sha(label), ref="main", title=title)
        for environment, label, title in (
            (production, "one", "Currency rounding fix"),
            (billing, "two", "Invoice footer"),
        )
    )
    return {"production": production, "rita": rita, "carol": carol, "first": first, "second": second}


class Clicks:
    """Counts what the person does with the mouse: clicks and checkbox ticks."""

    def __init__(self, page) -> None:
        self.page, self.count = page, 0

    def click(self, selector: str) -> None:
        self.count += 1
        self.page.click(selector)

    def check(self, selector: str) -> None:
        self.count += 1
        self.page.check(selector)


def open_sign_in(browser, live_server, *, viewport=None):  # noqa: F811
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    return page


def type_credentials(page, username: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)


def test_an_approver_decides_from_sign_in_in_one_click_per_answer_and_moves_to_the_next(
    browser, live_server, scene  # noqa: F811
):
    first, second = scene["first"], scene["second"]
    page = open_sign_in(browser, live_server)
    clicks = Clicks(page)
    type_credentials(page, "carol")
    clicks.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    # The home page lists what waits for this approver: one click to the request.
    clicks.click(f"a[href='/requests/{first.pk}/']")
    # Review and decide on one screen: the decision form is in the first screenful, beside the facts.
    box = page.locator("#decide").bounding_box()
    assert box is not None and box["y"] < 800, box
    for item in CHECKLIST:
        clicks.check(f"input[name=checklist][value='{item}']")
    clicks.check("input[name=acknowledge_policy]")
    clicks.click("button[name=decision][value=approve]")
    assert page.locator(".flash.success").inner_text() == f"You approved request #{first.pk}."
    # Sign-in, request, each checklist item, the acknowledgement, approve: nothing else.
    assert clicks.count == 3 + len(CHECKLIST) + 1
    assert Approval.objects.get(request=first).checklist == {item: True for item in CHECKLIST}
    # One click on to the next request waiting for the same approver.
    page.click("#next-in-queue a")
    page.wait_for_url(f"{live_server.url}/requests/{second.pk}/")
    assert page.locator("#decide button[name=decision][value=approve]").is_visible()


def test_a_keyboard_only_approver_reaches_every_control_in_order(browser, live_server, scene):  # noqa: F811
    first = scene["first"]
    page = open_sign_in(browser, live_server)
    type_credentials(page, "carol")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/requests/{first.pk}/")
    page.focus("input[name=checklist] >> nth=0")
    for _ in CHECKLIST:
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
    page.keyboard.type("Checked with the keyboard")  # the comment follows the checklist
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the policy acknowledgement
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "approve"
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash.success")
    approval = Approval.objects.get(request=first)
    assert approval.comment == "Checked with the keyboard" and approval.policy_acknowledged


def test_on_a_phone_the_decision_controls_are_large_touch_targets(browser, live_server, scene):  # noqa: F811
    page = open_sign_in(browser, live_server, viewport={"width": 375, "height": 740})
    type_credentials(page, "carol")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/requests/{scene['first'].pk}/")
    targets = page.locator("#decide .check-item").all() + page.locator("#decide button[name=decision]").all()
    assert len(targets) == len(CHECKLIST) + 1 + 2
    for target in targets:
        box = target.bounding_box()
        assert box["height"] >= 44, (target.inner_text(), box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (target.inner_text(), box)


def test_the_form_shows_every_mistake_at_once_and_records_none(browser, live_server, scene):  # noqa: F811
    first = scene["first"]
    page = open_sign_in(browser, live_server)
    type_credentials(page, "carol")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/requests/{first.pk}/")
    page.check(f"input[name=checklist][value='{CHECKLIST[0]}']")
    page.click("button[name=decision][value=approve]")  # one item unticked, policy not acknowledged
    summary = page.locator("#decision-form-errors")
    assert summary.is_visible() and "2 things to fix" in summary.inner_text()
    assert "Customer impact assessed" in page.locator("#error-checklist").inner_text()
    assert "version 1" in page.locator("#error-acknowledge_policy").inner_text()
    # What was ticked stays ticked; nothing is on the permanent record.
    assert page.is_checked(f"input[name=checklist][value='{CHECKLIST[0]}']")
    assert not Refusal.objects.exists() and not Approval.objects.exists()
    assert "Refus" not in page.locator("#h-timeline + ol").inner_text()
    page.check(f"input[name=checklist][value='{CHECKLIST[1]}']")
    page.check("input[name=acknowledge_policy]")
    page.click("button[name=decision][value=approve]")
    assert page.locator(".flash.success").is_visible()


def test_the_request_page_shows_each_decisions_evidence(browser, live_server, scene):  # noqa: F811
    first = scene["first"]
    factories.approve(first, scene["carol"], comment="Looks right", policy_acknowledged=True)
    page = open_sign_in(browser, live_server)
    type_credentials(page, "rita")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/requests/{first.pk}/")
    evidence = page.locator(".evidence").first.inner_text()
    for item in CHECKLIST:
        assert f"✓ {item}" in evidence
    assert "Policy v1 acknowledged" in evidence and "sha256" in evidence


def test_a_superseded_request_reads_superseded_with_the_newer_one_linked(browser, live_server, scene):  # noqa: F811
    first = scene["first"]
    second = services.submit_request(actor=scene["rita"], environment=scene["production"], sha=factories.sha("newer"),
                                     ref="main", title="A newer build")
    first.refresh_from_db()
    assert first.status == RequestStatus.SUPERSEDED
    page = open_sign_in(browser, live_server)
    type_credentials(page, "rita")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/requests/{first.pk}/")
    status = page.locator("h1 .status").inner_text()
    assert "Superseded" in status and "Rejected" not in page.locator("main").inner_text()
    page.click(f"a[href='/requests/{second.pk}/'] >> nth=0")
    page.wait_for_url(f"{live_server.url}/requests/{second.pk}/")


def test_an_auditor_sees_who_may_approve_each_environment(browser, live_server, scene):  # noqa: F811
    staging = factories.make_environment(service=scene["production"].service, name="staging")
    factories.approver(staging, username="sam")
    factories.UserFactory(username="audrey", roles=[Role.AUDITOR])
    page = open_sign_in(browser, live_server)
    type_credentials(page, "audrey")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/access/?person=sam")
    table = page.locator("#access").inner_text()
    assert "staging" in table and "production" not in table
