"""Training: policy versions, quizzes, attestations and their expiry, the training gate, reminders and
suspensions for lapsed training."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.utils import timezone

from compliance import tasks
from compliance.choices import ReminderKind, SuspensionTrigger, TrainingStatus
from compliance.errors import RuleViolation
from compliance.models import (
    Attestation,
    PolicyDocument,
    QuizAttempt,
    RoleAssignment,
    Suspension,
    TrainingCourse,
    TrainingReminder,
)
from compliance.people import suspensions
from compliance.people.gates import acting_refusal
from compliance.people.identity import SYSTEM_USERNAME
from compliance.people.roles import Role
from compliance.training import enforcement, selectors, services
from compliance.training import rules as training
from deployments.gate import services as deployment_services
from deployments.models import Approval, Refusal
from tests import factories

pytestmark = pytest.mark.django_db
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def policy_in_force_for_years():
    """The policy v1.0 and the roles date back long before the tests' backdated attestations."""
    factories.install_default_training()
    PolicyDocument.objects.filter(major=1, minor=0).update(effective_at=timezone.now() - 2000 * DAY)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``committed(func, **kwargs)``: call a service and run its after-commit side effects (e-mails)."""

    def call(func, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(**kwargs)

    return call


def course(slug):
    return TrainingCourse.objects.prefetch_related("questions").get(slug=slug)


def right_answers(c):
    return {str(q.pk): q.correct_choice for q in c.questions.all()}


def attest(user, slug, when=None):
    c = course(slug)
    return services.complete_course(actor=user, course=c, answers=right_answers(c), confirmed=True, now=when)


def statuses(user, role=None, now=None):
    rows = selectors.standings([user], now=now, only_role=role)[user.pk]
    return {row.course.slug: row.status for row in rows}


# --- quiz and attestation -------------------------------------------------------------------------


def test_a_failed_quiz_is_recorded_and_gives_no_attestation():
    person = factories.engineer(trained=False)
    c = course("deployment-authorization-policy")
    wrong = {str(q.pk): (q.correct_choice + 1) % len(q.choices) for q in c.questions.all()}
    with pytest.raises(RuleViolation) as caught:
        services.complete_course(actor=person, course=c, answers=wrong, confirmed=True)
    assert caught.value.code == "quiz_failed"
    assert "pass mark is 67%" in caught.value.message
    attempt = QuizAttempt.objects.get(user=person)
    assert attempt.score == 0 and attempt.passed is False
    assert not Attestation.objects.filter(user=person).exists()


def test_a_quiz_just_under_the_pass_mark_fails_and_at_it_passes():
    person = factories.engineer(trained=False)
    c = course("deployment-authorization-policy")  # three questions, pass mark 67%
    answers = right_answers(c)
    first = next(iter(answers))
    one_wrong = {**answers, first: answers[first] + 1}
    two_wrong = {k: v + 1 for k, v in list(answers.items())[:2]} | dict(list(answers.items())[2:])
    with pytest.raises(RuleViolation, match="33%"):
        services.complete_course(actor=person, course=c, answers=two_wrong, confirmed=True)
    attestation = services.complete_course(actor=person, course=c, answers=one_wrong, confirmed=True)
    assert attestation.quiz_score == 67
    attempts = QuizAttempt.objects.filter(user=person).order_by("attempted_at", "pk")
    assert list(attempts.values_list("passed", flat=True)) == [False, True]


def test_a_passed_quiz_without_the_confirmation_is_refused():
    person = factories.engineer(trained=False)
    c = course("deployment-authorization-policy")
    with pytest.raises(RuleViolation) as caught:
        services.complete_course(actor=person, course=c, answers=right_answers(c), confirmed=False)
    assert caught.value.code == "attestation_required"
    assert not Attestation.objects.exists() or not Attestation.objects.filter(user=person).exists()


def test_an_attestation_names_the_policy_version_and_hash_and_expires_with_the_course():
    person = factories.approver(trained=False, first_name="Pat", last_name="Lee")
    policy = selectors.current_policy()
    now = timezone.now()
    attestation = attest(person, "deployment-approver", when=now)
    assert attestation.policy == policy
    assert attestation.policy_version == policy.version and attestation.policy_sha256 == policy.sha256
    assert policy.sha256 == training.sha256_text(policy.body)
    assert f"version {policy.version}" in attestation.statement and "Pat Lee" in attestation.statement
    assert attestation.expires_at == now + timedelta(days=365)
    assert attestation.quiz_score == 100
    entry = LogEntry.objects.get(
        content_type=ContentType.objects.get_for_model(Attestation), object_pk=str(attestation.pk)
    )
    assert entry.action == LogEntry.Action.CREATE


def test_a_course_without_a_quiz_needs_only_the_attestation():
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    attestation = attest(admin, "portal-administrator")
    assert attestation.quiz_score is None
    assert not QuizAttempt.objects.filter(user=admin).exists()


def test_service_accounts_are_not_trained():
    ci = factories.UserFactory(is_service_account=True)
    with pytest.raises(RuleViolation) as caught:
        attest(ci, "deployment-authorization-policy")
    assert caught.value.code == "not_a_person"
    assert acting_refusal(user=ci, action="request") is None


# --- expiry boundaries ------------------------------------------------------------------------------


def test_an_attestation_counts_until_one_second_before_expiry_and_not_one_second_after():
    person = factories.approver(trained=False)
    start = timezone.now() - 400 * DAY
    attest(person, "deployment-authorization-policy", when=start + 10 * DAY)
    approver_course = attest(person, "deployment-approver", when=start)
    expiry = approver_course.expires_at
    assert selectors.missing_training(user=person, role=Role.APPROVER, now=expiry - SECOND) == []
    missing = selectors.missing_training(user=person, role=Role.APPROVER, now=expiry + SECOND)
    assert [row.course.slug for row in missing] == ["deployment-approver"]
    assert missing[0].standing.reason.startswith("expired on")
    assert [r.course.slug for r in selectors.missing_training(user=person, role=Role.APPROVER, now=expiry)] == [
        "deployment-approver"
    ]


def test_expiring_soon_is_still_current_for_acting():
    person = factories.engineer(trained=False)
    att = attest(person, "deployment-authorization-policy")
    assert statuses(person, now=att.expires_at - 13 * DAY)["deployment-authorization-policy"] == TrainingStatus.EXPIRING
    assert statuses(person, now=att.expires_at - 15 * DAY)["deployment-authorization-policy"] == TrainingStatus.CURRENT
    assert selectors.missing_training(user=person, role=Role.ENGINEER, now=att.expires_at - 13 * DAY) == []


def test_a_new_assignee_is_due_for_fourteen_days_then_overdue():
    person = factories.engineer(trained=False)
    assigned = RoleAssignment.objects.get(user=person, role=str(Role.ENGINEER)).assigned_at
    due = assigned + 14 * DAY
    assert statuses(person, now=due - SECOND)["deployment-authorization-policy"] == TrainingStatus.DUE
    assert statuses(person, now=due + SECOND)["deployment-authorization-policy"] == TrainingStatus.OVERDUE


# --- policy versions ---------------------------------------------------------------------------------


def test_a_new_major_version_makes_older_attestations_stale_after_the_grace_period(settings):
    settings.PORTAL_POLICY_GRACE_DAYS = 30
    person = factories.approver()  # trained under v1.0
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    published = timezone.now()
    v2 = services.publish_policy(
        actor=admin,
        title="Deployment Authorization Policy",
        version="2.0",
        body="# Policy\nNew rules.",
        effective_at=published,
    )
    stale_from = v2.effective_at + 30 * DAY
    within = statuses(person, now=stale_from - SECOND)
    assert within["deployment-authorization-policy"] == TrainingStatus.EXPIRING  # re-attest before the end
    assert selectors.missing_training(user=person, role=Role.APPROVER, now=stale_from - SECOND) == []
    missing = selectors.missing_training(user=person, role=Role.APPROVER, now=stale_from + SECOND)
    assert [row.course.slug for row in missing] == ["deployment-authorization-policy"]  # role course unaffected
    assert "stale: attested policy v1.0, v2.0 applies" in missing[0].standing.reason
    renewed = attest(person, "deployment-authorization-policy")
    assert renewed.policy_version == "2.0"
    assert selectors.missing_training(user=person, role=Role.APPROVER, now=stale_from + SECOND) == []


def test_a_minor_version_keeps_attestations_current():
    person = factories.engineer()
    services.publish_policy(actor=None, title="Deployment Authorization Policy", version="1.1", body="Typo fixed.")
    assert selectors.missing_training(user=person, role=Role.ENGINEER, now=timezone.now() + 200 * DAY) == []


def test_policy_versions_only_go_up_and_need_a_valid_number():
    for version, code in (("1.0", "version_not_newer"), ("0.9", "version_not_newer"), ("two", "invalid_version")):
        with pytest.raises(RuleViolation) as caught:
            services.publish_policy(actor=None, title="Policy", version=version, body="text")
        assert caught.value.code == code


def test_policy_markdown_is_rendered_without_scripts():
    html = training.render_markdown("# Title\n<script>alert(1)</script>\n[x](javascript:alert(1)) **bold**")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html


# --- role assignments ---------------------------------------------------------------------------------


def test_gaining_and_losing_a_role_is_tracked_from_either_side_of_the_membership():
    person = factories.UserFactory()
    approvers = Group.objects.get(name=str(Role.APPROVER))
    person.groups.add(approvers)
    first = RoleAssignment.objects.get(user=person, role=str(Role.APPROVER), ended_at__isnull=True)
    approvers.user_set.remove(person)
    first.refresh_from_db()
    assert first.ended_at is not None
    approvers.user_set.add(person)
    assert RoleAssignment.objects.filter(user=person, ended_at__isnull=True).count() == 1
    approvers.user_set.clear()
    assert not RoleAssignment.objects.filter(user=person, ended_at__isnull=True).exists()
    person.groups.set([approvers, Group.objects.get(name=str(Role.ENGINEER))])
    assert set(RoleAssignment.objects.filter(user=person, ended_at__isnull=True).values_list("role", flat=True)) == {
        str(Role.APPROVER),
        str(Role.ENGINEER),
    }
    person.groups.clear()
    assert not RoleAssignment.objects.filter(user=person, ended_at__isnull=True).exists()
    assert RoleAssignment.objects.filter(user=person).count() == 4


# --- the gate ------------------------------------------------------------------------------------------


def test_the_gate_refuses_an_untrained_approver_with_a_link_to_the_training(submit, environment):
    request = submit()
    untrained = factories.approver(environment, trained=False)
    with pytest.raises(RuleViolation) as caught:
        factories.approve(request, untrained)
    exc = caught.value
    assert exc.code == "training_required" and exc.status_code == 403
    assert "as a deployment approver to approve deployments" in exc.message
    assert "http://127.0.0.1:8000/training/" in exc.message
    assert exc.details["training_url"] == "http://127.0.0.1:8000/training/"
    assert {c["slug"] for c in exc.details["missing_courses"]} == {
        "deployment-authorization-policy",
        "deployment-approver",
    }
    assert Refusal.objects.filter(code="training_required", actor=untrained, request=request).exists()
    assert not Approval.objects.exists()
    attest(untrained, "deployment-authorization-policy")
    attest(untrained, "deployment-approver")
    factories.approve(request, untrained)


def test_the_gate_refuses_an_untrained_engineer_including_a_request_created_by_ci(environment):
    untrained = factories.engineer(environment, trained=False, github_login="dev-gh")
    with pytest.raises(RuleViolation) as caught:
        deployment_services.submit_request(actor=untrained, environment=environment, sha=factories.sha(), ref="main")
    assert caught.value.code == "training_required"
    assert "/training/" in caught.value.message and "Deployment authorization policy (never completed)" in (
        caught.value.message
    )
    ci = factories.UserFactory(is_service_account=True)
    factories.grant(ci, "request", environment)
    with pytest.raises(RuleViolation) as caught:
        deployment_services.submit_request(
            actor=ci, requester=untrained, environment=environment, sha=factories.sha(), ref="main"
        )
    assert caught.value.code == "training_required"
    # the service account itself needs no training
    assert deployment_services.submit_request(actor=ci, environment=environment, sha=factories.sha(), ref="main")


def test_an_expired_attestation_refuses_at_once(submit, approvers):
    request = submit()
    Attestation.objects.filter(user=approvers[0], course__slug="deployment-approver").update(
        attested_at=timezone.now() - 365 * DAY, expires_at=timezone.now() - SECOND
    )
    with pytest.raises(RuleViolation) as caught:
        factories.approve(request, approvers[0])
    assert caught.value.code == "training_required"


# --- enforcement --------------------------------------------------------------------------------------


def lapse(person, slug, days_ago):
    """Backdate ``person``'s attestation of ``slug`` so it expired ``days_ago`` days ago."""
    expired = timezone.now() - days_ago * DAY
    Attestation.objects.filter(user=person, course__slug=slug).update(
        attested_at=expired - 365 * DAY, expires_at=expired
    )
    RoleAssignment.objects.filter(user=person).update(assigned_at=expired - 400 * DAY)


