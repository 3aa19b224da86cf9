from django.conf import settings

from compliance.roles import Role, has_role


def portal(request):
    user = getattr(request, "user", None)
    return {
        "portal_base_url": settings.PORTAL_BASE_URL,
        "is_portal_admin": has_role(user, Role.ADMINISTRATOR) or bool(user and user.is_superuser),
        "is_approver": has_role(user, Role.APPROVER),
        "is_engineer": has_role(user, Role.ENGINEER),
        "is_auditor": has_role(user, Role.AUDITOR),
    }
