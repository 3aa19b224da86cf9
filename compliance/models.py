"""The models of ``compliance``, each defined in the package of its capability (app label "compliance")."""

from .audit.models import AuditReview, ChainLink, ChainTag, ForgedEntry
from .monitoring.models import JobHeartbeat, JobOutcome
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
