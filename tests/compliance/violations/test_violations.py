"""Violations: deduplicated opening, the investigation workflow with notes, escalation once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.models import Severity, Violation, ViolationKind, ViolationStatus
from compliance.people.roles import Role
from compliance.violations import services as violations
from compliance.violations.tasks import escalate_overdue_violations
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], email="ada@example.com")


@pytest.fixture
def auditor():
    return factories.UserFactory(username="frank", roles=[Role.AUDITOR], email="frank@example.com")


@pytest.fixture
def violation():
    return violations.open_violation(
        kind=ViolationKind.UNAUTHORIZED_DEPLOYMENT, severity=Severity.CRITICAL,
        title="abc deployed without approval", evidence={"sha": "abc"}, dedup_key="test:1",
        evidence_links=[{"label": "CI run", "url": "https://ci.example.com/1"}], subject="svc/production",
    )


def test_opening_sets_detection_time_and_the_default_acknowledgement_deadline(violation, settings):
    assert violation.created is True
    assert violation.status == ViolationStatus.OPEN
    assert violation.ack_deadline - violation.detected_at == timedelta(hours=settings.PORTAL_VIOLATION_ACK_HOURS)
    assert list(violation.events.values_list("kind", "to_status")) == [("opened", "open")]


def test_the_acknowledgement_deadline_follows_the_setting(settings):
    settings.PORTAL_VIOLATION_ACK_HOURS = 4
    v = violations.open_violation(kind="sha_mismatch", severity="high", title="t", evidence={}, dedup_key="k4")
    assert v.ack_deadline - v.detected_at == timedelta(hours=4)


def test_the_same_event_never_opens_two_violations(violation):
    again = violations.open_violation(
        kind=ViolationKind.UNAUTHORIZED_DEPLOYMENT, severity=Severity.CRITICAL, title="again",
        evidence={}, dedup_key="test:1",
    )
    assert again.pk == violation.pk and again.created is False
    assert Violation.objects.count() == 1


def test_administrators_are_told_about_a_new_violation(admin_user, auditor, django_capture_on_commit_callbacks,
                                                        mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        violations.open_violation(kind="unauthorized_push", severity="high", title="push", evidence={}, dedup_key="p")
    assert [m.to for m in mailoutbox] == [["ada@example.com"]]
    assert "/monitoring/violations/" in mailoutbox[0].body


def test_an_administrator_investigates_then_resolves_with_notes(violation, admin_user):
    v = violations.transition_violation(
        actor=admin_user, violation=violation, to_status=ViolationStatus.INVESTIGATING, notes="Looking at CI logs."
    )
    assert v.status == ViolationStatus.INVESTIGATING and v.acknowledged_at and v.owner == admin_user
    v = violations.transition_violation(
        actor=admin_user, violation=v, to_status=ViolationStatus.RESOLVED, notes="Rolled back; runner token rotated."
    )
    assert v.status == ViolationStatus.RESOLVED and v.closed_at
    assert v.resolution_notes == "Rolled back; runner token rotated."
    steps = list(v.events.values_list("kind", "from_status", "to_status", "actor__username", "notes"))
    assert steps[1:] == [
        ("transition", "open", "investigating", "ada", "Looking at CI logs."),
        ("transition", "investigating", "resolved", "ada", "Rolled back; runner token rotated."),
    ]


def test_risk_can_be_accepted_after_investigation(violation, admin_user):
    violations.transition_violation(actor=admin_user, violation=violation, to_status="investigating", notes="n")
    v = violations.transition_violation(actor=admin_user, violation=violation, to_status="risk_accepted",
                                        notes="Accepted by the CISO for the migration window.")
    assert v.status == ViolationStatus.RISK_ACCEPTED


@pytest.mark.parametrize(
    ("path", "to_status"),
    [([], "resolved"), ([], "risk_accepted"), ([], "open"), (["investigating"], "open"),
     (["investigating", "resolved"], "investigating"), ([], "bogus")],
)
def test_it_refuses_transitions_outside_the_workflow(violation, admin_user, path, to_status):
    for step in path:
        violations.transition_violation(actor=admin_user, violation=violation, to_status=step, notes="n")
    before = violation.events.count()
    with pytest.raises(RuleViolation) as caught:
        violations.transition_violation(actor=admin_user, violation=violation, to_status=to_status, notes="n")
    assert caught.value.code == "invalid_transition"
    assert violation.events.count() == before


def test_notes_are_mandatory(violation, admin_user):
    with pytest.raises(RuleViolation) as caught:
        violations.transition_violation(actor=admin_user, violation=violation, to_status="investigating", notes="  ")
    assert caught.value.code == "notes_required"
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.OPEN


def test_only_administrators_handle_violations(violation, auditor):
    """Three people: the administrator may (above); the auditor (read-only) and an approver may not."""
    approver = factories.approver(username="carol")
    for person in (auditor, approver, factories.UserFactory(username="outsider")):
        with pytest.raises(RuleViolation) as caught:
            violations.transition_violation(actor=person, violation=violation, to_status="investigating", notes="n")
        assert caught.value.code == "not_permitted"
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.OPEN


def test_owners_are_active_administrators(violation, admin_user, auditor):
    other_admin = factories.UserFactory(username="otto", roles=[Role.ADMINISTRATOR])
    v = violations.assign_violation_owner(actor=admin_user, violation=violation, owner=other_admin)
    assert v.owner == other_admin
    with pytest.raises(RuleViolation):
        violations.assign_violation_owner(actor=admin_user, violation=violation, owner=auditor)
    with pytest.raises(RuleViolation):
        violations.assign_violation_owner(actor=auditor, violation=violation, owner=other_admin)


def test_an_unacknowledged_violation_escalates_once(violation, admin_user, mailoutbox,
                                                    django_capture_on_commit_callbacks):
    owner = factories.UserFactory(username="otto", roles=[Role.ADMINISTRATOR], email="otto@example.com")
    violations.assign_violation_owner(actor=admin_user, violation=violation, owner=owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert escalate_overdue_violations.delay().get() == 0  # not due yet
    Violation.objects.filter(pk=violation.pk).update(
        detected_at=timezone.now() - timedelta(hours=25), ack_deadline=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert escalate_overdue_violations.delay().get() == 1
        assert escalate_overdue_violations.delay().get() == 0  # safe to run twice
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@example.com", "otto@example.com"]
    assert "ESCALATION" in mailoutbox[0].subject
    violation.refresh_from_db()
    assert violation.escalated_at is not None
    assert violation.events.filter(kind="escalated").count() == 1


def test_an_acknowledged_violation_does_not_escalate(violation, admin_user, mailoutbox):
    violations.transition_violation(actor=admin_user, violation=violation, to_status="investigating", notes="on it")
    Violation.objects.filter(pk=violation.pk).update(
        detected_at=timezone.now() - timedelta(hours=25), ack_deadline=timezone.now() - timedelta(hours=1)
    )
    assert escalate_overdue_violations.delay().get() == 0
