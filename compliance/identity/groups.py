"""The identity provider's groups mapped to portal roles (``PORTAL_SSO_GROUP_ROLES``).

The roles named in the mapping are *managed* by the IdP: at every single sign-on a person gains
each managed role one of their IdP groups maps to, and loses each managed role none does. Roles the
mapping does not name stay as administrators set them. Sign-in never touches the staff or superuser
flag, and maps into Administrators only where ``PORTAL_SSO_ALLOW_ADMINISTRATORS=1`` (checked when
the settings load). Every gain and loss of a watched role is a privilege change on the monitoring
page (``compliance.people.privileges``), like any other.

Four eyes hold for the IdP too: gaining a privileged role (Administrators, Deployment Approvers)
becomes a pending access change requested by the identity provider (``via="sso"``, as SCIM does),
which takes effect once an administrator approves it; the other roles apply at once. Losing a role
always applies at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction


def groups_from_claims(claims: Mapping, claim: str) -> list[str]:
    """The group names in ``claims[claim]`` (a list or one string; other shapes are no groups)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value if isinstance(item, str | int)]
    return []


def groups_of_sociallogin(sociallogin) -> list[str]:
    """The IdP groups of one sign-in: OIDC userinfo and ID token claims, or SAML attributes."""
    data = sociallogin.account.extra_data or {}
    claim = settings.PORTAL_SSO_GROUPS_CLAIM
    found: list[str] = []
    for part in (data.get("userinfo"), data.get("id_token"), data):
        if isinstance(part, Mapping):
            found += groups_from_claims(part, claim)
    return sorted(set(found))


def roles_for(idp_groups: Iterable[str], mapping: Mapping[str, Iterable[str]]) -> tuple[set[str], set[str]]:
    """(roles to hold, roles managed by the mapping)."""
    managed = {role for roles in mapping.values() for role in roles}
    wanted = {role for group in idp_groups for role in mapping.get(group, ())}
    return wanted, managed


def _request_privileged_role(user, role: str) -> None:
    """A privileged role the IdP maps: a pending access change (idempotent at every sign-in)."""
    from compliance.errors import RuleViolation
    from compliance.people import access_changes

    try:
        access_changes.request_access_change(
            actor=None, grant=access_changes.role_grant(user, role), via="sso",
            reason="Requested by the identity provider (a group mapped at single sign-on).",
        )
    except RuleViolation as exc:
        if exc.code not in {"already_pending", "already_held"}:
            raise


@transaction.atomic
def apply_idp_groups(*, user, idp_groups: Iterable[str]) -> tuple[set[str], set[str]]:
    """Bring ``user``'s managed roles in line with their IdP groups; returns (added, removed), where
    privileged roles are not added but requested (a pending access change for a second person)."""
    from compliance.people.privileges import WATCHED_ROLES

    wanted, managed = roles_for(idp_groups, settings.PORTAL_SSO_GROUP_ROLES)
    if not managed:
        return set(), set()
    held = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    added, removed = wanted - held, (held & managed) - wanted
    for role in sorted(added & set(WATCHED_ROLES)):
        _request_privileged_role(user, role)
    added -= set(WATCHED_ROLES)
    if added:
        user.groups.add(*Group.objects.filter(name__in=added))
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    if added or removed:
        user._portal_role_names = None  # roles.has_role's per-object cache
        vars(user).pop("_portal_role_names", None)
    return added, removed