def test_a_suspension_blocks_an_approval_immediately_and_shows_the_reason(submit, approvers):
    request = submit()
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    suspensions.suspend_user(actor=admin, user=approvers[0], reason="Approved outside the portal")
    with pytest.raises(RuleViolation) as caught:
        factories.approve(request, approvers[0])
    assert caught.value.code == "suspended" and "Approved outside the portal" in caught.value.message


def test_lapsed_training_suspends_after_the_grace_period_and_a_new_attestation_lifts_it(submit, approvers, settings):
    settings.PORTAL_TRAINING_SUSPEND_AFTER_DAYS = 7
    request = submit()
    person = approvers[0]
    lapse(person, "deployment-approver", days_ago=6)
    assert enforcement.enforce_training(actor=None)["suspended"] == 0  # within the grace period
    lapse(person, "deployment-approver", days_ago=8)
    result = enforcement.enforce_training(actor=None)
    assert result["suspended"] == 1
    suspension = Suspension.objects.get(user=person, lifted_at__isnull=True)
    assert suspension.trigger == SuspensionTrigger.TRAINING_LAPSED
    assert suspension.scope == "approve"  # the privileges of the role whose training lapsed
    assert "Deployment approver duties" in suspension.reason and suspension.started_at
    assert suspension.details["courses"][0]["slug"] == "deployment-approver"
    assert enforcement.enforce_training(actor=None)["suspended"] == 0  # one active suspension, not two
    with pytest.raises(RuleViolation) as caught:
        factories.approve(request, person)
    assert caught.value.code == "suspended"
    attest(person, "deployment-approver")
    suspension.refresh_from_db()
    assert suspension.lifted_at is not None and "Training completed" in suspension.lift_reason
    assert suspension.lifted_by.username == SYSTEM_USERNAME
    factories.approve(request, person)


