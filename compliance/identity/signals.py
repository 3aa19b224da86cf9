"""At every single sign-on: the person's roles follow their identity-provider groups."""

from __future__ import annotations

from allauth.account.signals import user_logged_in
from auditlog.context import set_actor

from .groups import apply_idp_groups, groups_of_sociallogin


def _signed_in(sender, request, user, sociallogin=None, **kwargs):
    if sociallogin is None:
        return
    # The identity provider grants these roles, never the person signing in (who may already have been
    # signed in when the request started, and so be the audit trail's actor): the system is recorded.
    with set_actor(None):
        apply_idp_groups(user=user, idp_groups=groups_of_sociallogin(sociallogin))


def connect() -> None:
    user_logged_in.connect(_signed_in, dispatch_uid="compliance.identity.sso_roles")
    # Second factors added or removed and single sign-on accounts linked are audit entries; the TOTP
    # secret, WebAuthn data and the IdP's claims are not (nor each use's timestamp).
    from allauth.mfa.models import Authenticator
    from allauth.socialaccount.models import SocialAccount
    from auditlog.registry import auditlog

    auditlog.register(Authenticator, exclude_fields=["data", "last_used_at"])
    auditlog.register(SocialAccount, exclude_fields=["extra_data", "last_login"])
