from django.conf import settings

from compliance.people.roles import Role, administers, has_role, oversees_everything


def portal(request):
    user = getattr(request, "user", None)
    return {
        "portal_base_url": settings.PORTAL_BASE_URL,
        "local_passwords": settings.PORTAL_LOCAL_PASSWORDS,
        "is_portal_admin": administers(user),
        "is_approver": has_role(user, Role.APPROVER),
        "is_engineer": has_role(user, Role.ENGINEER),
        "is_auditor": has_role(user, Role.AUDITOR),
    }


def _optional_url(name: str) -> str:
    """The URL of a page another part of the portal may provide, or "" when it is not installed."""
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def navigation(request):
    """What the navigation offers the signed-in person: only what their roles let them do."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {"nav": {}}
    sees_all = oversees_everything(user)
    return {
        "nav": {
            "queue": has_role(user, Role.APPROVER),
            "my_requests": has_role(user, Role.ENGINEER),
            "decisions": True,
            "training_url": _optional_url("compliance:my_training"),
            "reports_url": _optional_url("reports:index") if sees_all else "",
            "admin": user.is_staff,
        }
    }
