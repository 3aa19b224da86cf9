"""Every deployments model is recorded by django-auditlog, including permission grants."""

from auditlog.registry import auditlog

from .models import (
    Approval,
    ApprovalPolicy,
    DeploymentRequest,
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    Execution,
    FreezeWindow,
    Refusal,
    RequestEvent,
    Service,
)

for model in (
    Service,
    Environment,
    ApprovalPolicy,
    FreezeWindow,
    DeploymentRequest,
    Approval,
    RequestEvent,
    Refusal,
    Execution,
    EnvironmentUserObjectPermission,
    EnvironmentGroupObjectPermission,
):
    auditlog.register(model)

from .github.models import (  # noqa: E402
    BranchProtectionAudit,
    BranchProtectionRule,
    GitHubWebhookDelivery,
    GitHubWebhookRejection,
    MonitoringSignal,
)

# The raw body can be large; the delivery's body_sha256 identifies it in the audit trail.
auditlog.register(GitHubWebhookDelivery, exclude_fields=["body", "headers"])
auditlog.register(GitHubWebhookRejection)
auditlog.register(BranchProtectionRule, m2m_fields={"allowed_push_users", "allowed_push_groups"})
auditlog.register(BranchProtectionAudit)
auditlog.register(MonitoringSignal)
