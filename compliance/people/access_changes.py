"""Four-eyes access changes: request, approve, reject, and expire privileged grants.

Privileged grants are: adding someone to the Administrators or Deployment Approvers role, the staff
or superuser flag, and a watched object permission (``approve_deployment`` on an environment, to a
person or a group). The steps:

1. An administrator (or the identity provider through SCIM) *requests* the grant: an
   ``AccessChange`` in status pending; nothing changes yet; the administrators are e-mailed.
2. A *second* administrator approves or rejects it with a reason. The requester never decides it,
   nobody decides a change that grants themselves (or a group they belong to), and superuser-only
   privileges (Administrators, staff, superuser) are decided by a superuser. Refusals are recorded.
   Approval applies the grant inside ``four_eyes.applying`` (the backstop lets it through).
3. A grant with ``expires_at`` is revoked by the periodic job ``expire_access_grants`` once it is
   due, after a reminder ``PORTAL_ACCESS_EXPIRY_REMINDER_DAYS`` before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from auditlog.context import set_actor
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_group_obj_perms_model, get_user_obj_perms_model, remove_perm

from portal.links import absolute_url

from ..errors import RuleViolation
from . import four_eyes, privileges
from .access_models import AccessChange, AccessChangeKind, AccessChangeStatus
from .alerts import alert_administrators
from .models import PrivilegeChangeKind
from .roles import Role, administers

FLAG_WORDS = {"is_staff": "staff status", "is_superuser": "superuser status"}
SUPERUSER_ONLY_ROLES = {str(Role.ADMINISTRATOR)}


@dataclass(frozen=True)
class Grant:
    """What an access change (or a review item) is about: who gets which privilege where."""

    kind: str
    subject: object = None
    group: Group | None = None
    role: str = ""
    flag: str = ""
    permission: Permission | None = None
    target: object = None  # the object of an object permission

    @property
    def privilege(self) -> str:
        if self.kind == AccessChangeKind.ROLE:
            return f"the {self.role} role"
        if self.kind == AccessChangeKind.FLAG:
            return FLAG_WORDS[self.flag]
        return self.permission.codename

    @property
    def target_label(self) -> str:
        return str(self.target) if self.target is not None else ""

    @property
    def grantee_label(self) -> str:
        return self.subject.username if self.subject is not None else f"group {self.group.name}"

    @property
    def superuser_only(self) -> bool:
        return self.kind == AccessChangeKind.FLAG or (self.kind == AccessChangeKind.ROLE and self.role in
                                                       SUPERUSER_ONLY_ROLES)

    def key(self) -> str:
        who = f"user:{self.subject.pk}" if self.subject is not None else f"group:{self.group.pk}"
        if self.kind == AccessChangeKind.ROLE:
            return f"{who}|role:{self.role}"
        if self.kind == AccessChangeKind.FLAG:
            return f"{who}|flag:{self.flag}"
        content_type = ContentType.objects.get_for_model(self.target)
        return f"{who}|perm:{self.permission.pk}:{content_type.pk}:{self.target.pk}"


def role_grant(subject, role: str) -> Grant:
    return Grant(kind=AccessChangeKind.ROLE, subject=subject, role=role)


def flag_grant(subject, flag: str) -> Grant:
    if flag not in FLAG_WORDS:
        raise ValueError(f"not a privileged flag: {flag}")
    return Grant(kind=AccessChangeKind.FLAG, subject=subject, flag=flag)


def permission_grant(*, permission: Permission, target, subject=None, group: Group | None = None) -> Grant:
    return Grant(kind=AccessChangeKind.OBJECT_PERMISSION, subject=subject, group=group, permission=permission,
                 target=target)


def grant_of(row) -> Grant:
    """The grant an ``AccessChange`` or ``AccessReviewItem`` is about."""
    target = None
    if row.kind == AccessChangeKind.OBJECT_PERMISSION:
        target = row.target_type.get_object_for_this_type(pk=row.target_id)
    return Grant(kind=row.kind, subject=row.subject, group=row.grantee_group, role=row.role, flag=row.flag,
                 permission=row.permission, target=target)


# --- holding, applying and removing a grant ------------------------------------------------------------


def _object_permission_rows(grant: Grant):
    model = (get_user_obj_perms_model(grant.target) if grant.subject is not None
             else get_group_obj_perms_model(grant.target))
    rows = model.objects.filter(permission=grant.permission)
    rows = rows.filter(user=grant.subject) if grant.subject is not None else rows.filter(group=grant.group)
    if model.objects.is_generic():
        return rows.filter(content_type=ContentType.objects.get_for_model(grant.target), object_pk=str(grant.target.pk))
    return rows.filter(content_object=grant.target)


def holds(grant: Grant) -> bool:
    if grant.kind == AccessChangeKind.ROLE:
        return grant.subject.groups.filter(name=grant.role).exists()
    if grant.kind == AccessChangeKind.FLAG:
        return bool(type(grant.subject).objects.filter(pk=grant.subject.pk, **{grant.flag: True}).exists())
    return _object_permission_rows(grant).exists()


def _apply(grant: Grant, *, why: str, actor) -> None:
    # The approver applies the grant: the audit trail and the privilege change name them.
    with set_actor(actor), four_eyes.applying(why):
        if grant.kind == AccessChangeKind.ROLE:
            grant.subject.groups.add(Group.objects.get(name=grant.role))
        elif grant.kind == AccessChangeKind.FLAG:
            setattr(grant.subject, grant.flag, True)
            grant.subject.save(update_fields=[grant.flag])  # recorded by compliance.signals, actor: the approver
        else:
            assign_perm(grant.permission, grant.subject if grant.subject is not None else grant.group, grant.target)


def remove_grant(grant: Grant, *, actor=None) -> None:
    """Take a privilege away at once (removals need no second administrator); recorded as a privilege
    change by the same tracking as every other removal."""
    if grant.kind == AccessChangeKind.ROLE:
        grant.subject.groups.remove(*Group.objects.filter(name=grant.role))
    elif grant.kind == AccessChangeKind.FLAG:
        subject = type(grant.subject).objects.get(pk=grant.subject.pk)
        if getattr(subject, grant.flag):
            setattr(subject, grant.flag, False)
            subject.save(update_fields=[grant.flag])
            privileges.flags_changed(actor=actor, subject=subject, changes={grant.flag: (True, False)})
    else:
        remove_perm(grant.permission, grant.subject if grant.subject is not None else grant.group, grant.target)


# --- requesting ----------------------------------------------------------------------------------------


def _refuse(*, actor, grant: Grant, code: str, message: str, status_code: int = 403):
    privileges.refuse(actor=actor, subject=grant.subject, group=grant.group.name if grant.group else grant.role,
                      target=grant.target_label, privilege=grant.privilege, code=code, message=message,
                      status_code=status_code)


def _refuse_self_involvement(*, actor, grant: Grant, yourself: str, member_of) -> None:
    """Nobody requests or decides a grant to themselves or to a group they belong to."""
    if grant.subject is not None and grant.subject.pk == actor.pk:
        _refuse(actor=actor, grant=grant, code="self_privilege_change", message=yourself)
    if grant.group is not None and actor.groups.filter(pk=grant.group.pk).exists():
        _refuse(actor=actor, grant=grant, code="self_privilege_change", message=member_of(grant.group.name))


def _pending_url() -> str:
    return absolute_url("compliance:access_changes")


# The identity provider asks for access through these (no portal person is the requester).
IDENTITY_PROVIDER_CHANNELS = ("scim", "sso")


def request_access_change(
    *, actor, grant: Grant, reason: str = "", expires_at: datetime | None = None, via: str = "admin",
    now: datetime | None = None,
) -> AccessChange:
    """Ask for ``grant``; it waits for a second administrator. ``actor`` ``None`` only for an identity
    provider (``via="scim"`` provisioning, ``via="sso"`` a group mapped at sign-in). Refusals are
    recorded and raised as ``RuleViolation``."""
    now = now or timezone.now()
    if actor is None and via not in IDENTITY_PROVIDER_CHANNELS:
        raise ValueError("an access change is requested by someone (or by the identity provider: SCIM, SSO)")
    if actor is not None:
        if not administers(actor):
            _refuse(actor=actor, grant=grant, code="not_permitted",
                    message="Only administrators request access changes.")
        _refuse_self_involvement(
            actor=actor, grant=grant,
            yourself=f"You cannot grant yourself {grant.privilege}. Another administrator has to request it.",
            member_of=lambda group: f"You belong to {group}: you cannot grant it {grant.privilege}.",
        )
        if grant.superuser_only and not actor.is_superuser:
            _refuse(actor=actor, grant=grant, code="superuser_only",
                    message=f"Only a superuser may grant {grant.privilege}.")
    if grant.subject is not None and not grant.subject.is_active:
        _refuse(actor=actor, grant=grant, code="inactive_account", status_code=400,
                message=f"{grant.subject.username} is deactivated: reactivate the account before granting access.")
    if expires_at is not None and expires_at <= now:
        _refuse(actor=actor, grant=grant, code="invalid_expiry", status_code=400,
                message="The expiry of a grant must be in the future.")
    if holds(grant):
        _refuse(actor=actor, grant=grant, code="already_held", status_code=409,
                message=f"{grant.grantee_label} already holds {grant.privilege}.")
    try:
        change = _create(actor=actor, grant=grant, reason=reason, expires_at=expires_at, via=via, now=now)
    except IntegrityError:
        _refuse(actor=actor, grant=grant, code="already_pending", status_code=409,
                message=f"{grant.privilege} for {grant.grantee_label} is already waiting for a second administrator.")
    return change


@transaction.atomic
def _create(*, actor, grant: Grant, reason: str, expires_at, via: str, now: datetime) -> AccessChange:
    target_type = ContentType.objects.get_for_model(grant.target) if grant.target is not None else None
    change = AccessChange.objects.create(
        kind=grant.kind, grant_key=grant.key(), privilege=grant.privilege, subject=grant.subject,
        grantee_group=grant.group, role=grant.role, flag=grant.flag, permission=grant.permission,
        target_type=target_type, target_id=str(grant.target.pk) if grant.target is not None else "",
        target=grant.target_label, requested_by=actor, requested_via=via, requested_at=now,
        request_reason=(reason or "").strip(), expires_at=expires_at,
    )
    privileges.record_change(
        kind=PrivilegeChangeKind.ACCESS_REQUESTED, privilege=grant.privilege, actor=actor, subject=grant.subject,
        group=grant.group.name if grant.group else grant.role, target=grant.target_label,
        details={"access_change": change.pk, "via": via,
                 "expires_at": expires_at.isoformat() if expires_at else None},
        now=now,
    )
    return change


# --- deciding ------------------------------------------------------------------------------------------


def _check_decider(*, actor, change: AccessChange, grant: Grant) -> None:
    if not administers(actor):
        _refuse(actor=actor, grant=grant, code="not_permitted", message="Only administrators decide access changes.")
    if change.requested_by_id is not None and change.requested_by_id == actor.pk:
        _refuse(actor=actor, grant=grant, code="own_access_change",
                message="You requested this access change: a second administrator has to decide it.")
    _refuse_self_involvement(
        actor=actor, grant=grant,
        yourself=f"This change grants you {grant.privilege}: another administrator has to decide it.",
        member_of=lambda group: f"You belong to {group}: another administrator has to decide this change.",
    )
    if grant.superuser_only and not actor.is_superuser:
        _refuse(actor=actor, grant=grant, code="superuser_only",
                message=f"Only a superuser may approve or reject a grant of {grant.privilege}.")


def _decide(*, actor, change: AccessChange, approve: bool, reason: str) -> AccessChange:
    grant = grant_of(change)
    _check_decider(actor=actor, change=change, grant=grant)
    reason = (reason or "").strip()
    if not reason:
        _refuse(actor=actor, grant=grant, code="reason_required", status_code=400,
                message="Give a reason for approving or rejecting an access change.")
    try:
        return _decide_locked(actor=actor, pk=change.pk, approve=approve, reason=reason)
    except RuleViolation as exc:
        _refuse(actor=actor, grant=grant, code=exc.code, message=exc.message, status_code=exc.status_code)


@transaction.atomic
def _decide_locked(*, actor, pk: int, approve: bool, reason: str) -> AccessChange:
    change = AccessChange.objects.select_for_update().get(pk=pk)
    now = timezone.now()  # read after the lock
    if change.status != AccessChangeStatus.PENDING:
        raise RuleViolation("not_pending", f"This access change is already {change.get_status_display().lower()}.")
    grant = grant_of(change)
    if approve and change.expires_at is not None and change.expires_at <= now:
        raise RuleViolation("expired_before_approval", "This grant would already have expired; request it again.",
                            status_code=400)
    if approve and grant.subject is not None and not type(grant.subject).objects.filter(
            pk=grant.subject.pk, is_active=True).exists():
        raise RuleViolation("inactive_account", f"{grant.subject.username} is deactivated.", status_code=400)
    change.status = AccessChangeStatus.APPROVED if approve else AccessChangeStatus.REJECTED
    change.decided_by, change.decided_at, change.decision_reason = actor, now, reason
    change.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    if approve:
        _apply(grant, why=f"access change #{change.pk}", actor=actor)
    else:
        privileges.record_change(
            kind=PrivilegeChangeKind.ACCESS_REJECTED, privilege=change.privilege, actor=actor, subject=change.subject,
            group=change.grantee_group.name if change.grantee_group_id else change.role, target=change.target,
            details={"access_change": change.pk, "reason": reason}, now=now,
        )
    return change


def approve_access_change(*, actor, change: AccessChange, reason: str) -> AccessChange:
    """A second administrator approves: the grant takes effect now (recorded and e-mailed)."""
    return _decide(actor=actor, change=change, approve=True, reason=reason)


def reject_access_change(*, actor, change: AccessChange, reason: str) -> AccessChange:
    """A second administrator rejects: nothing is granted (recorded and e-mailed)."""
    return _decide(actor=actor, change=change, approve=False, reason=reason)


# --- the periodic job ----------------------------------------------------------------------------------


def _expire_one(pk: int, now: datetime) -> bool:
    with transaction.atomic():
        claimed = AccessChange.objects.filter(pk=pk, status=AccessChangeStatus.APPROVED).update(
            status=AccessChangeStatus.EXPIRED, revoked_at=now)
        if not claimed:
            return False  # another run took it
        change = AccessChange.objects.select_related("subject", "grantee_group", "permission").get(pk=pk)
        change.revoke_reason = f"Expired at {change.expires_at:%Y-%m-%d %H:%M} UTC."
        change.save(update_fields=["revoke_reason"])  # the audit trail records the revocation
        grant = grant_of(change)
        remove_grant(grant, actor=privileges.current_actor())
        privileges.record_change(
            kind=PrivilegeChangeKind.ACCESS_EXPIRED, privilege=change.privilege, actor=privileges.current_actor(),
            subject=change.subject, group=change.grantee_group.name if change.grantee_group_id else change.role,
            target=change.target, details={"access_change": change.pk, "expires_at": change.expires_at.isoformat()},
            now=now,
        )
    return True


def _remind_one(change: AccessChange, now: datetime) -> bool:
    claimed = AccessChange.objects.filter(pk=change.pk, reminded_at__isnull=True).update(reminded_at=now)
    if not claimed:
        return False
    also_to = [change.subject.email] if change.subject_id and change.subject.email else []
    where = f" on {change.target}" if change.target else ""
    alert_administrators(
        f"Access expires soon: {change.privilege} for {change.grantee}{where}",
        f"The time-bound grant of {change.privilege} to {change.grantee}{where} (access change #{change.pk}) "
        f"ends at {change.expires_at:%Y-%m-%d %H:%M} UTC and is then revoked automatically. To keep it, "
        f"request it again and have a second administrator approve it.\n\n{_pending_url()}\n",
        also_to=also_to,
    )
    return True


def _close_stale_pending(now: datetime) -> int:
    """A pending change whose grant would already have ended can never be approved: close it (recorded)."""
    closed = 0
    for pk in AccessChange.objects.filter(status=AccessChangeStatus.PENDING, expires_at__lte=now).values_list(
            "pk", flat=True):
        with transaction.atomic():
            reason = "Not decided before the grant's expiry: closed automatically."
            if not AccessChange.objects.filter(pk=pk, status=AccessChangeStatus.PENDING).update(
                    status=AccessChangeStatus.REJECTED, decided_at=now, decision_reason=reason):
                continue
            change = AccessChange.objects.select_related("subject", "grantee_group").get(pk=pk)
            privileges.record_change(
                kind=PrivilegeChangeKind.ACCESS_REJECTED, privilege=change.privilege, actor=privileges.current_actor(),
                subject=change.subject, group=change.grantee_group.name if change.grantee_group_id else change.role,
                target=change.target, details={"access_change": pk, "reason": reason}, now=now,
            )
            closed += 1
    return closed


def expire_access_grants(*, now: datetime | None = None) -> dict[str, int]:
    """Revoke every approved grant whose expiry has passed, remind before expiry, and close pending
    changes whose grant would already have ended. Safe to run twice and in parallel: each revocation,
    reminder and closing is claimed with a conditional UPDATE."""
    now = now or timezone.now()
    _close_stale_pending(now)
    due = list(AccessChange.objects.filter(status=AccessChangeStatus.APPROVED, expires_at__lte=now)
               .values_list("pk", flat=True))
    expired = sum(_expire_one(pk, now) for pk in due)
    soon = now + timedelta(days=settings.PORTAL_ACCESS_EXPIRY_REMINDER_DAYS)
    upcoming = AccessChange.objects.filter(
        status=AccessChangeStatus.APPROVED, expires_at__gt=now, expires_at__lte=soon, reminded_at__isnull=True,
    ).select_related("subject", "grantee_group")
    reminded = sum(_remind_one(change, now) for change in upcoming)
    return {"expired": expired, "reminded": reminded}


# --- reads ---------------------------------------------------------------------------------------------


def pending_changes():
    return AccessChange.objects.filter(status=AccessChangeStatus.PENDING).select_related(
        "subject", "grantee_group", "requested_by", "permission")


def recent_changes(limit: int = 50):
    return AccessChange.objects.exclude(status=AccessChangeStatus.PENDING).select_related(
        "subject", "grantee_group", "requested_by", "decided_by", "permission")[:limit]
