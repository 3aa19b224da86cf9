"""Who may read reports: auditors and administrators (and superusers), nobody else."""

from __future__ import annotations

from compliance.roles import Role, has_role


def can_read_reports(user) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or has_role(user, Role.AUDITOR) or has_role(user, Role.ADMINISTRATOR)
