"""What django-auditlog records for the people side, and the actor for background work."""

from __future__ import annotations

import functools

from auditlog.context import set_actor
from auditlog.registry import auditlog
from django.contrib.auth.models import Group
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from .audit_chain import register_chained_model
from .models import (
    Attestation,
    CourseRole,
    PolicyDocument,
    PrivilegeChange,
    QuizAttempt,
    QuizQuestion,
    ReportExport,
    RoleAssignment,
    Suspension,
    TrainingCourse,
    TrainingReminder,
    User,
)

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

# Privileged-access changes (and refusals) are evidence: tamper-evident like decisions.
register_chained_model(PrivilegeChange)


def as_system_actor(func):
    """Run ``func`` with the portal's system account as the audit actor (Celery tasks)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .services import system_actor

        with set_actor(system_actor()):
            return func(*args, **kwargs)

    return wrapper
