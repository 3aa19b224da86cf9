"""Wiring for the audit trail, imported once from ``ComplianceConfig.ready``.

Audit entries join the hash chain; violations, their events and audit reviews are recorded by
django-auditlog. The chain links themselves are not (they would need links of their own).
"""

from auditlog.models import LogEntry
from auditlog.registry import auditlog

from . import monitoring, tasks_audit  # noqa: F401  (monitoring panels; Celery tasks in every process)
from .audit_chain import register_chained_model
from .models_audit import AuditReview, Violation, ViolationEvent

register_chained_model(LogEntry)

for model in (Violation, ViolationEvent, AuditReview):
    auditlog.register(model)
