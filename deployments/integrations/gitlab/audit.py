"""What of the GitLab integration the audit trail records."""

from auditlog.registry import auditlog

from .models import (
    GitLabBranchRule,
    GitLabDeploymentIntake,
    GitLabFreezePeriod,
    GitLabProject,
    GitLabProtectionAudit,
    GitLabWebhookDelivery,
)

# The raw body can be large; body_sha256 identifies it in the audit trail.
auditlog.register(GitLabWebhookDelivery, exclude_fields=["body", "headers"])
# GitLabWebhookRejection is deliberately NOT audited: anyone can cause one (a bounded log, see webhooks.py).
auditlog.register(GitLabProject)
auditlog.register(GitLabBranchRule, m2m_fields={"allowed_pushers"})
auditlog.register(GitLabDeploymentIntake)
auditlog.register(GitLabProtectionAudit)
auditlog.register(GitLabFreezePeriod)
