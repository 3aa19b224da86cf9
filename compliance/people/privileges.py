"""Privileged access: who may change whose roles, flags and permissions, and the record of every change.

Rules (enforced on the server, whatever the form shows):

1. Nobody changes their own privileges: their groups (roles), staff or superuser flag, direct
   permissions, object permissions granted to them or to a group they belong to, or a group they
   belong to.
2. Only a superuser grants or removes the superuser or staff flag, direct permissions or the
   Administrators role, sets any group's model permissions, and changes the four role groups (their
   permissions come from code).
3. Every change to the Administrators or Deployment Approvers role and every grant or removal of a
   watched object permission (``approve_deployment``) is a ``PrivilegeChange``, e-mailed to the active
   administrators after commit and listed on the monitoring page; so is every refused attempt.

``compliance`` never imports ``deployments``: the object-permission models are registered by
``deployments`` through ``watch_object_permissions``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NoReturn

from auditlog.context import auditlog_value
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils import timezone

from portal.links import absolute_url

from ..errors import RuleViolation
from .alerts import alert_administrators
from .models import PrivilegeChange, PrivilegeChangeKind
from .roles import ROLE_NAMES, Role

# Roles whose every change administrators hear about.
WATCHED_ROLES = (str(Role.ADMINISTRATOR), str(Role.APPROVER))

# User fields that are privileges, in words.
USER_PRIVILEGE_FIELDS = {
    "groups": "roles (groups)",
    "is_staff": "staff status",
    "is_superuser": "superuser status",
    "user_permissions": "direct permissions",
}
SUPERUSER_ONLY_FIELDS = {"is_staff", "is_superuser", "user_permissions"}


def current_actor():
    """The person the audit trail names for the current request or task (None outside both).

    django-auditlog leaves its context variable set after ``set_actor`` exits; the context is live
    only while its ``pre_save`` receiver is connected, so a stale actor is never used.
    """
    try:
        context = auditlog_value.get()
    except LookupError:
        return None
    uid = context.get("signal_duid")
    if uid is None or not any(key[0] == uid for key, *_ in pre_save.receivers):
        return None
    actor = context.get("actor")
    return actor if getattr(actor, "pk", None) else None


def _name(user) -> str:
    return getattr(user, "username", None) or "the system"


def _monitoring_url() -> str:
    return absolute_url("monitoring:index")


def _alert(change: PrivilegeChange) -> None:
    who = change.subject.username if change.subject_id else f"group {change.group}"
    where = f" on {change.target}" if change.target else ""
    if change.kind == PrivilegeChangeKind.REFUSED:
        subject = f"Refused: {_name(change.actor)} tried to change {change.privilege} of {who}"
        body = f"{change.message}\n\nNothing was changed."
    else:
        subject = f"{change.get_kind_display()}: {change.privilege} for {who}{where}"
        body = (
            f"{change.get_kind_display()}: {change.privilege} for {who}{where}, "
            f"by {_name(change.actor)} at {change.created_at:%Y-%m-%d %H:%M} UTC."
        )
    alert_administrators(subject, f"{body}\n\nRecent privileged-access changes: {_monitoring_url()}\n")


@transaction.atomic
def record_change(
    *,
    kind: str,
    privilege: str,
    actor=None,
    subject=None,
    group: str = "",
    target: str = "",
    details: dict | None = None,
    now: datetime | None = None,
    alert: bool = True,
) -> PrivilegeChange:
    """Keep a privileged-access change and tell the administrators (after commit) unless ``alert`` is
    off (access-review confirmations: nothing changed)."""
    change = PrivilegeChange.objects.create(
        created_at=now or timezone.now(),
        kind=kind,
        actor=actor if getattr(actor, "pk", None) else None,
        subject=subject if getattr(subject, "pk", None) else None,
        group=group,
        privilege=privilege,
        target=target,
        details=details or {},
    )
    if alert:
        _alert(change)
    return change


def refuse(
    *,
    actor,
    code: str,
    message: str,
    privilege: str,
    subject=None,
    group: str = "",
    target: str = "",
    status_code: int = 403,
) -> NoReturn:
    """Record a refused privilege change (its own transaction) and raise it as a ``RuleViolation``.

    Call it before the caller's transaction starts (or from a form's validation) so the record
    survives the refusal.
    """
    violation = RuleViolation(code, message, status_code=status_code)
    with transaction.atomic():
        change = PrivilegeChange.objects.create(
            created_at=timezone.now(),
            kind=PrivilegeChangeKind.REFUSED,
            actor=actor if getattr(actor, "pk", None) else None,
            subject=subject if getattr(subject, "pk", None) else None,
            group=group,
            privilege=privilege,
            target=target,
            code=code,
            message=message,
        )
        _alert(change)
    raise violation


# --- rules ------------------------------------------------------------------------------------------


def check_account_change(
    *, actor, subject, changed: Iterable[str], groups_before: Iterable[str] = (), groups_after: Iterable[str] = ()
) -> None:
    """Refuse (recorded) a change of ``subject``'s account privileges that ``actor`` may not make.

    ``changed`` names the changed fields; the group names before and after tell role changes apart.
    """
    privileged = sorted(set(changed) & USER_PRIVILEGE_FIELDS.keys())
    if not privileged:
        return
    what = ", ".join(USER_PRIVILEGE_FIELDS[name] for name in privileged)
    if getattr(subject, "pk", None) is not None and subject.pk == actor.pk:
        refuse(
            actor=actor, subject=subject, code="self_privilege_change", privilege=what,
            message=f"You cannot change your own {what}. Another administrator has to do it.",
        )
    if actor.is_superuser:
        return
    superuser_only = sorted(set(privileged) & SUPERUSER_ONLY_FIELDS)
    if superuser_only:
        names = ", ".join(USER_PRIVILEGE_FIELDS[name] for name in superuser_only)
        refuse(
            actor=actor, subject=subject, code="superuser_only", privilege=names,
            message=f"Only a superuser may change {names}.",
        )
    admin_role = str(Role.ADMINISTRATOR)
    if (admin_role in set(groups_before)) != (admin_role in set(groups_after)):
        refuse(
            actor=actor, subject=subject, code="superuser_only", privilege=f"the {admin_role} role",
            group=admin_role, message=f"Only a superuser may grant or remove the {admin_role} role.",
        )


def check_password_set(*, actor, subject) -> None:
    """Refuse (recorded) setting another person's password unless ``actor`` is a superuser: whoever
    sets a password can sign in as that person, and nobody acts as someone else."""
    if actor.is_superuser or getattr(subject, "pk", None) == actor.pk:
        return
    refuse(
        actor=actor, subject=subject, code="password_of_another_person", privilege="password",
        message="Only a superuser sets another person's password (whoever sets it could sign in as them). "
        "Ask the person to change it themselves, or deactivate the account.",
    )


def check_group_change(*, actor, group) -> None:
    """Nobody changes a group they belong to; only superusers change the role groups' permissions."""
    if group.pk is not None and actor.groups.filter(pk=group.pk).exists():
        refuse(
            actor=actor, group=group.name, code="self_privilege_change", privilege=f"permissions of {group.name}",
            message=f"You belong to {group.name}: you cannot change its permissions. Another administrator has to.",
        )
    if not actor.is_superuser and group.name in ROLE_NAMES:
        refuse(
            actor=actor, group=group.name, code="superuser_only", privilege=f"permissions of {group.name}",
            message=f"The permissions of the {group.name} role come from the portal itself; only a superuser "
            "may change them.",
        )


