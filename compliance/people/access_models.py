"""Four-eyes access changes and periodic access reviews (the data; the rules are in
``access_changes`` and ``access_reviews``).

An ``AccessChange`` is a grant of privileged access (a watched role, staff or superuser, or a
watched object permission such as ``approve_deployment`` on an environment) that one administrator
requests and a second one approves or rejects with a reason; it takes effect only when approved, and
may expire. An ``AccessReview`` is a periodic sign-off in which a reviewer confirms or revokes each
holder of privileged access (one ``AccessReviewItem`` per holder and privilege).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

__all__ = [
    "AccessChange",
    "AccessChangeKind",
    "AccessChangeStatus",
    "AccessReview",
    "AccessReviewItem",
    "AccessReviewStatus",
    "ReviewDecision",
]


class AccessChangeKind(models.TextChoices):
    ROLE = "role", "Role (group membership)"
    FLAG = "flag", "Account flag (staff, superuser)"
    OBJECT_PERMISSION = "object_permission", "Object permission (e.g. approve on an environment)"


class AccessChangeStatus(models.TextChoices):
    PENDING = "pending", "Pending a second administrator"
    APPROVED = "approved", "Approved (in effect)"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired (revoked automatically)"
    REVOKED = "revoked", "Revoked (access review)"


class AccessChange(models.Model):
    """A requested grant of privileged access; nothing changes until a second administrator approves.

    ``grant_key`` names the grant (who gets what, where) so two pending requests for the same grant
    cannot coexist. The requester (``requested_by``, ``None`` for an identity provider through SCIM)
    never decides it, and nobody decides a change that grants themselves (both refused and recorded).
    """

    kind = models.CharField(max_length=24, choices=AccessChangeKind.choices)
    status = models.CharField(max_length=16, choices=AccessChangeStatus.choices, default=AccessChangeStatus.PENDING)
    grant_key = models.CharField(max_length=300, help_text="Who gets what, where (one pending change per grant).")
    privilege = models.CharField(max_length=200, help_text="What is granted, in words.")
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="access_changes",
        help_text="The person who gains the access (empty for a grant to a group).",
    )
    grantee_group = models.ForeignKey(
        "auth.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="The group that gains an object permission (grants to a group).",
    )
    role = models.CharField(max_length=150, blank=True, help_text="The role (group) granted, for role changes.")
    flag = models.CharField(max_length=16, blank=True, help_text="is_staff or is_superuser, for flag changes.")
    permission = models.ForeignKey("auth.Permission", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    target_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, blank=True, help_text="Where it applies (an environment), in words.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_via = models.CharField(max_length=32, default="admin", help_text="admin, portal page, scim, ...")
    requested_at = models.DateTimeField(db_index=True)
    request_reason = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The grant ends by itself then (optional).")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="When the expiry reminder was sent.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="accesschange_status_expiry"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["grant_key"], condition=Q(status="pending"), name="accesschange_one_pending_per_grant",
                violation_error_message="The same grant is already waiting for a second administrator.",
            ),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | Q(requested_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="accesschange_four_eyes",
                violation_error_message="The requester of an access change cannot decide it.",
            ),
            models.CheckConstraint(
                condition=Q(decided_at__isnull=True) | ~Q(decision_reason=""),
                name="accesschange_decision_reason_required",
                violation_error_message="Approving or rejecting an access change needs a reason.",
            ),
            models.CheckConstraint(
                condition=Q(subject__isnull=False) | Q(grantee_group__isnull=False),
                name="accesschange_has_grantee",
                violation_error_message="An access change grants something to a person or a group.",
            ),
        ]

    def __str__(self) -> str:
        who = self.subject.username if self.subject_id else f"group {self.grantee_group}"
        where = f" on {self.target}" if self.target else ""
        return f"{self.privilege} for {who}{where} ({self.get_status_display().lower()})"

    @property
    def grantee(self) -> str:
        return self.subject.username if self.subject_id else f"group {self.grantee_group.name}"


class AccessReviewStatus(models.TextChoices):
    OPEN = "open", "Open"
    SIGNED_OFF = "signed_off", "Signed off"


class AccessReview(models.Model):
    """One periodic review of privileged access: started by an administrator, one item per holder,
    signed off when every item is decided. One open review at a time."""

    status = models.CharField(max_length=16, choices=AccessReviewStatus.choices, default=AccessReviewStatus.OPEN)
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_off_at = models.DateTimeField(null=True, blank=True)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="open"), name="accessreview_one_open",
                violation_error_message="An access review is already open; finish it first.",
            ),
            models.CheckConstraint(
                condition=Q(signed_off_at__isnull=True) | Q(signed_off_by__isnull=False),
                name="accessreview_signed_off_by_someone",
                violation_error_message="A signed-off review names who signed it off.",
            ),
        ]

    def __str__(self) -> str:
        return f"Access review of {self.started_at:%Y-%m-%d} ({self.get_status_display().lower()})"


class ReviewDecision(models.TextChoices):
    PENDING = "pending", "Not decided yet"
    CONFIRMED = "confirmed", "Confirmed"
    REVOKED = "revoked", "Revoked"


class AccessReviewItem(models.Model):
    """One holder of one privilege at the start of a review, and the reviewer's decision on it."""

    review = models.ForeignKey(AccessReview, on_delete=models.PROTECT, related_name="items")
    kind = models.CharField(max_length=24, choices=AccessChangeKind.choices)
    privilege = models.CharField(max_length=200)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    grantee_group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    role = models.CharField(max_length=150, blank=True)
    flag = models.CharField(max_length=16, blank=True)
    permission = models.ForeignKey("auth.Permission", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    target_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, blank=True)
    decision = models.CharField(max_length=16, choices=ReviewDecision.choices, default=ReviewDecision.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["review", "kind", "privilege", "target", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(decision="revoked") | ~Q(reason=""),
                name="accessreviewitem_revoke_reason_required",
                violation_error_message="Revoking access in a review needs a reason.",
            ),
        ]

    def __str__(self) -> str:
        who = self.subject.username if self.subject_id else f"group {self.grantee_group}"
        where = f" on {self.target}" if self.target else ""
        return f"{self.privilege} for {who}{where}: {self.get_decision_display().lower()}"

    @property
    def grantee(self) -> str:
        return self.subject.username if self.subject_id else f"group {self.grantee_group.name}"
