"""People and proof: the portal's user, and enforcement actions taken against a person."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from .choices import SuspensionScope, SuspensionTrigger


class User(AbstractUser):
    """A person (or a CI service account) who uses the portal.

    ``github_login`` and ``gitlab_username`` map identities from CI providers to portal users, so
    a request created by CI is attributed to a person whose roles and training can be checked.
    """

    github_login = models.CharField(max_length=39, blank=True, default="", db_index=True)
    gitlab_username = models.CharField(max_length=255, blank=True, default="", db_index=True)
    is_service_account = models.BooleanField(
        default=False, help_text="A CI identity, not a person. It can never approve."
    )

    class Meta(AbstractUser.Meta):
        ordering = ["username"]
        constraints = [
            models.UniqueConstraint(
                fields=["github_login"],
                condition=~Q(github_login=""),
                name="user_unique_github_login",
                violation_error_message="Another user already has this GitHub login.",
            ),
        ]

    def __str__(self) -> str:
        full = self.get_full_name()
        return f"{full} ({self.username})" if full else self.username


class Suspension(models.Model):
    """An enforcement action: while active, the person cannot act in ``scope``.

    Created by an administrator (e.g. after a violation) or automatically when required training
    lapses past its grace period; lifted by an administrator with a reason, or automatically.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="suspensions")
    scope = models.CharField(max_length=16, choices=SuspensionScope.choices, default=SuspensionScope.ALL)
    trigger = models.CharField(max_length=32, choices=SuspensionTrigger.choices)
    reason = models.TextField()
    started_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    lift_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["user", "lifted_at"], name="suspension_user_active")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(reason=""),
                name="suspension_reason_required",
                violation_error_message="A suspension needs a reason.",
            ),
            models.CheckConstraint(
                condition=Q(lifted_at__isnull=True) | ~Q(lift_reason=""),
                name="suspension_lift_reason_required",
                violation_error_message="Lifting a suspension needs a reason.",
            ),
        ]

    def __str__(self) -> str:
        state = "lifted" if self.lifted_at else "active"
        return f"{self.user} suspended ({self.get_scope_display()}, {state})"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


from .reports.models import ReportExport  # noqa: E402,F401  (export evidence lives with the reports)
