"""Wiring for the audit trail, imported once from ``ComplianceConfig.ready``.

Audit entries join the hash chain; violations, their events and audit reviews are recorded by
django-auditlog. The chain links themselves are not (they would need links of their own).
"""

from datetime import UTC

from auditlog.models import LogEntry
from auditlog.registry import auditlog

from . import monitoring, tasks_audit  # noqa: F401  (monitoring panels; Celery tasks in every process)
from .audit_chain import GENESIS_HASH, register_chained_model
from .models_audit import AuditReview, ChainLink, Violation, ViolationEvent
from .reports.registry import register_chain_head_provider

register_chained_model(LogEntry)


def bundle_chain_head() -> dict:
    """The head written into evidence-bundle manifests: with it an auditor can later check that the
    chain still ends in (or passes through) the same link, i.e. nothing before it was rewritten."""
    head = ChainLink.objects.order_by("-seq").first()
    if head is None:
        return {"seq": 0, "hash": GENESIS_HASH, "entry": None, "sealed_at": None}
    return {
        "seq": head.seq,
        "hash": head.entry_hash,
        "entry": f"{head.model_label} #{head.object_id}",
        "sealed_at": head.sealed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


register_chain_head_provider(bundle_chain_head)

for model in (Violation, ViolationEvent, AuditReview):
    auditlog.register(model)
