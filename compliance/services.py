"""Every write in ``compliance`` goes through these functions."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import privileges, selectors, training
from .choices import ReminderKind, SuspensionScope, SuspensionTrigger, TrainingStatus
from .errors import RuleViolation
from .models import (
    Attestation,
    PolicyDocument,
    QuizAttempt,
    RoleAssignment,
    Suspension,
    TrainingCourse,
    TrainingReminder,
)
from .roles import Role

SYSTEM_USERNAME = "portal-system"


def system_actor():
    """The account background jobs act as; it can never sign in."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "is_service_account": True, "first_name": "Portal", "last_name": "system"},
    )
    return user


@transaction.atomic
def suspend_user(
    *,
    actor,
    user,
    reason: str,
    trigger: str = SuspensionTrigger.MANUAL,
    scope: str = SuspensionScope.ALL,
    details: dict | None = None,
) -> Suspension:
    """Suspend ``user``'s deployment privileges in ``scope`` from now on."""
    if not reason.strip():
        raise RuleViolation("reason_required", "A suspension needs a reason.", status_code=400)
    try:
        with transaction.atomic():
            return Suspension.objects.create(
                user=user,
                scope=scope,
                trigger=trigger,
                reason=reason.strip(),
                started_at=timezone.now(),
                created_by=actor,
                details=details or {},
            )
    except IntegrityError as exc:  # one active training suspension per person (database constraint)
        raise RuleViolation(
            "already_suspended", f"{user} is already suspended for lapsed training.", status_code=409
        ) from exc


def _is_system_actor(actor) -> bool:
    return bool(getattr(actor, "is_service_account", False) and getattr(actor, "username", "") == SYSTEM_USERNAME)


def lift_suspension(*, actor, suspension: Suspension, reason: str) -> Suspension:
    """Lift an active suspension; the reason is kept as evidence.

    Only an administrator (or the portal itself, when training is completed) lifts a suspension,
    and never their own: lifting restores privileges. A refusal is recorded before anything is locked.
    """
    if not _is_system_actor(actor):
        if not privileges.is_administrator(actor):
            privileges.refuse(
                actor=actor, subject=suspension.user, code="not_permitted", privilege="suspension lifted",
                message="Only administrators lift suspensions.",
            )
        if suspension.user_id == actor.pk:
            privileges.refuse(
                actor=actor, subject=suspension.user, code="self_privilege_change", privilege="suspension lifted",
                message="You cannot lift your own suspension. Another administrator has to do it.",
            )
    return _lift_suspension(actor=actor, suspension=suspension, reason=reason)


@transaction.atomic
def _lift_suspension(*, actor, suspension: Suspension, reason: str) -> Suspension:
    if not reason.strip():
        raise RuleViolation("reason_required", "Lifting a suspension needs a reason.", status_code=400)
    locked = Suspension.objects.select_for_update(no_key=True, of=("self",)).get(pk=suspension.pk)
    if locked.lifted_at is not None:
        raise RuleViolation("already_lifted", "This suspension has already been lifted.")
    locked.lifted_at = timezone.now()
    locked.lifted_by = actor
    locked.lift_reason = reason.strip()
    locked.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    return locked


# --- policy documents and training -------------------------------------------------------------

logger = logging.getLogger(__name__)


@transaction.atomic
def publish_policy(
    *, actor, title: str, version: str, body: str, effective_at: datetime | None = None
) -> PolicyDocument:
    """Publish a new version of the policy; versions only go up and are never edited afterwards."""
    try:
        major, minor = training.parse_version(version)
    except ValueError as exc:
        raise RuleViolation("invalid_version", str(exc), status_code=400) from exc
    if not body.strip() or not title.strip():
        raise RuleViolation("policy_text_required", "A policy version needs a title and a text.", status_code=400)
    latest = PolicyDocument.objects.select_for_update().order_by("-major", "-minor").first()
    if latest is not None and (major, minor) <= (latest.major, latest.minor):
        raise RuleViolation(
            "version_not_newer",
            f"Version {version} is not newer than the published version {latest.version}.",
            status_code=400,
        )
    return PolicyDocument.objects.create(
        title=title.strip(),
        version=f"{major}.{minor}",
        major=major,
        minor=minor,
        effective_at=effective_at or timezone.now(),
        body=body,
        sha256=training.sha256_text(body),
        published_at=timezone.now(),
        published_by=actor if getattr(actor, "pk", None) else None,
    )


