"""Who a name stands for: the one home for matching CI logins, e-mail addresses and display names
to portal people.

Separation of duties compares people, but CI systems name them in their own ways (a GitHub login,
a GitLab username, a commit e-mail, a display name). Every identity of a person is compared
case-insensitively; a name that matches nobody, or more than one person, resolves to nobody, and
the caller must treat that as a visible gap, never as "no conflict".

The portal itself acts as one account too (``system_actor``): background jobs and automatic
enforcement are attributed to it in the audit trail.
"""

from __future__ import annotations

import functools

from auditlog.context import set_actor
from django.contrib.auth import get_user_model
from django.db.models import Q

IDENTITY_FIELDS = ("username", "github_login", "gitlab_username", "email")


def normalize(name: str | None) -> str:
    return " ".join((name or "").split()).lower()


def identities_of(user) -> frozenset[str]:
    """Every name ``user`` may appear under: username, CI logins, e-mail and full name (lowercase)."""
    if user is None:
        return frozenset()
    names = {normalize(getattr(user, field, "") or "") for field in IDENTITY_FIELDS}
    full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    names.add(normalize(full_name))
    names.discard("")
    return frozenset(names)


def _matching(name: str):
    query = Q()
    for field in IDENTITY_FIELDS:
        query |= Q(**{f"{field}__iexact": name})
    return get_user_model().objects.filter(query, is_active=True, is_service_account=False)


def resolve_person(name: str | None):
    """The one active person ``name`` identifies (by username, GitHub login, GitLab username or
    e-mail, case-insensitively), or ``None`` when it matches nobody or is ambiguous."""
    name = (name or "").strip()
    if not name:
        return None
    found = list(_matching(name).order_by("pk")[:2])
    return found[0] if len(found) == 1 else None


# --- the portal's own account ----------------------------------------------------------------------

SYSTEM_USERNAME = "portal-system"


def system_actor():
    """The account background jobs act as; it can never sign in."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={"is_active": False, "is_service_account": True, "first_name": "Portal", "last_name": "system"},
    )
    return user


def service_account(username: str, *, first_name: str, last_name: str):
    """The account an integration's actions are recorded under (GitHub, GitLab, Jenkins): created on
    first use, inactive and without a usable password, so it can never sign in."""
    user, created = get_user_model().objects.get_or_create(
        username=username,
        defaults={"is_service_account": True, "is_active": False, "first_name": first_name, "last_name": last_name},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def is_system_actor(actor) -> bool:
    return bool(getattr(actor, "is_service_account", False) and getattr(actor, "username", "") == SYSTEM_USERNAME)


def as_system_actor(func):
    """Run ``func`` with the portal's system account as the audit actor (Celery tasks)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with set_actor(system_actor()):
            return func(*args, **kwargs)

    return wrapper
