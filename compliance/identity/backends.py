"""Password sign-in, unless the installation turned local passwords off (``PORTAL_LOCAL_PASSWORDS=0``)."""

from __future__ import annotations

from allauth.account.auth_backends import AuthenticationBackend
from django.conf import settings


class PortalAuthenticationBackend(AuthenticationBackend):
    """allauth's backend (username and password; also used to attach single sign-on sessions). With
    local passwords off no password is accepted anywhere: the sign-in page, the admin's login, a shell."""

    def authenticate(self, request, **credentials):
        if not settings.PORTAL_LOCAL_PASSWORDS:
            return None
        return super().authenticate(request, **credentials)