@transaction.atomic
def sync_role_assignments(*, user, now: datetime | None = None) -> None:
    """Open an assignment for every role ``user`` holds now and close those they lost.

    Called whenever group membership changes, so the training due date counts from the day a
    person gained the role. Safe to call twice (one open assignment per role is a constraint).
    """
    now = now or timezone.now()
    held = set(user.groups.filter(name__in=selectors.ROLE_NAMES).values_list("name", flat=True))
    open_ = {a.role: a for a in RoleAssignment.objects.select_for_update().filter(user=user, ended_at__isnull=True)}
    for role in held - open_.keys():
        try:
            with transaction.atomic():
                RoleAssignment.objects.create(user=user, role=role, assigned_at=now)
        except IntegrityError:  # another process recorded it first
            continue
        privileges.role_changed(user=user, role=role, added=True, now=now)
    for role in open_.keys() - held:
        assignment = open_[role]
        assignment.ended_at = now
        assignment.save(update_fields=["ended_at"])
        privileges.role_changed(user=user, role=role, added=False, now=now)
    if hasattr(user, "_portal_role_names"):
        del user._portal_role_names


def attestation_statement(*, user, course: TrainingCourse, policy: PolicyDocument) -> str:
    name = user.get_full_name() or user.username
    return (
        f'I, {name}, have completed the course "{course.title}" and have read the {policy.title}, '
        f"version {policy.version} (SHA-256 {policy.sha256}). I understand it and will follow it."
    )


def grade_quiz(*, course: TrainingCourse, answers: dict) -> tuple[int | None, bool]:
    """Percent of right answers and whether it reaches the pass mark; (None, True) without a quiz."""
    questions = list(course.questions.all())
    if not questions:
        return None, True
    right = 0
    for question in questions:
        given = answers.get(str(question.pk), answers.get(question.pk))
        with contextlib.suppress(TypeError, ValueError):
            right += int(given) == question.correct_choice
    score = round(100 * right / len(questions))
    return score, score >= course.pass_mark


def complete_course(
    *,
    actor,
    course: TrainingCourse,
    answers: dict | None = None,
    confirmed: bool,
    ip_address: str | None = None,
    now: datetime | None = None,
) -> Attestation:
    """A person completes ``course``: passes its quiz (if any) and attests to the statement.

    1. The quiz attempt is recorded whether it passes or fails (its own transaction, kept as evidence).
    2. Without a pass or without the confirmation, the action is refused.
    3. The attestation stores the time, the policy version and hash, the course hash and the IP;
       it expires after the course's validity.
    4. A training suspension that no longer has a lapsed course behind it is lifted at once.
    """
    if not course.is_active:
        raise RuleViolation("course_inactive", "This course is no longer offered.", status_code=404)
    if getattr(actor, "is_service_account", False):
        raise RuleViolation("not_a_person", "Service accounts are not trained.", status_code=403)
    now = now or timezone.now()
    policy = selectors.current_policy(now=now)
    if policy is None:
        raise RuleViolation("no_policy", "No deployment authorization policy has been published yet.")
    score, passed = grade_quiz(course=course, answers=answers or {})
    if score is not None:
        with transaction.atomic():
            QuizAttempt.objects.create(
                user=actor,
                course=course,
                score=score,
                passed=passed,
                answers={str(k): v for k, v in (answers or {}).items()},
                attempted_at=now,
            )
        if not passed:
            raise RuleViolation(
                "quiz_failed",
                f"You scored {score}% on the quiz; the pass mark is {course.pass_mark}%. Read the course again "
                "and retry.",
                details={"score": score, "pass_mark": course.pass_mark},
                status_code=400,
            )
    if not confirmed:
        raise RuleViolation(
            "attestation_required", "Tick the statement to attest that you will follow the policy.", status_code=400
        )
    with transaction.atomic():
        attestation = Attestation.objects.create(
            user=actor,
            course=course,
            policy=policy,
            policy_version=policy.version,
            policy_major=policy.major,
            policy_sha256=policy.sha256,
            course_sha256=training.sha256_text(course.content),
            statement=attestation_statement(user=actor, course=course, policy=policy),
            quiz_score=score,
            attested_at=now,
            expires_at=now + timedelta(days=course.validity_days),
            ip_address=ip_address,
        )
        lift_resolved_training_suspensions(
            actor=system_actor(),  # lifted automatically, not by the person
            users=[actor],
            reason=f'Training completed: attested "{course.title}" (policy v{policy.version}).',
        )
    return attestation


