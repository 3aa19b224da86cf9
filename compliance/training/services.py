"""Training writes: publishing policy versions, tracking when people gain and lose roles, and
completing a course (quiz and attestation)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import RuleViolation
from ..people import privileges
from ..people.identity import system_actor
from ..people.roles import ROLE_NAMES
from . import rules, selectors
from .enforcement import lift_resolved_training_suspensions
from .models import Attestation, PolicyDocument, QuizAttempt, RoleAssignment, TrainingCourse


@transaction.atomic
def publish_policy(
    *, actor, title: str, version: str, body: str, effective_at: datetime | None = None
) -> PolicyDocument:
    """Publish a new version of the policy; versions only go up and are never edited afterwards."""
    try:
        major, minor = rules.parse_version(version)
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
        sha256=rules.sha256_text(body),
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
    held = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
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
            course_sha256=rules.sha256_text(course.content),
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
