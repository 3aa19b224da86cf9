from django.db import models


class SuspensionTrigger(models.TextChoices):
    MANUAL = "manual", "Suspended by an administrator"
    TRAINING_LAPSED = "training_lapsed", "Required training lapsed"
    VIOLATION = "violation", "Policy violation"


class SuspensionScope(models.TextChoices):
    ALL = "all", "All deployment privileges"
    REQUEST = "request", "Requesting deployments"
    APPROVE = "approve", "Approving deployments"


class TrainingStatus(models.TextChoices):
    """Where a person stands on one required course (see ``compliance.training.rules``)."""

    CURRENT = "current", "Current"
    EXPIRING = "expiring", "Expiring soon"
    DUE = "due", "Due"
    OVERDUE = "overdue", "Overdue"


class ReminderKind(models.TextChoices):
    BEFORE_DEADLINE = "before_deadline", "Before the deadline"
    OVERDUE = "overdue", "Overdue"
    MANUAL = "manual", "Sent by an administrator"
