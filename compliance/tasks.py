"""Every Celery task of ``compliance``, in the module Celery's autodiscovery imports (``<app>.tasks``).

Each task lives in its capability package and keeps its registered name (``compliance.<task>``).
"""

from .audit.tasks import seal_audit_chain, verify_audit_chain
from .monitoring.tasks import check_job_heartbeats
from .people.tasks import expire_access_grants
from .training.tasks import enforce_training
from .violations.tasks import escalate_overdue_violations

__all__ = [
    "check_job_heartbeats",
    "enforce_training",
    "escalate_overdue_violations",
    "expire_access_grants",
    "seal_audit_chain",
    "verify_audit_chain",
]