def check_group_permissions_change(*, actor, group) -> None:
    """Model permissions held through a group are privileges outside the four roles: only a superuser
    sets them (groups otherwise only collect people for environment permissions)."""
    if not actor.is_superuser:
        name = group.name or "a new group"
        refuse(
            actor=actor, group=group.name, code="superuser_only", privilege=f"permissions of {name}",
            message="Only a superuser may give a group model permissions; grant environment permissions under "
            "Environment permissions instead.",
        )


def check_object_permission_grant(*, actor, permission: str, target: str, user=None, group=None) -> None:
    """Nobody grants an object permission to themselves or to a group they belong to."""
    if user is not None and user.pk == actor.pk:
        refuse(
            actor=actor, subject=user, code="self_privilege_change", privilege=permission, target=target,
            message=f"You cannot grant yourself {permission} on {target}. Another administrator has to do it.",
        )
    if group is not None and actor.groups.filter(pk=group.pk).exists():
        refuse(
            actor=actor, group=group.name, code="self_privilege_change", privilege=permission, target=target,
            message=f"You belong to {group.name}: you cannot grant it {permission} on {target}. "
            "Another administrator has to do it.",
        )


# --- recording ---------------------------------------------------------------------------------------


def role_changed(*, user, role: str, added: bool, now: datetime | None = None) -> None:
    """Called by the role-assignment tracking whenever a person gains or loses a role."""
    if role not in WATCHED_ROLES:
        return
    record_change(
        kind=PrivilegeChangeKind.ROLE_ADDED if added else PrivilegeChangeKind.ROLE_REMOVED,
        privilege=f"the {role} role",
        actor=current_actor(),
        subject=user,
        group=role,
        now=now,
    )


