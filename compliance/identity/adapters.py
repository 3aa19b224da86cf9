"""allauth adapters: who may get an account, how a single sign-on account is filled in, and the record
of every refused sign-in.

- Nobody signs themselves up with a password: local accounts are made by administrators.
- A person the identity provider vouches for gets an account at their first sign-in (just in time),
  never with staff or superuser status; their roles come from the group mapping (``groups``).
- A refusal (the IdP answered with an error such as ``access_denied``, a state or token that did not
  verify, a deactivated portal account) is a failed sign-in in django-axes' failure log, like a wrong
  password, so it is evidence and counts against the address's throttle.
"""

from __future__ import annotations

import logging
import re
import time

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.shortcuts import redirect

log = logging.getLogger(__name__)

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def record_refused_sign_in(request, *, username: str, reason: str) -> None:
    """A refused sign-in, recorded by django-axes (AccessFailureLog) through Django's own signal."""
    log.info("sign-in refused for %s: %s", username or "an unknown person", reason)
    user_login_failed.send(
        sender=__name__, credentials={"username": username or "(single sign-on)"}, request=request
    )


class PortalAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        """People signed in by single sign-on have no password and, before they enrol one, no second
        factor to re-authenticate with: for them a sign-in within the re-authentication timeout counts
        (so they can enrol MFA at all). Everyone else re-authenticates as allauth asks."""
        request = getattr(self, "request", None)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            from allauth.account.internal.flows.login import get_authentication_records
            from allauth.mfa.models import Authenticator
            from django.conf import settings

            if not user.has_usable_password() and not Authenticator.objects.filter(user=user).exists():
                records = [r for r in get_authentication_records(request, user) if r.get("method") == "socialaccount"]
                if records and time.time() - float(records[-1]["at"]) < settings.ACCOUNT_REAUTHENTICATION_TIMEOUT:
                    return False
        return super().is_reauthentication_required(app=app, **kwargs)

    def respond_user_inactive(self, request, user):
        record_refused_sign_in(request, username=user.get_username(), reason="the account is deactivated")
        return super().respond_user_inactive(request, user)


class PortalSocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        return True  # just-in-time accounts for people the identity provider vouches for

    def is_auto_signup_allowed(self, request, sociallogin) -> bool:
        return True

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        claims = _claims(sociallogin)
        username = (
            claims.get("preferred_username") or data.get("username") or (data.get("email") or "").split("@")[0]
            or sociallogin.account.uid
        )
        user.username = _USERNAME_UNSAFE.sub("-", str(username))[:150]
        user.is_staff = False
        user.is_superuser = False
        return user

    def pre_social_login(self, request, sociallogin):
        """A first sign-in whose username or e-mail belongs to an existing portal account is refused (and
        recorded): it is never linked to that account, nor may the person pick another name on a sign-up
        form. An administrator resolves it (renames the local account, or removes it)."""
        if sociallogin.is_existing:
            return
        claims = _claims(sociallogin)
        user = sociallogin.user
        username = _USERNAME_UNSAFE.sub("-", str(claims.get("preferred_username") or user.username or ""))[:150]
        email = (user.email or claims.get("email") or "").strip()
        model = get_user_model()
        clash = (username and model.objects.filter(username__iexact=username).exists()) or (
            email and model.objects.filter(email__iexact=email).exists()
        )
        if clash:
            record_refused_sign_in(
                request, username=username or email,
                reason="single sign-on for a name or e-mail that a portal account already has",
            )
            messages.error(
                request,
                "Your identity provider's account matches an existing portal account by name or e-mail; it was "
                "not signed in. Ask an administrator to resolve the duplicate.",
            )
            raise ImmediateHttpResponse(redirect("login"))

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        name = getattr(provider, "sub_id", None) or getattr(provider, "id", provider)
        reason = f"{name}: {error or 'error'}"
        if exception is not None:
            cause = exception.__cause__
            reason += f" ({type(exception).__name__}: {str(exception)[:200]}"
            reason += f"; {type(cause).__name__}: {str(cause)[:200]})" if cause is not None else ")"
        record_refused_sign_in(request, username=f"sso:{name}", reason=reason)
        return super().on_authentication_error(
            request, provider, error=error, exception=exception, extra_context=extra_context
        )


def _claims(sociallogin) -> dict:
    data = sociallogin.account.extra_data or {}
    merged: dict = {}
    for part in (data.get("id_token"), data.get("userinfo")):
        if isinstance(part, dict):
            merged.update(part)
    return merged
