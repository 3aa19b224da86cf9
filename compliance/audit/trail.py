"""Wiring for the audit trail, imported once from ``ComplianceConfig.ready``: audit entries join
the hash chain, and evidence bundles name the chain's head and carry its segment, checkpoints and
offline verifier (``bundle``)."""

from datetime import UTC

from auditlog.models import LogEntry

from ..reports.registry import register_chain_head_provider
from . import (
    bundle,  # noqa: F401  (registers the bundle's audit part and manifest signature)
    checks,  # noqa: F401  (the runtime database role check)
)
from .chain import GENESIS_HASH, register_chained_model
from .models import ChainLink

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
