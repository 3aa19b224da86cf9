"""Reports of access control: every four-eyes access change (requested, decided, expired) and every
access review with each decision and its sign-off."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Q

from ..people.access_models import AccessChange, AccessChangeStatus, AccessReviewItem, ReviewDecision
from .registry import PERIOD, Column, Filters, Report, register
from .sql import IsoTimestamp

CHUNK = 2000

ACCESS_CHANGE_COLUMNS = (
    Column("requested_at", "Requested (UTC)"),
    Column("change", "Change #"),
    Column("privilege", "Privilege"),
    Column("grantee", "Granted to"),
    Column("target", "Where"),
    Column("requested_by", "Requested by"),
    Column("requested_via", "Via"),
    Column("request_reason", "Why"),
    Column("status", "Status", choices=tuple(AccessChangeStatus.choices)),
    Column("decided_by", "Decided by"),
    Column("decided_at", "Decided (UTC)"),
    Column("decision_reason", "Decision reason"),
    Column("expires_at", "Expires (UTC)"),
    Column("revoked_at", "Revoked (UTC)"),
    Column("revoke_reason", "Revocation"),
)


def access_change_rows(filters: Filters) -> Iterator[dict]:
    rows = (
        filters.in_period(AccessChange.objects.all(), "requested_at")
        .annotate(at=IsoTimestamp("requested_at"), decided=IsoTimestamp("decided_at"),
                  expires=IsoTimestamp("expires_at"), revoked=IsoTimestamp("revoked_at"))
        .order_by("requested_at", "id")
        .values_list("at", "pk", "privilege", "subject__username", "grantee_group__name", "target",
                     "requested_by__username", "requested_via", "request_reason", "status", "decided_by__username",
                     "decided", "decision_reason", "expires", "revoked", "revoke_reason")
    )
    for (at, pk, privilege, subject, group, target, requester, via, why, status, decider, decided, decision_reason,
         expires, revoked, revocation) in rows.iterator(chunk_size=CHUNK):
        yield {
            "requested_at": at, "change": pk, "privilege": privilege,
            "grantee": subject or f"group {group}", "target": target, "requested_by": requester or "",
            "requested_via": via, "request_reason": why, "status": status, "decided_by": decider or "",
            "decided_at": decided or "", "decision_reason": decision_reason, "expires_at": expires or "",
            "revoked_at": revoked or "", "revoke_reason": revocation,
        }


ACCESS_REVIEW_COLUMNS = (
    Column("review", "Review #"),
    Column("started_at", "Started (UTC)"),
    Column("started_by", "Started by"),
    Column("privilege", "Privilege"),
    Column("grantee", "Holder"),
    Column("target", "Where"),
    Column("decision", "Decision", choices=tuple(ReviewDecision.choices)),
    Column("decided_by", "Decided by"),
    Column("decided_at", "Decided (UTC)"),
    Column("reason", "Reason"),
    Column("signed_off_by", "Signed off by"),
    Column("signed_off_at", "Signed off (UTC)"),
)


def access_review_decision_rows(filters: Filters) -> Iterator[dict]:
    """One row per holder and review (reviews started in the period)."""
    items = AccessReviewItem.objects.all()
    if filters.start:
        items = items.filter(review__started_at__gte=filters.start)
    if filters.end:
        items = items.filter(Q(review__started_at__lt=filters.end))
    rows = (
        items.annotate(started=IsoTimestamp("review__started_at"), decided=IsoTimestamp("decided_at"),
                       signed=IsoTimestamp("review__signed_off_at"))
        .order_by("review__started_at", "review_id", "id")
        .values_list("review_id", "started", "review__started_by__username", "privilege", "subject__username",
                     "grantee_group__name", "target", "decision", "decided_by__username", "decided", "reason",
                     "review__signed_off_by__username", "signed")
    )
    for (review, started, starter, privilege, subject, group, target, decision, decider, decided, reason, signer,
         signed) in rows.iterator(chunk_size=CHUNK):
        yield {
            "review": review, "started_at": started, "started_by": starter, "privilege": privilege,
            "grantee": subject or f"group {group}", "target": target, "decision": decision,
            "decided_by": decider or "", "decided_at": decided or "", "reason": reason,
            "signed_off_by": signer or "", "signed_off_at": signed or "",
        }


ACCESS_CHANGES = register(Report(
    slug="access-changes",
    title="Access changes (four eyes)",
    description="Every requested grant of privileged access in the period (Administrators or Deployment Approvers "
    "role, staff or superuser, approve permission on an environment): who asked and why, the second "
    "administrator's decision and reason, the expiry and the automatic revocation.",
    columns=ACCESS_CHANGE_COLUMNS, rows=access_change_rows, filters=frozenset({PERIOD}), order=32,
))

ACCESS_REVIEWS = register(Report(
    slug="access-reviews",
    title="Access reviews",
    description="Each periodic access review started in the period: every holder of privileged access, the "
    "reviewer's decision (confirmed or revoked, with the reason) and the sign-off.",
    columns=ACCESS_REVIEW_COLUMNS, rows=access_review_decision_rows, filters=frozenset({PERIOD}), order=33,
))