def flags_changed(*, actor, subject, changes: dict[str, tuple]) -> None:
    """The staff or superuser flag of ``subject`` changed (``changes``: field → (before, after))."""
    for field, (before, after) in sorted(changes.items()):
        if field in {"is_staff", "is_superuser"} and bool(before) != bool(after):
            record_change(
                kind=PrivilegeChangeKind.FLAG_CHANGED,
                privilege=f"{USER_PRIVILEGE_FIELDS[field]} {'granted' if after else 'removed'}",
                actor=actor,
                subject=subject,
                details={"field": field, "before": bool(before), "after": bool(after)},
            )


_watched_codenames: dict[type, tuple[str, ...]] = {}


def _grant_event(instance, kind: str) -> None:
    codename = instance.permission.codename
    if codename not in _watched_codenames.get(type(instance), ()):
        return
    holder_group = getattr(instance, "group", None)
    record_change(
        kind=kind,
        privilege=codename,
        actor=current_actor(),
        subject=getattr(instance, "user", None),
        group=holder_group.name if holder_group is not None else "",
        target=str(instance.content_object),
    )


def _grant_about_to_save(sender, instance, raw=False, **kwargs):
    """A watched object permission saved by a person outside an approved access change is refused."""
    from . import four_eyes

    if raw or instance.permission.codename not in _watched_codenames.get(type(instance), ()):
        return
    if instance.pk is not None and type(instance).objects.filter(pk=instance.pk, permission=instance.permission,
                                                                 ).exists():
        return  # nothing new is granted
    holder_group = getattr(instance, "group", None)
    four_eyes.guard(privilege=instance.permission.codename, subject=getattr(instance, "user", None),
                    group=holder_group.name if holder_group is not None else "", target=str(instance.content_object))


def _grant_saved(sender, instance, created, raw=False, **kwargs):
    if not raw:
        _grant_event(instance, PrivilegeChangeKind.PERMISSION_GRANTED)


def _grant_deleted(sender, instance, **kwargs):
    _grant_event(instance, PrivilegeChangeKind.PERMISSION_REVOKED)


def watch_object_permissions(*models, codenames: Iterable[str] = ("approve_deployment",)) -> None:
    """Record (and alert on) every grant and removal of ``codenames`` in these guardian
    object-permission models, whichever path wrote it (admin, guardian's pages, a shell)."""
    for model in models:
        _watched_codenames[model] = tuple(codenames)
        uid = f"compliance.privileges.{model._meta.label_lower}"
        pre_save.connect(_grant_about_to_save, sender=model, dispatch_uid=f"{uid}.guard")
        post_save.connect(_grant_saved, sender=model, dispatch_uid=f"{uid}.saved")
        post_delete.connect(_grant_deleted, sender=model, dispatch_uid=f"{uid}.deleted")


def watched_object_permissions() -> dict[type, tuple[str, ...]]:
    """The object-permission models registered with ``watch_object_permissions`` and their codenames."""
    return dict(_watched_codenames)
