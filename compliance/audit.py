"""What django-auditlog records for the people side, and the actor for background work."""

from __future__ import annotations

import functools

from auditlog.context import set_actor
from auditlog.registry import auditlog
from django.contrib.auth.models import Group

from .models import (
    Attestation,
    CourseRole,
    PolicyDocument,
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


def as_system_actor(func):
    """Run ``func`` with the portal's system account as the audit actor (Celery tasks)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .services import system_actor

        with set_actor(system_actor()):
            return func(*args, **kwargs)

    return wrapper