# --- enforcement ------------------------------------------------------------------------------------


def _suspend_after() -> timedelta:
    return timedelta(days=getattr(settings, "PORTAL_TRAINING_SUSPEND_AFTER_DAYS", 7))


def _lapsed(rows, now: datetime) -> list:
    """Courses overdue for longer than the grace period."""
    return [r for r in rows if r.status == TrainingStatus.OVERDUE and now >= r.standing.deadline + _suspend_after()]


def _lapse_scope(rows) -> str:
    """The privileges of the roles whose training lapsed: approving, requesting, or all of them."""
    roles = {role for row in rows for role in row.roles}
    if roles == {str(Role.APPROVER)}:
        return SuspensionScope.APPROVE
    if roles == {str(Role.ENGINEER)}:
        return SuspensionScope.REQUEST
    return SuspensionScope.ALL


def _lapse_key(rows) -> str:
    return ",".join(sorted(f"{r.course.slug}@{r.standing.deadline.isoformat()}" for r in rows))


@transaction.atomic
def lift_resolved_training_suspensions(*, actor, users, reason: str, now: datetime | None = None) -> int:
    """Lift the training suspensions of ``users`` who have no lapsed course any more."""
    now = now or timezone.now()
    users = list(users)
    active = {
        s.user_id: s
        for s in Suspension.objects.filter(
            user__in=users, trigger=SuspensionTrigger.TRAINING_LAPSED, lifted_at__isnull=True
        )
    }
    if not active:
        return 0
    lifted = 0
    rows = selectors.standings([u for u in users if u.pk in active], now=now)
    for user_id, suspension in active.items():
        if not _lapsed(rows[user_id], now):
            try:
                _lift_suspension(actor=actor, suspension=suspension, reason=reason)
                lifted += 1
            except RuleViolation:  # lifted meanwhile
                pass
    return lifted


def suspend_lapsed_people(*, actor, now: datetime | None = None) -> int:
    """Suspend everyone whose required training is overdue past the grace period (safe in parallel:
    one active training suspension per person is a database constraint).

    A training suspension an administrator lifted is not re-imposed for the same lapse (same
    courses and deadlines); the training gate still refuses until the person is trained.
    """
    now = now or timezone.now()
    people = list(selectors.people_in_scope())
    rows = selectors.standings(people, now=now)
    already = set(
        Suspension.objects.filter(trigger=SuspensionTrigger.TRAINING_LAPSED, lifted_at__isnull=True).values_list(
            "user_id", flat=True
        )
    )
    waived = set(
        Suspension.objects.filter(trigger=SuspensionTrigger.TRAINING_LAPSED, lifted_at__isnull=False)
        .exclude(details__lapse_key=None)
        .values_list("user_id", "details__lapse_key")
    )
    created = 0
    for person in people:
        lapsed = _lapsed(rows[person.pk], now)
        if not lapsed or person.pk in already or (person.pk, _lapse_key(lapsed)) in waived:
            continue
        names = "; ".join(f"{r.course.title} ({r.standing.reason}, due {r.standing.deadline:%Y-%m-%d})" for r in lapsed)
        details = {
            "lapse_key": _lapse_key(lapsed),
            "courses": [
                {
                    "slug": r.course.slug,
                    "title": r.course.title,
                    "deadline": r.standing.deadline.isoformat(),
                    "reason": r.standing.reason,
                }
                for r in lapsed
            ],
            "grace_days": _suspend_after().days,
        }
        try:
            suspend_user(
                actor=actor,
                user=person,
                reason=f"Required training overdue for more than {_suspend_after().days} days: {names}.",
                trigger=SuspensionTrigger.TRAINING_LAPSED,
                scope=_lapse_scope(lapsed),
                details=details,
            )
            created += 1
        except RuleViolation:  # another worker suspended this person first
            continue
    return created


def _claim_reminder(*, user, course, kind: str, period: str, actor, now: datetime) -> bool:
    """Record a reminder unless it was already sent for this period; True if this caller won."""
    try:
        with transaction.atomic():
            TrainingReminder.objects.create(
                user=user,
                course=course,
                kind=kind,
                period=period,
                sent_at=now,
                sent_by=actor if getattr(actor, "pk", None) else None,
            )
        return True
    except IntegrityError:
        return False


