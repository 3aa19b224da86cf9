from django.db import models


class SuspensionTrigger(models.TextChoices):
    MANUAL = "manual", "Suspended by an administrator"
    TRAINING_LAPSED = "training_lapsed", "Required training lapsed"
    VIOLATION = "violation", "Policy violation"


class SuspensionScope(models.TextChoices):
    ALL = "all", "All deployment privileges"
    REQUEST = "request", "Requesting deployments"
    APPROVE = "approve", "Approving deployments"
