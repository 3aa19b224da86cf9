"""Audit evidence: the links of the tamper-evidence hash chain and signed-off audit-log reviews."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

__all__ = ["AuditReview", "ChainLink", "ChainTag", "ForgedEntry"]


class ChainLink(models.Model):
    """One link of the tamper-evidence chain (``compliance/audit/chain.py`` defines the hashes).

    ``row_digest`` is the SHA-256 of the row's canonical form; ``entry_hash`` is an HMAC, with the
    chain key named by ``key_id``, over the previous link's ``entry_hash`` and that digest, so the
    chain cannot be recomputed without the key; ``public_hash`` chains the same digests with plain
    SHA-256, so an auditor can check an exported segment against a signed checkpoint without any
    secret. Append-only (a PostgreSQL trigger refuses UPDATE, DELETE and TRUNCATE). Not recorded by
    django-auditlog: that would create audit entries that need links, forever.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    model_label = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    row_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)
    public_hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_label", "object_id"],
                name="chainlink_one_link_per_entry",
                violation_error_message="This entry is already linked into the audit chain.",
            ),
            models.CheckConstraint(
                condition=Q(seq__gte=1),
                name="chainlink_seq_positive",
                violation_error_message="Chain sequence numbers start at 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"Link {self.seq}: {self.model_label} #{self.object_id} {self.entry_hash[:12]}"


class ChainTag(models.Model):
    """The write-time tag of a chained row not yet linked: an HMAC with the chain key over the row,
    written by the portal inside the transaction that wrote the row. The sealer links only rows whose
    tag verifies (a row inserted straight into the database has none) and then removes the tag."""

    model_label = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    key_id = models.CharField(max_length=16)
    tag = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_label", "object_id"], name="chaintag_one_per_entry"),
        ]

    def __str__(self) -> str:
        return f"Tag of {self.model_label} #{self.object_id}"


class ForgedEntry(models.Model):
    """A chained row the sealer refused to link: it was not written through the portal (no valid
    write-time tag). Recorded once, e-mailed to administrators, reported by every verification."""

    model_label = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    detected_at = models.DateTimeField()
    reason = models.TextField()
    alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        verbose_name_plural = "forged entries"
        constraints = [
            models.UniqueConstraint(fields=["model_label", "object_id"], name="forgedentry_one_per_entry"),
        ]

    def __str__(self) -> str:
        return f"Forged {self.model_label} #{self.object_id}"


class AuditReview(models.Model):
    """An administrator's signed-off review of the audit log for a period."""

    period_start = models.DateField()
    period_end = models.DateField()
    scope = models.TextField(help_text="What was reviewed (e.g. all production approvals and permission grants).")
    findings = models.TextField(help_text="What was found, including 'no exceptions'.")
    signed_off_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_off_at = models.DateTimeField()

    class Meta:
        ordering = ["-period_end", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")),
                name="auditreview_period_ordered",
                violation_error_message="A review period must end on or after its start.",
            ),
            models.CheckConstraint(
                condition=~Q(scope="") & ~Q(findings=""),
                name="auditreview_scope_and_findings",
                violation_error_message="A review needs a scope and findings.",
            ),
        ]

    def __str__(self) -> str:
        return f"Audit review {self.period_start}–{self.period_end} by {self.signed_off_by}"