def test_an_administrator_lifts_a_training_suspension_with_a_reason_and_it_is_not_reimposed(approvers):
    person = approvers[0]
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    lapse(person, "deployment-approver", days_ago=30)
    enforcement.enforce_training(actor=None)
    suspension = Suspension.objects.get(user=person, lifted_at__isnull=True)
    with pytest.raises(RuleViolation):
        suspensions.lift_suspension(actor=admin, suspension=suspension, reason="  ")
    suspensions.lift_suspension(actor=admin, suspension=suspension, reason="Was on parental leave; course booked.")
    assert enforcement.enforce_training(actor=None)["suspended"] == 0
    assert not Suspension.objects.filter(user=person, lifted_at__isnull=True).exists()
    # the training gate still refuses until the person is trained
    assert acting_refusal(user=person, action="approve").code == "training_required"
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Suspension), object_pk=str(suspension.pk)
    )
    assert {e.action for e in entries} == {LogEntry.Action.CREATE, LogEntry.Action.UPDATE}


def test_a_lapsed_policy_course_of_an_engineer_and_approver_suspends_everything(environment):
    person = factories.UserFactory(roles=[Role.ENGINEER, Role.APPROVER])
    lapse(person, "deployment-authorization-policy", days_ago=30)
    enforcement.enforce_training(actor=None)
    assert Suspension.objects.get(user=person).scope == "all"
    with pytest.raises(RuleViolation) as caught:
        suspensions.suspend_user(actor=None, user=person, reason="again", trigger=SuspensionTrigger.TRAINING_LAPSED)
    assert caught.value.code == "already_suspended"


