"""Periodic access reviews: a reviewer confirms or revokes each holder of privileged access.

1. An administrator *starts* a review: one item per holder of the Administrators or Deployment
   Approvers role, of the staff or superuser flag, and of each watched object permission (each
   ``approve_deployment`` grant, to a person or a group), as they are now.
2. A reviewer (an administrator; never about their own access or a group they belong to) *confirms*
   or *revokes* each item; a revocation takes effect at once and needs a reason.
3. When every item is decided, the review is *signed off*. The next one is due
   ``PORTAL_ACCESS_REVIEW_DAYS`` (90) days later; an overdue review shows on the monitoring page.

Each decision and the sign-off are ``PrivilegeChange`` rows (chained audit evidence), and the
"Access reviews" report lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from auditlog.context import set_actor
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import RuleViolation
from . import privileges
from .access_changes import FLAG_WORDS, Grant, grant_of, holds, remove_grant
from .access_models import AccessChangeKind, AccessReview, AccessReviewItem, AccessReviewStatus, ReviewDecision
from .models import PrivilegeChangeKind
from .roles import administers


def _holders() -> list[Grant]:
    """Every privileged grant held now (the same privileges that need four eyes to be granted)."""
    from django.contrib.auth.models import Group

    users = get_user_model().objects
    grants: list[Grant] = []
    for role in privileges.WATCHED_ROLES:
        for person in users.filter(groups__name=role).order_by("username"):
            grants.append(Grant(kind=AccessChangeKind.ROLE, subject=person, role=role))
    for flag in FLAG_WORDS:
        for person in users.filter(**{flag: True}).order_by("username"):
            grants.append(Grant(kind=AccessChangeKind.FLAG, subject=person, flag=flag))
    for model, codenames in privileges.watched_object_permissions().items():
        rows = model.objects.filter(permission__codename__in=codenames).select_related("permission")
        for row in rows.order_by("pk"):
            person, group = getattr(row, "user", None), getattr(row, "group", None)
            grants.append(Grant(kind=AccessChangeKind.OBJECT_PERMISSION, subject=person,
                                group=group if isinstance(group, Group) else None,
                                permission=row.permission, target=row.content_object))
    return grants


def _refuse(*, actor, item: AccessReviewItem | None, code: str, message: str, status_code: int = 403):
    privileges.refuse(
        actor=actor, subject=item.subject if item else None,
        group=(item.grantee_group.name if item and item.grantee_group_id else (item.role if item else "")),
        target=item.target if item else "", privilege=item.privilege if item else "access review",
        code=code, message=message, status_code=status_code,
    )


def start_access_review(*, actor, now: datetime | None = None) -> AccessReview:
    """Open a review with one item per privileged holder now. One open review at a time."""
    if not administers(actor):
        _refuse(actor=actor, item=None, code="not_permitted", message="Only administrators run access reviews.")
    try:
        return _start(actor=actor, now=now or timezone.now())
    except IntegrityError:
        _refuse(actor=actor, item=None, code="review_already_open", status_code=409,
                message="An access review is already open; finish and sign it off first.")


@transaction.atomic
def _start(*, actor, now: datetime) -> AccessReview:
    review = AccessReview.objects.create(started_at=now, started_by=actor)
    for grant in _holders():
        target_type = ContentType.objects.get_for_model(grant.target) if grant.target is not None else None
        AccessReviewItem.objects.create(
            review=review, kind=grant.kind, privilege=grant.privilege, subject=grant.subject,
            grantee_group=grant.group, role=grant.role, flag=grant.flag, permission=grant.permission,
            target_type=target_type, target_id=str(grant.target.pk) if grant.target is not None else "",
            target=grant.target_label,
        )
    return review


def decide_review_item(*, actor, item: AccessReviewItem, decision: str, reason: str = "") -> AccessReviewItem:
    """Confirm or revoke one holder's privilege; a revocation takes effect at once."""
    reason = (reason or "").strip()
    if not administers(actor):
        _refuse(actor=actor, item=item, code="not_permitted", message="Only administrators decide access reviews.")
    if item.subject_id is not None and item.subject_id == actor.pk:
        _refuse(actor=actor, item=item, code="self_review",
                message="You cannot review your own access: another administrator decides this item.")
    if item.grantee_group_id is not None and actor.groups.filter(pk=item.grantee_group_id).exists():
        _refuse(actor=actor, item=item, code="self_review",
                message=f"You belong to {item.grantee_group.name}: another administrator decides this item.")
    if decision not in (ReviewDecision.CONFIRMED, ReviewDecision.REVOKED):
        _refuse(actor=actor, item=item, code="invalid_decision", status_code=400,
                message="Decide an item by confirming or revoking it.")
    if decision == ReviewDecision.REVOKED and not reason:
        _refuse(actor=actor, item=item, code="reason_required", status_code=400,
                message="Give a reason for revoking access.")
    try:
        return _decide_locked(actor=actor, pk=item.pk, decision=decision, reason=reason)
    except RuleViolation as exc:
        _refuse(actor=actor, item=item, code=exc.code, message=exc.message, status_code=exc.status_code)