def _reminder_due(row, now: datetime) -> tuple[str, str] | None:
    """(kind, period) of the reminder ``row`` calls for right now, if any."""
    deadline = row.standing.deadline
    if row.status == TrainingStatus.OVERDUE:
        period_days = getattr(settings, "PORTAL_TRAINING_REMINDER_PERIOD_DAYS", 7)
        return ReminderKind.OVERDUE, f"{deadline.isoformat()}#{(now - deadline).days // period_days}"
    if row.status in (TrainingStatus.DUE, TrainingStatus.EXPIRING) and deadline - now <= selectors.warn_before():
        return ReminderKind.BEFORE_DEADLINE, deadline.isoformat()
    return None


def _send_reminder_mail(user_id: int, lines: list[str]) -> None:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.email:
        return
    body = (
        f"Hello {user.get_full_name() or user.username},\n\n"
        "The deployment authorization policy requires current training for your role:\n\n"
        + "\n".join(f"  - {line}" for line in lines)
        + f"\n\nComplete it here: {selectors.training_url()}\n\n"
        "Without current training you cannot request or approve deployments, and privileges are suspended "
        "when training stays overdue.\n"
    )
    try:
        send_mail("Deployment portal: training required", body, None, [user.email])
    except Exception:  # a mail outage must not undo the record; the next period reminds again
        logger.exception("training reminder to user %s could not be sent", user_id)


@transaction.atomic
def send_due_reminders(*, actor, now: datetime | None = None) -> int:
    """Remind people before a deadline and, once per period, while overdue. Safe to run twice and
    in parallel: each (person, course, kind, period) is claimed by a unique row before mailing."""
    now = now or timezone.now()
    people = list(selectors.people_in_scope())
    rows = selectors.standings(people, now=now)
    sent = 0
    for person in people:
        lines = []
        for row in rows[person.pk]:
            due = _reminder_due(row, now)
            claimed = due and _claim_reminder(
                user=person, course=row.course, kind=due[0], period=due[1], actor=actor, now=now
            )
            if claimed:
                lines.append(
                    f"{row.course.title}: {TrainingStatus(row.status).label} "
                    f"({row.standing.reason}), deadline {row.standing.deadline:%Y-%m-%d %H:%M} UTC"
                )
        if lines:
            sent += 1
            transaction.on_commit(lambda pk=person.pk, lines=lines: _send_reminder_mail(pk, lines))
    return sent


@transaction.atomic
def send_training_reminders(*, actor, users, now: datetime | None = None) -> int:
    """An administrator reminds ``users`` of every required course that is not current (bulk)."""
    if not selectors.can_send_reminders(actor):
        raise RuleViolation("not_permitted", "Only administrators send training reminders.", status_code=403)
    now = now or timezone.now()
    users = list(users)
    rows = selectors.standings(users, now=now)
    sent = 0
    for person in users:
        lines = []
        for row in rows[person.pk]:
            if row.status == TrainingStatus.CURRENT:
                continue
            if _claim_reminder(
                user=person, course=row.course, kind=ReminderKind.MANUAL, period=now.isoformat(), actor=actor, now=now
            ):
                lines.append(
                    f"{row.course.title}: {TrainingStatus(row.status).label} ({row.standing.reason}), "
                    f"deadline {row.standing.deadline:%Y-%m-%d %H:%M} UTC"
                )
        if lines:
            sent += 1
            transaction.on_commit(lambda pk=person.pk, lines=lines: _send_reminder_mail(pk, lines))
    return sent


def enforce_training(*, actor, now: datetime | None = None) -> dict[str, int]:
    """The periodic job: reminders, suspensions for lapsed training, and lifting resolved ones."""
    now = now or timezone.now()
    reminded = send_due_reminders(actor=actor, now=now)
    suspended = suspend_lapsed_people(actor=actor, now=now)
    suspended_people = (
        get_user_model()
        .objects.filter(suspensions__trigger=SuspensionTrigger.TRAINING_LAPSED, suspensions__lifted_at__isnull=True)
        .distinct()
    )
    lifted = lift_resolved_training_suspensions(
        actor=actor, users=suspended_people, now=now, reason="No required training is overdue any more."
    )
    return {"reminded": reminded, "suspended": suspended, "lifted": lifted}
