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

# Notifications: the webhook URL is a secret — never in an audit diff (only its harmless hint is).
from .notification_models import ChatChannel, NotificationLog  # noqa: E402

auditlog.register(ChatChannel, exclude_fields=["webhook_url_encrypted"])
auditlog.register(NotificationLog)
