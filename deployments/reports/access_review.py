"""The access review report: who may request or approve where (current grants and their changes in
the period), and whether each grant is effective (role, training, suspension)."""

from __future__ import annotations

from collections.abc import Iterator

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, OuterRef, Q

from compliance.models import Suspension
from compliance.people.gates import acting_refusal
from compliance.people.roles import Role
from compliance.reports.registry import Column, Filters, Report, register
from compliance.reports.sql import IsoTimestamp
from deployments.models import (
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
)
from deployments.reports.definitions import CHUNK_SIZE, CODENAME_ACTIONS, EnvironmentIds, _in_period, _in_scope

ACCESS_COLUMNS = (
    Column("section", "Section"),
    Column("occurred_at", "When (UTC)"),
    Column("service", "Service"),
    Column("environment", "Environment"),
    Column("permission", "Permission"),
    Column("grantee", "Granted to"),
    Column("person", "Person"),
    Column("change", "Change"),
    Column("effective", "Can act now"),
    Column("actor", "Changed by"),
    Column("detail", "Detail"),
)


def _role_exists(user_ref: str, role: Role):
    memberships = get_user_model().groups.through.objects
    return Exists(memberships.filter(user_id=OuterRef(user_ref), group__name=str(role)))


def _suspended(user_ref: str):
    return Exists(Suspension.objects.filter(user_id=OuterRef(user_ref), lifted_at__isnull=True))


def _effective(codename: str, active: bool, service_account: bool, engineer: bool, approver: bool,
               suspended: bool) -> tuple[bool, str]:
    """Whether a grant lets the person act now, and why not (mirrors ``permissions.environments_for``)."""
    if not active:
        return False, "account inactive"
    if codename == "approve_deployment":
        if service_account:
            return False, "service accounts never approve"
        if not approver:
            return False, f"not in {Role.APPROVER}"
    elif codename == "request_deployment" and not (service_account or engineer):
        return False, f"not in {Role.ENGINEER}"
    if suspended:
        return False, "suspended"
    return True, ""


