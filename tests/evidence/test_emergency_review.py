"""Emergency changes are reviewed after the fact by an approver who did not approve them; a missed
review opens one violation, however often the check runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.reports.registry import Filters
from compliance.violations.models import Violation, ViolationKind
from deployments.evidence import services
from deployments.evidence.reports import emergency_review_rows
from deployments.models import EmergencyReview, Refusal
from tests import factories

pytestmark = pytest.mark.django_db


def test_another_approver_reviews_and_the_review_is_kept_once(deployed, approvers):
    change = deployed(emergency=True)
    review = services.review_emergency_change(actor=approvers[1], request=change, outcome="justified",
                                              notes="Outage confirmed in the incident log.")
    assert review.on_time and review.due_at == change.decided_at + timedelta(hours=48)
    with pytest.raises(RuleViolation) as again:
        services.review_emergency_change(actor=approvers[2], request=change, outcome="concerns",
                                         notes="A second opinion is not a second review.")
    assert again.value.code == "already_reviewed"
    assert EmergencyReview.objects.count() == 1


@pytest.mark.parametrize(("who", "code"), [
    ("approver", "reviewer_decided"),
    ("requester", "not_permitted"),  # an engineer, not an approver here
    ("outsider", "not_permitted"),
])
def test_the_review_must_refuse_who_may_not_review(deployed, approvers, requester, who, code):
    change = deployed(emergency=True)
    actor = {"approver": approvers[0], "requester": requester,
             "outsider": factories.approver(factories.make_environment(name="other"))}[who]
    with pytest.raises(RuleViolation) as refused:
        services.review_emergency_change(actor=actor, request=change, outcome="justified",
                                         notes="I would like to review this.")
    assert refused.value.code == code
    assert not EmergencyReview.objects.exists()
    assert Refusal.objects.filter(code=code, request=change).exists()


def test_the_requester_who_is_also_an_approver_may_not_review(environment, approvers):
    from compliance.people.roles import Role
    from deployments.gate import services as gate

    both = factories.UserFactory(roles=[Role.ENGINEER, Role.APPROVER])
    factories.grant(both, "request", environment)
    factories.grant(both, "approve", environment)
    change = gate.submit_request(actor=both, environment=environment, sha=factories.sha(), ref="main",
                                 is_emergency=True, justification="Production is down for all customers.")
    factories.approve(change, approvers[0])
    with pytest.raises(RuleViolation) as refused:
        services.review_emergency_change(actor=both, request=change, outcome="justified", notes="My own change.")
    assert refused.value.code == "self_review"


def test_a_normal_change_and_bad_input_are_refused(deployed, approvers):
    normal = deployed()
    with pytest.raises(RuleViolation, match="Only approved emergency"):
        services.review_emergency_change(actor=approvers[1], request=normal, outcome="justified", notes="x" * 20)
    emergency = deployed(emergency=True)
    for outcome, notes, code in (("great", "x" * 20, "invalid_outcome"), ("justified", "short", "notes_required")):
        with pytest.raises(RuleViolation) as refused:
            services.review_emergency_change(actor=approvers[1], request=emergency, outcome=outcome, notes=notes)
        assert refused.value.code == code


def test_a_missed_review_opens_one_violation_however_often_the_check_runs(deployed, settings):
    settings.PORTAL_EMERGENCY_REVIEW_HOURS = 24
    late = deployed(emergency=True)
    on_time = deployed(emergency=True)
    deployed()
    later = timezone.now() + timedelta(hours=25)
    assert services.open_missed_review_violations(now=timezone.now()) == 0
    assert services.open_missed_review_violations(now=later) == 2
    assert services.open_missed_review_violations(now=later) == 0
    violations = Violation.objects.filter(kind=ViolationKind.EMERGENCY_REVIEW_MISSED)
    assert sorted(v.evidence["request"]["id"] for v in violations) == [late.pk, on_time.pk]
    assert {v.dedup_key for v in violations} == {f"emergency-review-missed:{late.pk}",
                                                 f"emergency-review-missed:{on_time.pk}"}


def test_the_periodic_task_runs_the_check(deployed, settings):
    from deployments import tasks

    settings.PORTAL_EMERGENCY_REVIEW_HOURS = 1
    change = deployed(emergency=True)
    type(change).objects.filter(pk=change.pk).update(decided_at=timezone.now() - timedelta(hours=2))
    assert tasks.open_missed_emergency_reviews.delay().get() == 1
    assert tasks.open_missed_emergency_reviews.delay().get() == 0


def test_the_review_page_records_the_outcome_and_the_report_lists_it(client, deployed, approvers, auditor):
    change = deployed(emergency=True)
    pending = deployed(emergency=True)
    client.force_login(approvers[0])
    page = client.get(f"/requests/{change.pk}/emergency-review/")
    assert b"did not decide on it; you did" in page.content and b"Record review" not in page.content
    assert client.post(f"/requests/{change.pk}/emergency-review/",
                       {"outcome": "justified", "notes": "Trying anyway."}).status_code == 403
    client.force_login(approvers[1])
    done = client.post(f"/requests/{change.pk}/emergency-review/",
                       {"outcome": "concerns", "notes": "Justified; the runbook step was skipped."})
    assert done.status_code == 302
    client.force_login(auditor)
    listing = client.get("/evidence/emergency-reviews/").content.decode()
    assert "review-reviewed" in listing and "review-due" in listing
    rows = {row["request_id"]: row for row in emergency_review_rows(Filters())}
    assert rows[change.pk]["reviewer"] == "approver1" and rows[change.pk]["state"] == "reviewed on time"
    assert rows[pending.pk]["state"] == "awaiting review"


def test_the_review_list_shows_only_what_the_reader_may_see_in_constant_queries(client, deployed, auditor):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    deployed(emergency=True)
    client.force_login(auditor)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/evidence/emergency-reviews/").status_code == 200
        return len(queries)

    few = count()
    for _ in range(3):
        deployed(emergency=True)
    assert count() == few
    client.force_login(factories.engineer(factories.make_environment(name="other")))
    assert b"No approved emergency changes." in client.get("/evidence/emergency-reviews/").content
    client.logout()
    assert client.get("/evidence/emergency-reviews/").status_code == 302


def test_a_scoped_token_reads_only_its_environments_rows_of_the_review_report(deployed, auditor):
    from django.test import Client

    from deployments.api import tokens

    deployed(emergency=True)
    other = factories.make_environment(name="other")
    _, clear = tokens.create_api_token(actor=auditor, user=auditor, name="scoped", actions=["read"],
                                       environments=[other])
    response = Client(HTTP_AUTHORIZATION=f"Bearer {clear}").get("/api/v1/reports/emergency-reviews/?format=json")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).strip() in (b"[]", b"[\n]")
