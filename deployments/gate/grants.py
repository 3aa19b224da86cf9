"""Who may request or approve where, and why: the per-environment grants (to the person, or to a group
they are in) behind the permission layer, with what stops a grant from counting now (the role, a
service account, a deactivated account, a suspension or lapsed training). Reads only; the answer
"may act now" is the permission layer's own (``permissions.can_act``) and the compliance gates'."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from compliance.people.gates import acting_refusal
from compliance.people.roles import has_role
from deployments.gate.permissions import ACTION_CODENAMES, ACTION_ROLES, APPROVE, REQUEST
from deployments.models import Environment, EnvironmentGroupObjectPermission, EnvironmentUserObjectPermission

ACTIONS = (REQUEST, APPROVE)
CODENAME_ACTION = {codename: action for action, codename in ACTION_CODENAMES.items()}


@dataclass
class Access:
    """One person on one environment: the grants per action and whether each counts now."""

    environment: Environment
    user: object
    via: dict[str, list[str]] = field(default_factory=lambda: {REQUEST: [], APPROVE: []})
    blockers: dict[str, str] = field(default_factory=dict)

    def may(self, action: str) -> bool:
        return bool(self.via[action]) and not self.blockers.get(action)

    @property
    def may_request(self) -> bool:
        return self.may(REQUEST)

    @property
    def may_approve(self) -> bool:
        return self.may(APPROVE)

    @property
    def request_via(self) -> str:
        return ", ".join(self.via[REQUEST])

    @property
    def approve_via(self) -> str:
        return ", ".join(self.via[APPROVE])

    @property
    def request_blocker(self) -> str:
        return self.blockers.get(REQUEST, "") if self.via[REQUEST] else ""

    @property
    def approve_blocker(self) -> str:
        return self.blockers.get(APPROVE, "") if self.via[APPROVE] else ""


def blocker(user, action: str) -> str:
    """Why a grant of ``action`` does not let ``user`` act now ("" when it does)."""
    if not user.is_active:
        return "Deactivated account."
    if getattr(user, "is_service_account", False):
        return "Service accounts never approve." if action == APPROVE else ""
    if not any(has_role(user, role) for role in ACTION_ROLES[action]):
        roles = " or ".join(str(role) for role in ACTION_ROLES[action])
        return f"Lacks the {roles} role."
    refusal = acting_refusal(user=user, action=action)
    return refusal.message if refusal is not None else ""


def access_rows(*, environment: Environment | None = None, user=None) -> list[Access]:
    """Every (person, environment) pair with a grant, narrowed to one environment or one person; each
    grant named by where it comes from ("direct grant", "group Deployment Approvers"). A fixed number
    of queries plus one compliance check per person and action."""
    direct = EnvironmentUserObjectPermission.objects.filter(permission__codename__in=CODENAME_ACTION)
    groups = EnvironmentGroupObjectPermission.objects.filter(permission__codename__in=CODENAME_ACTION)
    if environment is not None:
        direct, groups = direct.filter(content_object=environment), groups.filter(content_object=environment)
    if user is not None:
        direct, groups = direct.filter(user=user), groups.filter(group__user=user)
    grants: dict[tuple[int, int], dict[str, list[str]]] = defaultdict(lambda: {REQUEST: [], APPROVE: []})
    for user_id, env_id, codename in direct.values_list("user_id", "content_object_id", "permission__codename"):
        grants[(user_id, env_id)][CODENAME_ACTION[codename]].append("direct grant")
    members: dict[int, list[int]] = defaultdict(list)
    group_grants = list(groups.values_list("group_id", "group__name", "content_object_id", "permission__codename"))
    people = get_user_model().objects.filter(groups__in={g for g, *_ in group_grants})
    if user is not None:
        people = people.filter(pk=user.pk)
    for person_id, group_id in people.values_list("pk", "groups"):
        members[group_id].append(person_id)
    for group_id, group_name, env_id, codename in group_grants:
        for person_id in members.get(group_id, ()):
            grants[(person_id, env_id)][CODENAME_ACTION[codename]].append(f"group {group_name}")
    users = get_user_model().objects.in_bulk({person_id for person_id, _ in grants})
    environments = Environment.objects.select_related("service").in_bulk({env_id for _, env_id in grants})
    blockers: dict[tuple[int, str], str] = {}
    rows = []
    for (person_id, env_id), via in grants.items():
        person = users[person_id]
        for action in ACTIONS:
            if via[action] and (person_id, action) not in blockers:
                blockers[(person_id, action)] = blocker(person, action)
        rows.append(
            Access(
                environment=environments[env_id],
                user=person,
                via=via,
                blockers={action: blockers.get((person_id, action), "") for action in ACTIONS},
            )
        )
    rows.sort(key=lambda a: (a.environment.service.name, a.environment.name, a.user.username))
    return rows
