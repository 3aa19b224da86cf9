"""The models of ``compliance``, each defined in the package of its capability (app label "compliance")."""

from .audit.models import AuditReview, ChainLink, ChainTag, ForgedEntry
from .monitoring.models import JobHeartbeat, JobOutcome
from .people.access_models import (
    AccessChange,
    AccessChangeKind,
    AccessChangeStatus,
    AccessReview,
    AccessReviewItem,
    AccessReviewStatus,
    ReviewDecision,
)
from .people.models import PrivilegeChange, PrivilegeChangeKind, Suspension, User
from .reports.models import ExportFormat, ReportExport
from .training.models import (
    Attestation,
    CourseRole,
    PolicyDocument,
    QuizAttempt,
    QuizQuestion,
    RoleAssignment,
    TrainingCourse,
    TrainingReminder,
)
from .violations.models import (
    CLOSED_VIOLATION_STATUSES,
    Severity,
    Violation,
    ViolationEvent,
    ViolationEventKind,
    ViolationKind,
    ViolationStatus,
)

__all__ = [
    "AccessChange",
    "AccessChangeKind",
    "AccessChangeStatus",
    "AccessReview",
    "AccessReviewItem",
    "AccessReviewStatus",
    "ReviewDecision",
    "CLOSED_VIOLATION_STATUSES",
    "Attestation",
    "AuditReview",
    "ChainLink",
    "ChainTag",
    "ForgedEntry",
    "CourseRole",
    "ExportFormat",
    "JobHeartbeat",
    "JobOutcome",
    "PolicyDocument",
    "PrivilegeChange",
    "PrivilegeChangeKind",
    "QuizAttempt",
    "QuizQuestion",
    "ReportExport",
    "RoleAssignment",
    "Severity",
    "Suspension",
    "TrainingCourse",
    "TrainingReminder",
    "User",
    "Violation",
    "ViolationEvent",
    "ViolationEventKind",
    "ViolationKind",
    "ViolationStatus",
]
