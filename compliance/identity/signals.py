"""At every single sign-on: the person's roles follow their identity-provider groups."""

from __future__ import annotations

from allauth.account.signals import user_logged_in

from .groups import apply_idp_groups, groups_of_sociallogin


def _signed_in(sender, request, user, sociallogin=None, **kwargs):
    if sociallogin is None:
        return
    apply_idp_groups(user=user, idp_groups=groups_of_sociallogin(sociallogin))


def connect() -> None:
    user_logged_in.connect(_signed_in, dispatch_uid="compliance.identity.sso_roles")
