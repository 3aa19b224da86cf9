"""People and their privileges: the portal's user, enforcement actions taken against a person, and
every change (or refused change) to privileged access."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from ..choices import SuspensionScope, SuspensionTrigger

__all__ = ["PrivilegeChange", "PrivilegeChangeKind", "Suspension", "User"]


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
    details = models.JSONField(
        default=dict, blank=True, help_text="What triggered it, e.g. the lapsed courses and their deadlines."
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["user", "lifted_at"], name="suspension_user_active")]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(trigger=SuspensionTrigger.TRAINING_LAPSED) & Q(lifted_at__isnull=True),
                name="suspension_one_active_training_lapse",
                violation_error_message="This person is already suspended for lapsed training.",
            ),
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


class PrivilegeChangeKind(models.TextChoices):
    ROLE_ADDED = "role_added", "Role granted"
    ROLE_REMOVED = "role_removed", "Role removed"
    PERMISSION_GRANTED = "permission_granted", "Permission granted"
    PERMISSION_REVOKED = "permission_revoked", "Permission revoked"
    FLAG_CHANGED = "flag_changed", "Account flag changed"
    REFUSED = "refused", "Change refused"
    ACCESS_REQUESTED = "access_requested", "Access change requested (pending)"
    ACCESS_REJECTED = "access_rejected", "Access change rejected"
    ACCESS_EXPIRED = "access_expired", "Time-bound access expired"
    REVIEW_CONFIRMED = "review_confirmed", "Confirmed in an access review"
    REVIEW_REVOKED = "review_revoked", "Revoked in an access review"
    REVIEW_SIGNED_OFF = "review_signed_off", "Access review signed off"


class PrivilegeChange(models.Model):
    """A change to who may administer or approve — or an attempt that was refused.

    Written inside the transaction of the change (role membership through ``RoleAssignment``
    tracking, approval permissions through the object-permission models that ``deployments``
    registers, superuser and staff flags through the user admin); administrators are e-mailed
    after commit and the monitoring page lists the recent ones. Evidence: read-only in the admin.
    """

    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=24, choices=PrivilegeChangeKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    group = models.CharField(max_length=150, blank=True, help_text="The role or group concerned.")
    privilege = models.CharField(max_length=200, help_text="What changed, in words (role, permission, flag).")
    target = models.CharField(max_length=200, blank=True, help_text="Where it applies (an environment), if anywhere.")
    code = models.CharField(max_length=64, blank=True, help_text="The rule that refused it, for refusals.")
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-created_at"], name="privchange_kind_created")]

    def __str__(self) -> str:
        who = self.subject or self.group or "?"
        return f"{self.get_kind_display()}: {self.privilege} for {who}"