@transaction.atomic
def _decide_locked(*, actor, pk: int, decision: str, reason: str) -> AccessReviewItem:
    item = AccessReviewItem.objects.select_for_update().select_related("review").get(pk=pk)
    now = timezone.now()
    if item.review.status != AccessReviewStatus.OPEN:
        raise RuleViolation("review_closed", "This access review is already signed off.")
    if item.decision != ReviewDecision.PENDING:
        raise RuleViolation("already_decided", f"This item is already {item.get_decision_display().lower()}.")
    item.decision, item.decided_by, item.decided_at, item.reason = decision, actor, now, reason
    item.save(update_fields=["decision", "decided_by", "decided_at", "reason"])
    grant = grant_of(item)
    revoked = decision == ReviewDecision.REVOKED
    if revoked and holds(grant):
        with set_actor(actor):  # the reviewer revokes: the removal's records name them
            remove_grant(grant, actor=actor)
    privileges.record_change(
        kind=PrivilegeChangeKind.REVIEW_REVOKED if revoked else PrivilegeChangeKind.REVIEW_CONFIRMED,
        privilege=item.privilege, actor=actor, subject=item.subject,
        group=item.grantee_group.name if item.grantee_group_id else item.role, target=item.target,
        details={"access_review": item.review_id, "item": item.pk, "reason": reason}, now=now, alert=revoked,
    )
    return item


def sign_off_access_review(*, actor, review: AccessReview, notes: str = "") -> AccessReview:
    """Close the review once every item is decided (recorded, with the counts)."""
    if not administers(actor):
        _refuse(actor=actor, item=None, code="not_permitted", message="Only administrators sign off access reviews.")
    try:
        return _sign_off(actor=actor, pk=review.pk, notes=(notes or "").strip())
    except RuleViolation as exc:
        _refuse(actor=actor, item=None, code=exc.code, message=exc.message, status_code=exc.status_code)


@transaction.atomic
def _sign_off(*, actor, pk: int, notes: str) -> AccessReview:
    review = AccessReview.objects.select_for_update().get(pk=pk)
    now = timezone.now()
    if review.status != AccessReviewStatus.OPEN:
        raise RuleViolation("review_closed", "This access review is already signed off.")
    open_items = review.items.filter(decision=ReviewDecision.PENDING).count()
    if open_items:
        raise RuleViolation("review_incomplete", f"{open_items} item(s) are not decided yet.", status_code=400)
    review.status, review.signed_off_by, review.signed_off_at, review.notes = (
        AccessReviewStatus.SIGNED_OFF, actor, now, notes)
    review.save(update_fields=["status", "signed_off_by", "signed_off_at", "notes"])
    counts = {d: review.items.filter(decision=d).count() for d in (ReviewDecision.CONFIRMED, ReviewDecision.REVOKED)}
    privileges.record_change(
        kind=PrivilegeChangeKind.REVIEW_SIGNED_OFF, privilege="access review", actor=actor,
        details={"access_review": review.pk, "confirmed": counts[ReviewDecision.CONFIRMED],
                 "revoked": counts[ReviewDecision.REVOKED], "notes": notes}, now=now,
    )
    return review


# --- reads ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessReviewStatusInfo:
    last: AccessReview | None
    open: AccessReview | None
    interval_days: int
    due_by: date
    overdue: bool
    days_overdue: int


def access_review_status(*, today: date | None = None) -> AccessReviewStatusInfo:
    """Due ``PORTAL_ACCESS_REVIEW_DAYS`` after the last sign-off; with none yet, that long after the
    first privileged-access record (so a new installation is not overdue on day one). Two queries."""
    from .models import PrivilegeChange

    today = today or timezone.localdate()
    interval = settings.PORTAL_ACCESS_REVIEW_DAYS
    reviews = list(AccessReview.objects.select_related("signed_off_by").order_by("-started_at", "-id")[:20])
    last = next((r for r in reviews if r.status == AccessReviewStatus.SIGNED_OFF), None)
    open_review = next((r for r in reviews if r.status == AccessReviewStatus.OPEN), None)
    if last is not None:
        since = timezone.localdate(last.signed_off_at)
    else:
        first = PrivilegeChange.objects.order_by("created_at").values_list("created_at", flat=True).first()
        since = timezone.localdate(first) if first else today
    due_by = since + timedelta(days=interval)
    overdue = due_by < today
    return AccessReviewStatusInfo(
        last=last, open=open_review, interval_days=interval, due_by=due_by, overdue=overdue,
        days_overdue=(today - due_by).days if overdue else 0,
    )
