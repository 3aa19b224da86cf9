"""What of the GitHub integration the audit trail records."""

from auditlog.registry import auditlog

from .models import (
    BranchProtectionAudit,
    BranchProtectionRule,
    GitHubStatusReport,
    GitHubWebhookDelivery,
    MonitoringSignal,
)

# The raw body can be large; the delivery's body_sha256 identifies it in the audit trail.
auditlog.register(GitHubWebhookDelivery, exclude_fields=["body", "headers"])
# GitHubWebhookRejection is deliberately NOT audited: anyone on the internet can cause one, so it is a
# bounded, rate-limited log (see webhooks.py), never permanent evidence.
auditlog.register(BranchProtectionRule, m2m_fields={"allowed_push_users", "allowed_push_groups"})
auditlog.register(BranchProtectionAudit)
auditlog.register(MonitoringSignal)
auditlog.register(GitHubStatusReport)
