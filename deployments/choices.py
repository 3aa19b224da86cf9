from django.db import models


class CIProvider(models.TextChoices):
    GITHUB = "github", "GitHub Actions"
    GITLAB = "gitlab", "GitLab CI"
    JENKINS = "jenkins", "Jenkins"
    GENERIC = "generic", "Generic webhook / polling"


class Tier(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class RequestStatus(models.TextChoices):
    PENDING_CHECKS = "pending_checks", "Waiting for checks"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    DEPLOYING = "deploying", "Deploying"
    DEPLOYED = "deployed", "Deployed"
    FAILED = "failed", "Deployment failed"
    BLOCKED = "blocked", "Blocked by failed checks"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    SUPERSEDED = "superseded", "Superseded"


OPEN_STATUSES = (RequestStatus.PENDING_CHECKS, RequestStatus.AWAITING_APPROVAL)
# States from which a newer request for the same environment supersedes this one: undecided requests
# only. An approved request stays approved until its approval time limit, unless the environment's
# policy says a newer request withdraws older approvals (then APPROVED joins these).
SUPERSEDABLE_STATUSES = OPEN_STATUSES
# States from which the requester (or an administrator) may still cancel: undecided, or approved and
# not yet deploying.
CANCELLABLE_STATUSES = (*OPEN_STATUSES, RequestStatus.APPROVED)
# States in which an approval stands (given and not withdrawn): CI may deploy, or already did.
AUTHORIZING_STATUSES = (
    RequestStatus.APPROVED,
    RequestStatus.DEPLOYING,
    RequestStatus.DEPLOYED,
    RequestStatus.FAILED,
)
# Terminal states that end a request nobody rejected: from an open request they end the wait,
# from an approved one they withdraw the approval.
WITHDRAWING_STATUSES = (RequestStatus.CANCELLED, RequestStatus.SUPERSEDED, RequestStatus.EXPIRED)
TERMINAL_STATUSES = (
    RequestStatus.DEPLOYED,
    RequestStatus.FAILED,
    RequestStatus.BLOCKED,
    RequestStatus.REJECTED,
    RequestStatus.EXPIRED,
    RequestStatus.CANCELLED,
    RequestStatus.SUPERSEDED,
)


class RequestSource(models.TextChoices):
    WEB = "web", "Portal (web)"
    API = "api", "API"
    CLI = "cli", "portal-gate CLI"
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"
    JENKINS = "jenkins", "Jenkins"


class UnverifiedIdentity(models.TextChoices):
    REFUSE = "refuse", "Refuse approval"
    FLAG = "flag", "Allow approval, flag for review"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class CheckState(models.TextChoices):
    SUCCESS = "success", "Passed"
    PENDING = "pending", "Pending"
    FAILURE = "failure", "Failed"
    NEUTRAL = "neutral", "Neutral"
    SKIPPED = "skipped", "Skipped"


PASSING_CHECK_STATES = {CheckState.SUCCESS, CheckState.NEUTRAL, CheckState.SKIPPED}


class EventKind(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    CHECKS_RECORDED = "checks_recorded", "Checks recorded"
    AWAITING_APPROVAL = "awaiting_approval", "Ready for approval"
    BLOCKED = "blocked", "Blocked by checks"
    APPROVAL = "approval", "Approval recorded"
    REJECTION = "rejection", "Rejection recorded"
    APPROVED = "approved", "Approved (quorum reached)"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    SUPERSEDED = "superseded", "Superseded"
    NOTIFIED = "notified", "Notified"
    DELIVERED = "delivered", "Decision delivered to CI"
    DEPLOYING = "deploying", "Deployment started"
    DEPLOYED = "deployed", "Deployed"
    FAILED = "failed", "Deployment failed"
    REFUSED = "refused", "Action refused"
    FAILED_CHANGE = "failed_change", "Flagged as a failed change"
    ROLLED_BACK = "rolled_back", "Followed by a rollback"


class ExecutionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    IN_PROGRESS = "in_progress", "In progress"
    SUCCESS = "success", "Succeeded"
    FAILURE = "failure", "Failed"
    ERROR = "error", "Error"


class Action(models.TextChoices):
    """What a person tried to do; used on refusal records."""

    SUBMIT = "submit", "Submit a request"
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"
    CANCEL = "cancel", "Cancel"
    RECORD_CHECKS = "record_checks", "Record checks"
    EXECUTE = "execute", "Report an execution"
    CREATE_TOKEN = "create_token", "Create an API token"
    REVOKE_TOKEN = "revoke_token", "Revoke an API token"
    USE_TOKEN = "use_token", "Use an API token"
    READ_REPORT = "read_report", "Read a report"
    REVIEW_EMERGENCY = "review_emergency", "Review an emergency change"
    DRAW_SAMPLE = "draw_sample", "Draw an evidence sample"
    FLAG_FAILED_CHANGE = "flag_failure", "Flag a failed change"


# --- decision delivery (outbox) and API tokens -----------------------------------------------


class DeliveryDecision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    # An approval CI already has (or may have) no longer stands: cancelled, superseded or expired.
    WITHDRAWN = "withdrawn", "Approval withdrawn"


class RequestDecision(models.TextChoices):
    """The ``decision`` of a request as the API shows it: "rejected" only when someone rejected."""

    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected by an approver"
    BLOCKED = "blocked", "Blocked by failed checks"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    SUPERSEDED = "superseded", "Superseded"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    # Never sent: the approval it carried was withdrawn before any attempt (checked at claim time).
    WITHDRAWN = "withdrawn", "Withdrawn before sending"


class AttemptOutcome(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    DELIVERED = "delivered", "Delivered"
    RETRY = "retry", "Failed, will retry"
    FAILED = "failed", "Failed, gave up"
    ABANDONED = "abandoned", "Abandoned (worker stopped)"


class TokenAction(models.TextChoices):
    """What an API token may be used for (an empty list on the token allows everything its user may do)."""

    READ = "read", "Read"
    REQUEST = "request", "Create requests"
    CANCEL = "cancel", "Cancel requests"
    DECIDE = "decide", "Approve or reject"
    EXECUTE = "execute", "Report executions"
    ADMIN = "admin", "Configure services, environments and policies"


# --- change records (ticket, risk, impact, rollback) and after-the-fact review ---------------


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class EmergencyReviewOutcome(models.TextChoices):
    """What a reviewer concluded about an emergency change after it was deployed."""

    JUSTIFIED = "justified", "Justified: the emergency procedure was warranted"
    CONCERNS = "concerns", "Justified with concerns (follow-up needed)"
    NOT_JUSTIFIED = "not_justified", "Not justified: should have followed the normal procedure"