def test_the_job_lifts_a_training_suspension_once_nothing_is_lapsed(approvers):
    person = approvers[0]
    lapse(person, "deployment-approver", days_ago=30)
    enforcement.enforce_training(actor=None)
    person.groups.remove(Group.objects.get(name=str(Role.APPROVER)))  # no longer needs the course
    assert enforcement.enforce_training(actor=None)["lifted"] == 1
    assert not Suspension.objects.filter(user=person, lifted_at__isnull=True).exists()


def test_reminders_are_sent_once_per_period_by_a_job_safe_to_run_twice(settings, committed):
    settings.PORTAL_TRAINING_REMINDER_PERIOD_DAYS = 7
    settings.PORTAL_TRAINING_SUSPEND_AFTER_DAYS = 1000
    person = factories.engineer(email="late@example.com")
    lapse(person, "deployment-authorization-policy", days_ago=1)
    mail.outbox.clear()
    now = timezone.now()
    committed(enforcement.enforce_training, actor=None, now=now)
    committed(enforcement.enforce_training, actor=None, now=now + DAY)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["late@example.com"]
    assert "Deployment authorization policy" in message.body and "http://127.0.0.1:8000/training/" in message.body
    assert TrainingReminder.objects.get(user=person).kind == ReminderKind.OVERDUE
    committed(enforcement.enforce_training, actor=None, now=now + 7 * DAY)  # the next period
    committed(enforcement.enforce_training, actor=None, now=now + 7 * DAY)
    assert len(mail.outbox) == 2
    assert TrainingReminder.objects.filter(user=person).count() == 2


