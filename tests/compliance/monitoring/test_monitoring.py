"""The monitoring pages: who may read and act, the panels, audit-log reviews, a constant query count."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance.audit.reviews import record_audit_review, review_status
from compliance.audit.verify import verify_chain
from compliance.errors import RuleViolation
from compliance.models import AuditReview, ViolationStatus
from compliance.monitoring import panels as monitoring
from compliance.people.roles import Role
from compliance.violations import services as violations
from deployments.choices import ExecutionStatus
from deployments.detection import findings as detection
from deployments.gate import services
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")


@pytest.fixture
def auditor():
    return factories.UserFactory(username="frank", roles=[Role.AUDITOR])


def make_activity(environment, submit, approvers, n: int) -> None:
    """n authorized deployments, n unauthorized ones (each a violation), n open requests, n drifts."""
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    for i in range(n):
        request = submit()
        factories.approve(request, approvers[0], comment="ok")
        services.report_execution(actor=bot, environment=environment, sha=request.sha, status=ExecutionStatus.SUCCESS)
        services.report_execution(actor=bot, environment=environment, sha=factories.sha(),
                                  status=ExecutionStatus.SUCCESS, external_id=f"rogue-{request.pk}")
        detection.report_branch_protection_drift(
            repository=environment.service.repository, branch=f"release/{i}", expected={"reviews": 2},
            actual={"reviews": 0},
        )
    for _ in range(n):  # open requests in other environments (a new one supersedes the previous)
        env = factories.make_environment(name="staging")
        factories.grant(factories.UserFactory(username="rita"), "request", env)
        services.submit_request(actor=factories.UserFactory(username="rita"), environment=env,
                                sha=factories.sha(), ref="main")


def test_administrators_and_auditors_read_the_page_others_do_not(client, admin_user, auditor, environment):
    url = reverse("monitoring:index")
    assert client.get(url).status_code == 302  # anonymous: sign in first
    for person, expected in [
        (admin_user, 200), (auditor, 200),
        (factories.approver(environment, username="carol"), 403),  # a neighbouring role
        (factories.UserFactory(username="outsider"), 403),
    ]:
        client.force_login(person)
        assert client.get(url).status_code == expected, person.username


def test_the_page_shows_every_panel_with_real_numbers(client, admin_user, environment, submit, approvers):
    make_activity(environment, submit, approvers, 2)
    client.force_login(admin_user)
    html = client.get(reverse("monitoring:index")).content.decode()
    for title in ["Deployments today and this week", "Pending and overdue requests", "Open violations by age",
                  "Branch protection drift", "Audit-log reviews and audit chain", "Training compliance per role"]:
        assert title in html
    assert "4 deployments (4 succeeded), <span class=\"flag\">2 unauthorized</span>" in html
    assert "Failed deliveries" in html and "No failed delivery." in html  # the outbox panel, empty here
    assert "Overdue" in html  # no audit-log review recorded yet


def test_the_page_runs_a_constant_number_of_queries(client, admin_user, environment, submit, approvers):
    client.force_login(admin_user)
    url = reverse("monitoring:index")
    client.get(url)
    make_activity(environment, submit, approvers, 1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    make_activity(environment, submit, approvers, 4)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small), [q["sql"] for q in large.captured_queries]
    # panels (the training panel works out every role-holder's standing in ~7 queries) plus the base
    # template (navigation, training banner); the periodic-jobs and privileged-access panels read one each,
    # the audit-trail panel one for forged entries; the access-control panel three (counts, reviews, and
    # the first privilege change while no review was ever signed off)
    assert len(small) <= 36, len(small)


def test_open_violations_are_bucketed_by_age(environment, admin_user):
    now = timezone.now()
    for i, age in enumerate([timedelta(hours=1), timedelta(days=3), timedelta(days=10), timedelta(days=12)]):
        violations.open_violation(kind="unauthorized_push", severity="high", title=f"v{i}", evidence={},
                                  dedup_key=f"age-{i}", detected_at=now - age)
    closed = violations.open_violation(kind="unauthorized_push", severity="high", title="closed", evidence={},
                                       dedup_key="closed")
    violations.transition_violation(actor=admin_user, violation=closed, to_status="investigating", notes="n")
    violations.transition_violation(actor=admin_user, violation=closed, to_status="resolved", notes="n")
    context = monitoring.open_violations_context(user=admin_user, now=now)
    assert context["counts"] == {"total": 4, "under_1_day": 1, "one_to_7_days": 1, "over_7_days": 2,
                                 "unacknowledged_overdue": 3}
    assert [v.title for v in context["violations"]] == ["v3", "v2", "v1", "v0"]


def test_a_panel_renders_only_when_its_models_exist(client, admin_user):
    client.force_login(admin_user)
    seen = []

    def context(*, user, now):
        seen.append(user.username)
        return {"counts": {"today": 0, "week": 0}, "executions": []}

    for key, models in [("needs-missing", ("deployments.NoSuchModel",)), ("needs-present", ("deployments.Execution",))]:
        monitoring.register_panel(monitoring.Panel(key, f"Panel {key}", "monitoring/panels/deployments.html",
                                                   context, requires_models=models))
    try:
        html = client.get(reverse("monitoring:index")).content.decode()
    finally:
        monitoring.unregister_panel("needs-missing")
        monitoring.unregister_panel("needs-present")
    assert "Panel needs-present" in html and "Panel needs-missing" not in html
    assert seen == ["ada"]


# --- violation pages ----------------------------------------------------------------------------


@pytest.fixture
def violation(environment):
    bot = factories.UserFactory(username="ci-bot", is_service_account=True)
    services.report_execution(actor=bot, environment=environment, sha=factories.sha(), status="success")
    return violations.Violation.objects.get()


def test_an_administrator_moves_a_violation_along_from_its_page(client, admin_user, violation):
    url = reverse("monitoring:violation_detail", args=[violation.pk])
    client.force_login(admin_user)
    page = client.get(url).content.decode()
    assert violation.title in page and "Notes (required)" in page
    response = client.post(url, {"to_status": "investigating", "notes": "Checking the runner."})
    assert response.status_code == 302
    response = client.post(url, {"to_status": "resolved", "notes": ""})
    assert response.status_code == 400
    assert "needs notes" in response.content.decode()
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.INVESTIGATING


def test_auditors_read_violations_but_cannot_change_them(client, auditor, violation, environment):
    url = reverse("monitoring:violation_detail", args=[violation.pk])
    client.force_login(auditor)
    page = client.get(url)
    assert page.status_code == 200 and "Notes (required)" not in page.content.decode()
    assert client.post(url, {"to_status": "investigating", "notes": "x"}).status_code == 403
    assert client.get(reverse("monitoring:violation_list")).status_code == 200
    client.force_login(factories.approver(environment, username="carol"))
    assert client.get(url).status_code == 403
    assert client.post(url, {"to_status": "investigating", "notes": "x"}).status_code == 403
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.OPEN


def test_the_violation_list_filters_by_status(client, auditor, violation):
    client.force_login(auditor)
    assert violation.title in client.get(reverse("monitoring:violation_list") + "?status=open").content.decode()
    assert violation.title not in client.get(
        reverse("monitoring:violation_list") + "?status=resolved").content.decode()


# --- audit-log reviews --------------------------------------------------------------------------


def test_a_missing_review_is_overdue_and_a_recent_one_is_not(admin_user, settings):
    settings.PORTAL_AUDIT_REVIEW_INTERVAL_DAYS = 30
    today = timezone.localdate()
    assert review_status(today=today).overdue
    record_audit_review(actor=admin_user, period_start=today - timedelta(days=70),
                        period_end=today - timedelta(days=40), scope="Production approvals", findings="No exceptions.")
    old = review_status(today=today)
    assert old.overdue and old.days_overdue == 10
    review = record_audit_review(actor=admin_user, period_start=today - timedelta(days=40), period_end=today,
                                 scope="Production approvals and permission grants", findings="One finding: #12.")
    assert review.signed_off_by == admin_user and review.signed_off_at
    assert not review_status(today=today).overdue
    assert review_status(today=today + timedelta(days=31)).overdue


def test_only_administrators_sign_off_reviews(auditor, environment):
    for person in (auditor, factories.approver(environment, username="carol"), factories.UserFactory()):
        with pytest.raises(RuleViolation) as caught:
            record_audit_review(actor=person, period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
                                scope="s", findings="f")
        assert caught.value.code == "not_permitted"
    assert AuditReview.objects.count() == 0


@pytest.mark.parametrize(
    ("start", "end", "scope", "findings", "code"),
    [(0, -1, "s", "f", "invalid_period"), (-1, 0, "", "f", "review_incomplete"),
     (-1, 0, "s", " ", "review_incomplete"), (-1, 3, "s", "f", "invalid_period")],
)
def test_incomplete_reviews_are_refused(admin_user, start, end, scope, findings, code):
    today = timezone.localdate()
    with pytest.raises(RuleViolation) as caught:
        record_audit_review(actor=admin_user, period_start=today + timedelta(days=start),
                            period_end=today + timedelta(days=end), scope=scope, findings=findings)
    assert caught.value.code == code


def test_the_review_page_records_a_sign_off_for_administrators_only(client, admin_user, auditor, environment):
    url = reverse("monitoring:audit_reviews")
    today = timezone.localdate()
    form = {"period_start": str(today - timedelta(days=30)), "period_end": str(today),
            "scope": "All production approvals", "findings": "No exceptions."}
    client.force_login(auditor)
    assert client.get(url).status_code == 200
    assert client.post(url, form).status_code == 403
    client.force_login(factories.approver(environment, username="carol"))
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert "A review is overdue" in client.get(url).content.decode()
    assert client.post(url, {**form, "period_start": "yesterday"}).status_code == 400
    assert client.post(url, form).status_code == 302
    page = client.get(url).content.decode()
    assert "Reviews are up to date" in page and "All production approvals" in page
    assert AuditReview.objects.get().signed_off_by == admin_user


def test_the_demo_shows_a_violation_and_a_sealed_audit_chain(client):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command


    call_command("load_demo_data")
    violation = violations.Violation.objects.get()
    assert violation.kind == "unauthorized_deployment" and violation.severity == "critical"
    report = verify_chain()
    assert report.ok, report.summary()
    assert report.links_checked > 100 and report.states_replayed > 5 and report.latest_checkpoint is not None
    client.force_login(get_user_model().objects.get(username="frank"))  # the demo auditor
    page = client.get(reverse("monitoring:index")).content.decode()
    assert violation.title in page
    # The audit trail panel: the signed checkpoint, the public key auditors pin, and the warning that
    # the demo signs with the development key.
    from compliance.audit.keys import public_key_fingerprint

    assert public_key_fingerprint() in page and "BEGIN PUBLIC KEY" in page
    assert f"link {report.latest_checkpoint.seq} at" in page and "Development keys" in page
    # The administrator has started investigating it, and last month's audit-log review is signed off.
    assert violation.status == ViolationStatus.INVESTIGATING and violation.owner.username == "admin"
    assert AuditReview.objects.get().findings.startswith("No exceptions.")
