"""``PORTAL_REQUIRE_MFA_FOR``: members of these roles enrol a second factor before anything else.

Until they have a TOTP app or a passkey, every page sends them to the MFA page (their account pages,
sign-out and static files stay reachable), and the session API answers 403 with
``mfa_enrolment_required``. Superusers are held to it as administrators.
"""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect

from compliance.people.roles import has_role

STRONG_TYPES = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
EXEMPT_PREFIXES = ("/accounts/", "/static/", "/healthz")


def must_enrol(user) -> bool:
    """True when ``user`` holds a role that requires MFA and has no second factor yet."""
    required = settings.PORTAL_REQUIRE_MFA_FOR
    if not required or not user.is_authenticated:
        return False
    held = any(has_role(user, role) for role in required) or (user.is_superuser and "Administrators" in required)
    if not held:
        return False
    return not Authenticator.objects.filter(user=user, type__in=STRONG_TYPES).exists()


class RequireMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(EXEMPT_PREFIXES) or not must_enrol(request.user):
            return self.get_response(request)
        message = "Your role requires a second factor: add an authenticator app or a passkey before you continue."
        if request.path.startswith("/api/"):
            return JsonResponse({"error": {"code": "mfa_enrolment_required", "message": message, "details": {}}},
                                status=403)
        messages.warning(request, message)
        return redirect("mfa_index")