class _GateCheck:
    """The compliance gates (training, suspension) per person and action, asked once each."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], str] = {}

    def why_not(self, username: str, codename: str) -> str:
        action = CODENAME_ACTIONS.get(codename, codename)
        key = (username, action)
        if key not in self.answers:
            user = get_user_model().objects.filter(username=username).first()
            refusal = acting_refusal(user=user, action=action) if user is not None else None
            self.answers[key] = refusal.message if refusal is not None else ""
        return self.answers[key]


def _current_grant_rows(filters: Filters, environment_ids: EnvironmentIds = None) -> Iterator[dict]:
    gates = _GateCheck()
    direct = _in_scope(EnvironmentUserObjectPermission.objects.all(), filters, "content_object",
                       environment_ids).annotate(
        engineer=_role_exists("user_id", Role.ENGINEER),
        approver=_role_exists("user_id", Role.APPROVER),
        suspended=_suspended("user_id"),
    ).order_by("content_object__service__name", "content_object__name", "permission__codename", "user__username")
    for service, environment, codename, username, active, service_account, engineer, approver, suspended in (
        direct.values_list(
            "content_object__service__name", "content_object__name", "permission__codename", "user__username",
            "user__is_active", "user__is_service_account", "engineer", "approver", "suspended",
        ).iterator(chunk_size=CHUNK_SIZE)
    ):
        effective, why = _effective(codename, active, service_account, engineer, approver, suspended)
        if effective and not service_account:
            why = gates.why_not(username, codename)
            effective = not why
        yield {
            "section": "current", "occurred_at": "", "service": service, "environment": environment,
            "permission": CODENAME_ACTIONS.get(codename, codename), "grantee": username, "person": username,
            "change": "held directly", "effective": effective, "actor": "", "detail": why,
        }
    # Group grants, one row per member: through the membership table, so nobody is hidden in a group.
    # One filter() call, so every condition (and the columns read below) is on the SAME grant row:
    # separate calls would each join the grants again and let other environments' grants through.
    grant = "group__environmentgroupobjectpermission__"
    conditions = {f"{grant}isnull": False}
    if filters.service:
        conditions[f"{grant}content_object__service__name"] = filters.service
    if filters.environment:
        conditions[f"{grant}content_object__name"] = filters.environment
    if environment_ids is not None:
        conditions[f"{grant}content_object__in"] = environment_ids
    memberships = get_user_model().groups.through.objects.filter(**conditions)
    via_group = memberships.annotate(
        engineer=_role_exists("user_id", Role.ENGINEER),
        approver=_role_exists("user_id", Role.APPROVER),
        suspended=_suspended("user_id"),
    ).order_by(
        f"{grant}content_object__service__name", f"{grant}content_object__name", f"{grant}permission__codename",
        "group__name", "user__username",
    )
    for env_id, service, environment, codename, group, username, active, service_account, engineer, approver, \
            suspended in via_group.values_list(
                f"{grant}content_object_id", f"{grant}content_object__service__name", f"{grant}content_object__name",
                f"{grant}permission__codename", "group__name", "user__username", "user__is_active",
                "user__is_service_account", "engineer", "approver", "suspended",
            ).iterator(chunk_size=CHUNK_SIZE):
        if environment_ids is not None and env_id not in environment_ids:
            continue  # never outside the scope, whatever the joins did
        effective, why = _effective(codename, active, service_account, engineer, approver, suspended)
        if effective and not service_account:
            why = gates.why_not(username, codename)
            effective = not why
        yield {
            "section": "current", "occurred_at": "", "service": service, "environment": environment,
            "permission": CODENAME_ACTIONS.get(codename, codename), "grantee": f"group {group}",
            "person": username, "change": "held through group", "effective": effective, "actor": "", "detail": why,
        }


_GRANT_CHANGES = {
    LogEntry.Action.CREATE: "granted",
    LogEntry.Action.DELETE: "revoked",
    LogEntry.Action.UPDATE: "changed",
}


def _change_rows(filters: Filters, environment_ids: EnvironmentIds = None) -> Iterator[dict]:
    """Grants and revocations (auditlog entries of the permission rows) and group-membership changes.

    Narrowed to ``environment_ids``: only grants on those environments (matched by name, as the
    audit entry names them); role changes, which are tied to no environment, are left out."""
    allowed = None
    if environment_ids is not None:
        allowed = set(Environment.objects.filter(pk__in=environment_ids).values_list("service__name", "name"))
    user_ct = ContentType.objects.get_for_model(get_user_model())
    grant_cts = ContentType.objects.get_for_models(EnvironmentUserObjectPermission, EnvironmentGroupObjectPermission)
    group_ct_id = grant_cts[EnvironmentGroupObjectPermission].pk
    entries = _in_period(
        LogEntry.objects.filter(
            Q(content_type__in=list(grant_cts.values())) | Q(content_type=user_ct, changes__has_key="groups")
        ),
        filters,
        "timestamp",
    )
    rows = (
        entries.annotate(at=IsoTimestamp("timestamp"))
        .order_by("timestamp", "id")
        .values_list("at", "action", "content_type_id", "object_repr", "changes", "actor__username")
    )
    for at, action, content_type_id, representation, changes, actor in rows.iterator(chunk_size=CHUNK_SIZE):
        if content_type_id == user_ct.pk:
            if allowed is not None:
                continue
            groups = (changes or {}).get("groups") or {}
            operation = "added to group" if groups.get("operation") == "add" else "removed from group"
            for group in groups.get("objects") or ():
                yield {
                    "section": "change", "occurred_at": at, "service": "", "environment": "",
                    "permission": f"role/group {group}", "grantee": f"group {group}", "person": representation,
                    "change": operation, "effective": None, "actor": actor or "", "detail": "",
                }
            continue
        # guardian's text for a grant: "<service>/<environment> | <user or group> | <codename>"
        target, _, rest = representation.partition(" | ")
        grantee, _, codename = rest.rpartition(" | ")
        service, _, environment = target.partition("/")
        if (filters.service and service != filters.service) or (
            filters.environment and environment != filters.environment
        ) or (allowed is not None and (service, environment) not in allowed):
            continue
        is_group = content_type_id == group_ct_id
        yield {
            "section": "change", "occurred_at": at, "service": service, "environment": environment,
            "permission": CODENAME_ACTIONS.get(codename, codename),
            "grantee": f"group {grantee}" if is_group else grantee, "person": "" if is_group else grantee,
            "change": _GRANT_CHANGES.get(action, str(action)), "effective": None, "actor": actor or "",
            "detail": "",
        }


def access_review_rows(filters: Filters, environment_ids: EnvironmentIds = None) -> Iterator[dict]:
    yield from _current_grant_rows(filters, environment_ids)
    yield from _change_rows(filters, environment_ids)


ACCESS_REVIEW = Report(
    slug="access-review",
    title="Access review",
    description=(
        "Who can request or approve deployments where, now: every per-environment grant to a person or a "
        "group (groups expanded to their members) and whether the role, account, suspensions and current "
        "training let them act; then every grant, revocation and group-membership change in the period, from "
        "the audit log. Pending four-eyes grants are in the access changes report."
    ),
    columns=ACCESS_COLUMNS,
    rows=access_review_rows,
    order=30,
)




register(ACCESS_REVIEW)
