"""Periodic audit-log reviews: administrators sign off a period; a missing review is overdue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..errors import RuleViolation
from ..people.roles import Role, has_role
from .models import AuditReview


@transaction.atomic
def record_audit_review(*, actor, period_start: date, period_end: date, scope: str, findings: str) -> AuditReview:
    """An administrator signs off their review of the audit log for a period (signed now, by them)."""
    if not has_role(actor, Role.ADMINISTRATOR):
        raise RuleViolation("not_permitted", "Only administrators sign off audit-log reviews.", status_code=403)
    scope, findings = (scope or "").strip(), (findings or "").strip()
    if not scope or not findings:
        raise RuleViolation(
            "review_incomplete", "A review needs its scope and its findings (write 'no exceptions' if none).",
            status_code=400,
        )
    if period_end < period_start:
        raise RuleViolation("invalid_period", "The review period must end on or after its start.", status_code=400)
    if period_end > timezone.localdate():
        raise RuleViolation("invalid_period", "A review cannot cover days that have not happened yet.", status_code=400)
    return AuditReview.objects.create(
        period_start=period_start, period_end=period_end, scope=scope, findings=findings,
        signed_off_by=actor, signed_off_at=timezone.now(),
    )


@dataclass(frozen=True)
class ReviewStatus:
    last: AuditReview | None
    interval_days: int
    due_by: date
    overdue: bool
    days_overdue: int


def review_status(*, today: date | None = None) -> ReviewStatus:
    """Overdue when no signed-off review's period ends within the last review interval."""
    today = today or timezone.localdate()
    interval = settings.PORTAL_AUDIT_REVIEW_INTERVAL_DAYS
    last = AuditReview.objects.select_related("signed_off_by").order_by("-period_end", "-id").first()
    due_by = (last.period_end if last else today - timedelta(days=interval)) + timedelta(days=interval)
    overdue = last is None or due_by < today
    return ReviewStatus(
        last=last, interval_days=interval, due_by=due_by, overdue=overdue,
        days_overdue=max((today - due_by).days, 0) if overdue else 0,
    )
