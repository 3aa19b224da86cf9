"""What django-auditlog records: people, training, reports, periodic jobs, violations and audit
reviews (imported once from ``ComplianceConfig.ready``). The chain links themselves are not
recorded (they would need links of their own)."""

from __future__ import annotations

from auditlog.registry import auditlog
from django.contrib.auth.models import Group
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from ..people.access_models import AccessChange, AccessReview, AccessReviewItem
from ..people.models import PrivilegeChange, Suspension, User
from ..reports.models import ReportExport
from ..training.models import (
    Attestation,
    CourseRole,
    PolicyDocument,
    QuizAttempt,
    QuizQuestion,
    RoleAssignment,
    TrainingCourse,
    TrainingReminder,
)
from ..violations.models import Violation, ViolationEvent
from .chain import register_chained_model
from .models import AuditReview

# Group membership and direct permissions are access grants: record their changes.
auditlog.register(
    User,
    m2m_fields={"groups", "user_permissions"},
    exclude_fields=["password", "last_login"],
)
auditlog.register(Group, m2m_fields={"permissions"})
auditlog.register(Suspension)
for _model in (
    PolicyDocument,
    TrainingCourse,
    CourseRole,
    QuizQuestion,
    Attestation,
    QuizAttempt,
    RoleAssignment,
    TrainingReminder,
):
    auditlog.register(_model)
auditlog.register(ReportExport)

# The periodic jobs and their schedules: the policy depends on them running. Beat's own bookkeeping
# (last run, run count) is left out so each run does not write an entry.
auditlog.register(PeriodicTask, exclude_fields=["last_run_at", "total_run_count", "date_changed"])
for _model in (IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    auditlog.register(_model)

# Privileged-access changes (and refusals) are evidence: tamper-evident like decisions. Access changes
# and reviews change state (pending → approved → expired), so they are not chained rows themselves:
# their audit entries are chained, and each step also writes a (chained) PrivilegeChange.
register_chained_model(PrivilegeChange)
for _model in (AccessChange, AccessReview, AccessReviewItem):
    auditlog.register(_model)

# Violations, their investigation steps and audit-log reviews.
for _model in (Violation, ViolationEvent, AuditReview):
    auditlog.register(_model)
