"""Training enforcement: reminders before and after deadlines, suspensions for training that lapsed
past the grace period, and lifting them once the person is trained (the periodic job)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..choices import ReminderKind, SuspensionScope, SuspensionTrigger, TrainingStatus
from ..errors import RuleViolation
from ..people.models import Suspension
from ..people.roles import Role, administers
from ..people.suspensions import record_lift, suspend_user
from . import selectors
from .models import TrainingReminder

logger = logging.getLogger(__name__)


def _suspend_after() -> timedelta:
    return timedelta(days=settings.PORTAL_TRAINING_SUSPEND_AFTER_DAYS)


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
                record_lift(actor=actor, suspension=suspension, reason=reason)
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
        period_days = settings.PORTAL_TRAINING_REMINDER_PERIOD_DAYS
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
    if not administers(actor):
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
