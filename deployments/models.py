"""The deployments app's models, each defined in its capability package (Django finds them here)."""

from deployments.api.models import ApiToken, IdempotencyKey
from deployments.delivery.models import DecisionDelivery, DeliveryAttempt, WebhookEndpoint
from deployments.detection.models import ReconciliationRun
from deployments.evidence.models import EmergencyReview, EvidenceSample, FailedChangeFlag
from deployments.gate.models import (
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
    default_checklist,
    repository_validator,
    sha_validator,
)
from deployments.notifications.models import ChatChannel, NotificationLog

__all__ = [
    "ApiToken",
    "Approval",
    "ApprovalPolicy",
    "ChatChannel",
    "DecisionDelivery",
    "DeliveryAttempt",
    "DeploymentRequest",
    "Environment",
    "EmergencyReview",
    "EnvironmentGroupObjectPermission",
    "EnvironmentUserObjectPermission",
    "EvidenceSample",
    "FailedChangeFlag",
    "Execution",
    "FreezeWindow",
    "IdempotencyKey",
    "NotificationLog",
    "ReconciliationRun",
    "Refusal",
    "RequestEvent",
    "Service",
    "WebhookEndpoint",
    "default_checklist",
    "repository_validator",
    "sha_validator",
]
