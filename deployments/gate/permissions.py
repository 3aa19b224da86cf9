"""The one permission layer: "user + action" becomes a queryset; anything outside it is a 404.

Acting (requesting, approving) needs both the global role (group) and the per-environment
object permission granted with django-guardian, to the person or to one of their groups.
Superusers get no bypass here: administrators configure, approvers approve.
Viewing is wider: auditors and administrators read everything; others read what they may act on
and their own requests.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from compliance.people.roles import Role, has_role, oversees_everything
from deployments.models import (
    DeploymentRequest,
    Environment,
    EnvironmentGroupObjectPermission,
    EnvironmentUserObjectPermission,
)

REQUEST = "request"
APPROVE = "approve"
ACTION_CODENAMES = {REQUEST: "request_deployment", APPROVE: "approve_deployment"}
ACTION_ROLES = {REQUEST: (Role.ENGINEER,), APPROVE: (Role.APPROVER,)}


def _environment_ids_with(user, codename: str):
    direct = EnvironmentUserObjectPermission.objects.filter(
        user=user, permission__codename=codename
    ).values("content_object_id")
    via_group = EnvironmentGroupObjectPermission.objects.filter(
        group__user=user, permission__codename=codename
    ).values("content_object_id")
    return direct, via_group


def environments_for(user, action: str) -> QuerySet[Environment]:
    """Environments where ``user`` may perform ``action`` ("request" or "approve") right now."""
    if action not in ACTION_CODENAMES:
        raise ValueError(f"unknown action {action!r}")
    if not (user and user.is_authenticated and user.is_active):
        return Environment.objects.none()
    if getattr(user, "is_service_account", False) and action == APPROVE:
        return Environment.objects.none()
    if not getattr(user, "is_service_account", False) and not any(
        has_role(user, role) for role in ACTION_ROLES[action]
    ):
        return Environment.objects.none()
    direct, via_group = _environment_ids_with(user, ACTION_CODENAMES[action])
    return Environment.objects.filter(Q(pk__in=direct) | Q(pk__in=via_group))


def can_act(user, action: str, environment: Environment) -> bool:
    return environments_for(user, action).filter(pk=environment.pk).exists()


def sees_everything(user) -> bool:
    return oversees_everything(user)


def visible_environments(user) -> QuerySet[Environment]:
    if sees_everything(user):
        return Environment.objects.all()
    if not (user and user.is_authenticated and user.is_active):
        return Environment.objects.none()
    req_direct, req_group = _environment_ids_with(user, ACTION_CODENAMES[REQUEST])
    app_direct, app_group = _environment_ids_with(user, ACTION_CODENAMES[APPROVE])
    return Environment.objects.filter(
        Q(pk__in=req_direct) | Q(pk__in=req_group) | Q(pk__in=app_direct) | Q(pk__in=app_group)
    )


def visible_requests(user) -> QuerySet[DeploymentRequest]:
    """Requests ``user`` may read: everything for auditors/administrators, otherwise their own and
    those in environments they may request or approve for."""
    if sees_everything(user):
        return DeploymentRequest.objects.all()
    if not (user and user.is_authenticated and user.is_active):
        return DeploymentRequest.objects.none()
    return DeploymentRequest.objects.filter(
        Q(requester=user) | Q(environment__in=visible_environments(user).values("pk"))
    )


def can_cancel(user, request: DeploymentRequest) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return request.requester_id == user.pk or has_role(user, Role.ADMINISTRATOR)


def _grant_codenames() -> list[str]:
    return [ACTION_CODENAMES[REQUEST], ACTION_CODENAMES[APPROVE]]


def with_direct_grant(queryset: QuerySet[DeploymentRequest], user) -> QuerySet[DeploymentRequest]:
    """Annotate ``user_has_direct_grant`` (a request/approve permission granted to ``user`` on the
    request's environment) so ``can_view_request`` usually needs no query of its own."""
    if not (user and user.is_authenticated):
        return queryset
    direct = EnvironmentUserObjectPermission.objects.filter(
        user=user, content_object_id=OuterRef("environment_id"), permission__codename__in=_grant_codenames()
    )
    return queryset.annotate(user_has_direct_grant=Exists(direct))


def can_view_request(user, request: DeploymentRequest) -> bool:
    """The one-object form of ``visible_requests`` (the same rule, checked cheapest first): cheap
    enough for CI polling one request."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if request.requester_id == user.pk:
        return True
    direct = getattr(request, "user_has_direct_grant", None)
    if direct is None:
        direct = EnvironmentUserObjectPermission.objects.filter(
            user=user, content_object_id=request.environment_id, permission__codename__in=_grant_codenames()
        ).exists()
    if direct:
        return True
    if EnvironmentGroupObjectPermission.objects.filter(
        group__user=user, content_object_id=request.environment_id, permission__codename__in=_grant_codenames()
    ).exists():
        return True
    return sees_everything(user)
