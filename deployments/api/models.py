"""API credentials: bearer tokens and idempotency keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from deployments.gate.models import Environment, Service


class ApiToken(models.Model):
    """A bearer token for the API, for a person or a CI service account.

    Only a SHA-256 of the secret is stored; ``prefix`` (public) finds the row. A token may be
    narrowed to services, environments and actions; empty actions mean "whatever its user may do".
    ``scoped_services`` / ``scoped_environments`` say, from creation on, that the token was narrowed:
    when the scoped objects are later deleted (their M2M rows cascade away) the token then matches
    nothing, never everything. A person's token is created by that person (``created_by == user``);
    administrators create tokens only for service accounts.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “payments-api CI”.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    services = models.ManyToManyField(Service, blank=True, related_name="+")
    environments = models.ManyToManyField(Environment, blank=True, related_name="+")
    actions = models.JSONField(default=list, blank=True, help_text="Allowed actions; empty allows all.")
    scoped_services = models.BooleanField(
        default=False, editable=False, help_text="Narrowed to services at creation: an empty list then matches none."
    )
    scoped_environments = models.BooleanField(
        default=False, editable=False,
        help_text="Narrowed to environments at creation: an empty list then matches none.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.user})"

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class IdempotencyKey(models.Model):
    """The first response to a create call with an ``Idempotency-Key``: a retry gets it back."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    body_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"],
                name="idempotency_key_unique_per_user",
                violation_error_message="This idempotency key was already used.",
            ),
        ]

    def __str__(self) -> str:
        return f"Idempotency key {self.key[:20]} of {self.user_id}"
