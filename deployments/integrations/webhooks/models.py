"""What every integration's webhook intake keeps: the received call (abstract ``ReceivedWebhook``)
and the bounded log of refused calls (abstract ``RefusedWebhook``). Concrete models add the headers
that identify a delivery in their CI system and the payload summary they list in the admin."""

from __future__ import annotations

from django.db import models


class DeliveryState(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSING = "processing", "Processing"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (event not used)"
    UNCONFIGURED = "unconfigured", "Unconfigured repository, project or environment"
    REFUSED = "refused", "Refused"
    FAILED = "failed", "Failed"


class ReceivedWebhook(models.Model):
    """One authenticated webhook call, kept as received (headers without secrets, the raw body and its
    digest), with the outcome of processing it. A redelivery of the same id is acknowledged and
    ignored (the concrete model's id field is unique)."""

    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True, default="")
    body_sha256 = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.RECEIVED, db_index=True
    )
    state_reason = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    request = models.ForeignKey(
        "deployments.DeploymentRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="%(app_label)s_deliveries",
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-received_at", "-id"]


class RefusedWebhook(models.Model):
    """A webhook call the portal refused (not authenticated, too large, no delivery id): a bounded,
    rate-limited log, not evidence — anyone on the internet can knock, so it is not in the audit trail.
    No body, no secret: only what helps an administrator see that someone is knocking."""

    reason = models.CharField(max_length=64, db_index=True)
    event = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=200, blank=True, default="")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    content_length = models.BigIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField(
        default=1, help_text="Refused calls from this address counted on this row (one row per interval)."
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} ({self.reason}) at {self.received_at:%Y-%m-%d %H:%M:%S}"
