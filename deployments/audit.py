"""Every deployments model is recorded by django-auditlog, including permission grants."""

from auditlog.registry import auditlog

from compliance.people.privileges import watch_object_permissions

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

# Decision delivery and API credentials (secrets and their hashes never enter an audit diff).
from .models import ApiToken, DecisionDelivery, DeliveryAttempt, WebhookEndpoint  # noqa: E402

auditlog.register(DecisionDelivery, exclude_fields=["payload"])
auditlog.register(DeliveryAttempt)
auditlog.register(WebhookEndpoint, exclude_fields=["secret_ciphertext"])
auditlog.register(ApiToken, exclude_fields=["secret_hash", "last_used_at"], m2m_fields={"services", "environments"})


from .github.models import (  # noqa: E402
    BranchProtectionAudit,
    BranchProtectionRule,
    GitHubStatusReport,
    GitHubWebhookDelivery,
    MonitoringSignal,
)

# The raw body can be large; the delivery's body_sha256 identifies it in the audit trail.
auditlog.register(GitHubWebhookDelivery, exclude_fields=["body", "headers"])
# GitHubWebhookRejection is deliberately NOT audited: anyone on the internet can cause one, so it is a
# bounded, rate-limited log (deployments.github.webhooks), never permanent evidence.
auditlog.register(BranchProtectionRule, m2m_fields={"allowed_push_users", "allowed_push_groups"})
auditlog.register(BranchProtectionAudit)
auditlog.register(MonitoringSignal)
auditlog.register(GitHubStatusReport)

# Notifications: the webhook URL is a secret — never in an audit diff (only its harmless hint is).
from .notification_models import ChatChannel, NotificationLog  # noqa: E402

auditlog.register(ChatChannel, exclude_fields=["webhook_url_encrypted"])
auditlog.register(NotificationLog)

# Decision records join the tamper-evidence hash chain (compliance never imports deployments).
from compliance.audit.chain import register_chained_model  # noqa: E402

for model in (Approval, RequestEvent, Refusal):
    register_chained_model(model)

# Approval rights are privileged access: every grant and removal is recorded and e-mailed to administrators.
watch_object_permissions(EnvironmentUserObjectPermission, EnvironmentGroupObjectPermission)
