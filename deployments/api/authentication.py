"""Bearer API tokens for people and CI service accounts, and the audit actor of token requests."""

from __future__ import annotations

from auditlog.context import auditlog_value
from rest_framework import authentication, exceptions

from deployments.api import tokens


def set_audit_actor(user) -> None:
    """Make ``user`` the actor of audit entries written during this request.

    The auditlog middleware runs before DRF authenticates a token, so it saw an anonymous user;
    it keeps its context in a dict that is read when each entry is saved, so we fill it in.
    """
    try:
        context = auditlog_value.get()
    except LookupError:
        return
    if context.get("actor") is None:
        context["actor"] = user


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer dap_…``. A malformed, unknown, expired or revoked token is a 401, and
    so is a person's token that someone else created (``tokens.acts_only_as_owner``)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use “Bearer <token>”.",
                                                  code="invalid_token")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.", code="invalid_token") from None
        token = tokens.token_for(raw)
        if token is None:
            raise exceptions.AuthenticationFailed(
                "The API token is invalid, expired or revoked.", code="invalid_token"
            )
        set_audit_actor(token.user)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