def test_a_reminder_is_sent_once_before_the_deadline(committed):
    person = factories.engineer(email="soon@example.com")
    att = Attestation.objects.get(user=person, course__slug="deployment-authorization-policy")
    mail.outbox.clear()
    committed(enforcement.send_due_reminders, actor=None, now=att.expires_at - 15 * DAY)
    assert mail.outbox == []
    committed(enforcement.send_due_reminders, actor=None, now=att.expires_at - 14 * DAY)
    committed(enforcement.send_due_reminders, actor=None, now=att.expires_at - 3 * DAY)
    assert len(mail.outbox) == 1
    assert TrainingReminder.objects.get(user=person).kind == ReminderKind.BEFORE_DEADLINE


def test_bulk_reminders_are_for_administrators_only(committed):
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    auditor = factories.UserFactory(roles=[Role.AUDITOR])
    late = factories.engineer(trained=False, email="late@example.com")
    mail.outbox.clear()
    with pytest.raises(RuleViolation):
        committed(enforcement.send_training_reminders, actor=auditor, users=[late])
    assert committed(enforcement.send_training_reminders, actor=admin, users=[late]) == 1
    assert len(mail.outbox) == 1 and TrainingReminder.objects.get(user=late).sent_by == admin


def test_the_enforcement_task_acts_as_the_system_account(approvers):
    lapse(approvers[0], "deployment-approver", days_ago=30)
    assert tasks.enforce_training.delay().get()["suspended"] == 1
    suspension = Suspension.objects.get(user=approvers[0])
    entry = LogEntry.objects.get(
        content_type=ContentType.objects.get_for_model(Suspension), object_pk=str(suspension.pk)
    )
    assert entry.actor.username == SYSTEM_USERNAME
