"""The outbox: where decisions go (CI webhook endpoints), each decision to deliver and every attempt."""

from __future__ import annotations

from django.db import models

from deployments.choices import (
    AttemptOutcome,
    DeliveryDecision,
    DeliveryStatus,
)
from deployments.gate.models import DeploymentRequest, Environment
from portal.outbound import validate_outbound_url


class WebhookEndpoint(models.Model):
    """Where the generic CI webhook provider POSTs an environment's decisions, and the signing secret.

    The secret is stored encrypted (Fernet, key derived from ``DJANGO_SECRET_KEY``); it is never shown
    in the admin nor recorded in audit diffs. See ``deployments.delivery.providers.webhook`` and docs/ci-webhook.md.
    """

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="webhook")
    url = models.URLField(max_length=500, validators=[validate_outbound_url])
    secret_ciphertext = models.TextField(blank=True, default="", editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment__service__name", "environment__name"]

    def __str__(self) -> str:
        return f"Webhook for {self.environment}"

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_ciphertext)


class DecisionDelivery(models.Model):
    """One decision to deliver to one CI provider: written in the decision's transaction (outbox)."""

    request = models.ForeignKey(DeploymentRequest, on_delete=models.PROTECT, related_name="deliveries")
    provider = models.CharField(max_length=32)
    decision = models.CharField(max_length=16, choices=DeliveryDecision.choices)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        db_index=True, help_text="When a worker may next try; while an attempt runs, the end of its lease."
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "decision deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due")]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "provider", "decision"],
                name="delivery_one_per_request_provider_decision",
                violation_error_message="This decision is already queued for this provider.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} of #{self.request_id} to {self.provider} ({self.get_status_display()})"


class DeliveryAttempt(models.Model):
    """One try at delivering a decision: when, what the receiver answered, what happened next."""

    delivery = models.ForeignKey(DecisionDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.IN_PROGRESS)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"Attempt {self.number} of delivery {self.delivery_id} ({self.get_outcome_display()})"
