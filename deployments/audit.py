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

# Decision records join the tamper-evidence hash chain (compliance never imports deployments).
from compliance.audit_chain import register_chained_model  # noqa: E402

for model in (Approval, RequestEvent, Refusal):
    register_chained_model(model)
