"""What the audit trail records of the deployments app: every model (with permission grants), with
secrets and their hashes never in a diff; which rows join the tamper-evident chain; and which grants
are privileged access."""

from auditlog.registry import auditlog

from compliance.audit.canonical import default_canonical
from compliance.audit.chain import register_chained_model
from compliance.audit.replay import register_replayed_model
from compliance.people.privileges import watch_object_permissions
from deployments.models import (
    ApiToken,
    Approval,
    ApprovalPolicy,
    ChatChannel,
    DecisionDelivery,
    DeliveryAttempt,
    DeploymentRequest,
    EmergencyReview,
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
    EvidenceSample,
    Execution,
    FailedChangeFlag,
    FreezeWindow,
    NotificationLog,
    Refusal,
    RequestEvent,
    Service,
    WebhookEndpoint,
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
    DeliveryAttempt,
    NotificationLog,
    EmergencyReview,
    EvidenceSample,
    FailedChangeFlag,
):
    auditlog.register(model)

auditlog.register(DecisionDelivery, exclude_fields=["payload"])
auditlog.register(WebhookEndpoint, exclude_fields=["secret_ciphertext"])
auditlog.register(ApiToken, exclude_fields=["secret_hash", "last_used_at"], m2m_fields={"services", "environments"})
# The chat webhook URL is a secret: only its harmless hint may appear in a diff.
auditlog.register(ChatChannel, exclude_fields=["webhook_url_encrypted"])

# Fields added to Approval after rows were chained (authentication evidence, migration 0004): left out of
# the canonical form while empty, so every approval chained before them keeps its digest.
APPROVAL_FIELDS_ADDED_LATER = {"authentication_method": "", "authenticated_at": None, "mfa_authenticated_at": None}


def approval_canonical(instance) -> dict:
    data = default_canonical(instance)
    for name, empty in APPROVAL_FIELDS_ADDED_LATER.items():
        if data.get(name) == empty:
            data.pop(name, None)
    return data


# Decision records join the tamper-evidence hash chain (compliance never imports deployments).
register_chained_model(Approval, canonical=approval_canonical)
# Emergency reviews and evidence samples never change once written: they join the chain too.
for model in (RequestEvent, Refusal, EmergencyReview, EvidenceSample, FailedChangeFlag):
    register_chained_model(model)

# Requests and executions change over their life, so they are not chained; their audit entries are,
# and verification replays them: a row changed by SQL disagrees with its own trail.
register_replayed_model(
    DeploymentRequest,
    fields=("environment", "sha", "ref", "requester", "status", "is_emergency", "decided_at",
            "approval_expires_at", "finished_at", "superseded_by", "failed_change_at", "rolled_back_by"),
)
register_replayed_model(
    Execution, fields=("environment", "request", "sha", "status", "authorized", "external_id", "started_at"),
)

# Approval rights are privileged access: every grant and removal is recorded and e-mailed to administrators.
watch_object_permissions(EnvironmentUserObjectPermission, EnvironmentGroupObjectPermission)
