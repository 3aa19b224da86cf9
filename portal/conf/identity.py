"""Sign-in settings (docs/sso.md): django-allauth for local passwords, OpenID Connect, SAML 2.0, MFA
and re-authentication; the IdP's groups mapped to portal roles; who must use MFA.

Every value comes from the environment; a bad one stops start-up naming the variable. Client secrets
may come from ``NAME_FILE``.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from portal.envvars import _bool, _positive_int, _read, _secret, _url

__all__ = [
    "ACCOUNT_ADAPTER",
    "ACCOUNT_EMAIL_VERIFICATION",
    "ACCOUNT_FORMS",
    "ACCOUNT_LOGIN_METHODS",
    "ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE",
    "ACCOUNT_RATE_LIMITS",
    "ACCOUNT_REAUTHENTICATION_TIMEOUT",
    "ACCOUNT_SESSION_REMEMBER",
    "ACCOUNT_SIGNUP_FIELDS",
    "AXES_USERNAME_CALLABLE",
    "IDENTITY_APPS",
    "IDENTITY_AUTHENTICATION_BACKENDS",
    "IDENTITY_MIDDLEWARE",
    "MFA_PASSKEY_LOGIN_ENABLED",
    "MFA_SUPPORTED_TYPES",
    "MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN",
    "PORTAL_LOCAL_PASSWORDS",
    "PORTAL_REQUIRE_MFA_FOR",
    "PORTAL_SSO_ALLOW_ADMINISTRATORS",
    "PORTAL_SSO_GROUPS_CLAIM",
    "PORTAL_SSO_GROUP_ROLES",
    "PORTAL_SSO_LINK_BY_EMAIL",
    "SOCIALACCOUNT_ADAPTER",
    "SOCIALACCOUNT_EMAIL_AUTHENTICATION",
    "SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT",
    "SOCIALACCOUNT_LOGIN_ON_GET",
    "SOCIALACCOUNT_ONLY",
    "SOCIALACCOUNT_PROVIDERS",
    "SOCIALACCOUNT_STORE_TOKENS",
    "parse_group_roles",
]

_DEBUG_OR_TESTING = os.environ.get("DJANGO_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"} or (
    "PYTEST_VERSION" in os.environ
)

IDENTITY_APPS = [
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "allauth.mfa",
]
# After AuthenticationMiddleware; the portal's MFA requirement after allauth's own.
IDENTITY_MIDDLEWARE = [
    "allauth.account.middleware.AccountMiddleware",
    "compliance.identity.mfa.RequireMFAMiddleware",
]
IDENTITY_AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]

# --- local passwords ---------------------------------------------------------------------------
# On for the demo and small teams; PORTAL_LOCAL_PASSWORDS=0 leaves only single sign-on: the password form
# is gone and password sign-in is refused everywhere.
PORTAL_LOCAL_PASSWORDS = _bool("PORTAL_LOCAL_PASSWORDS", True)
ACCOUNT_ADAPTER = "compliance.identity.adapters.PortalAccountAdapter"
SOCIALACCOUNT_ADAPTER = "compliance.identity.adapters.PortalSocialAccountAdapter"
ACCOUNT_FORMS = {"login": "compliance.identity.forms.PortalLoginForm"}
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]  # sign-up itself is closed (adapter)
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
SOCIALACCOUNT_ONLY = not PORTAL_LOCAL_PASSWORDS
# django-axes throttles sign-in (portal.settings, compliance.people.signin); allauth's own failed-login
# limits (per address, per login) would answer before axes records the failure, so they are off; its other
# limits (password reset, MFA codes) stay.
ACCOUNT_RATE_LIMITS = {"login_failed": False, "login": False}
# Sensitive account pages (MFA changes) ask for the password or a second factor again after this.
ACCOUNT_REAUTHENTICATION_TIMEOUT = _positive_int("PORTAL_REAUTHENTICATION_TIMEOUT_SECONDS", 300)
# allauth's form field is "login"; older clients and the portal's tests post "username".
AXES_USERNAME_CALLABLE = "compliance.identity.forms.axes_username"

# --- MFA -----------------------------------------------------------------------------------------
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
# Passkeys are a second factor (after the password or single sign-on), not a way to sign in on their own.
MFA_PASSKEY_LOGIN_ENABLED = False
# WebAuthn needs https, except on loopback during development and tests.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = _DEBUG_OR_TESTING

_MFA_ROLE_WORDS = {
    "administrators": "Administrators",
    "approvers": "Deployment Approvers",
    "engineers": "Engineers",
    "auditors": "Auditors",
}
_require_mfa = [w.strip().lower() for w in _read("PORTAL_REQUIRE_MFA_FOR", list, []) if w.strip()]
_unknown = sorted(set(_require_mfa) - set(_MFA_ROLE_WORDS))
if _unknown:
    raise ImproperlyConfigured(
        f"PORTAL_REQUIRE_MFA_FOR names unknown role(s) {', '.join(_unknown)}; known: {', '.join(_MFA_ROLE_WORDS)}"
    )
# Role (group) names whose members must enrol a second factor before they may do anything else.
PORTAL_REQUIRE_MFA_FOR = sorted({_MFA_ROLE_WORDS[w] for w in _require_mfa})

# --- group → role mapping ------------------------------------------------------------------------
_ROLE_NAMES = ("Administrators", "Engineers", "Deployment Approvers", "Auditors")
PORTAL_SSO_ALLOW_ADMINISTRATORS = _bool("PORTAL_SSO_ALLOW_ADMINISTRATORS", False)


def parse_group_roles(raw: str, *, allow_administrators: bool, variable: str = "PORTAL_SSO_GROUP_ROLES") -> dict:
    """``idp-group:Role Name,other:Role`` → {idp group: {role names}}. Only the four portal roles;
    Administrators only when explicitly allowed; never staff or superuser (those are not roles)."""
    mapping: dict[str, set[str]] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        group, sep, role = (x.strip() for x in entry.rpartition(":"))
        if not sep or not group or not role:
            raise ImproperlyConfigured(f"{variable}: {entry!r} is not of the form idp-group:Role")
        if role not in _ROLE_NAMES:
            raise ImproperlyConfigured(
                f"{variable}: {role!r} is not a portal role; roles are {', '.join(_ROLE_NAMES)} "
                "(staff and superuser status are never granted by sign-in)"
            )
        if role == "Administrators" and not allow_administrators:
            raise ImproperlyConfigured(
                f"{variable}: mapping {group!r} to Administrators is refused; only a superuser grants that role "
                "unless PORTAL_SSO_ALLOW_ADMINISTRATORS=1 says the identity provider decides it"
            )
        mapping.setdefault(group, set()).add(role)
    return {group: frozenset(roles) for group, roles in mapping.items()}


PORTAL_SSO_GROUP_ROLES = parse_group_roles(
    _read("PORTAL_SSO_GROUP_ROLES", str, ""), allow_administrators=PORTAL_SSO_ALLOW_ADMINISTRATORS
)
PORTAL_SSO_GROUPS_CLAIM = _read("PORTAL_SSO_GROUPS_CLAIM", str, "groups").strip() or "groups"

# --- providers -----------------------------------------------------------------------------------
# Moving local accounts to single sign-on: with PORTAL_SSO_LINK_BY_EMAIL=1 a first sign-in whose e-mail the
# provider marks verified is linked to the portal account with that e-mail. Off: such a sign-in is refused.
PORTAL_SSO_LINK_BY_EMAIL = _bool("PORTAL_SSO_LINK_BY_EMAIL", False)
SOCIALACCOUNT_EMAIL_AUTHENTICATION = PORTAL_SSO_LINK_BY_EMAIL
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = PORTAL_SSO_LINK_BY_EMAIL
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS: dict = {}

_oidc_issuer = _read("PORTAL_OIDC_ISSUER", str, "").strip()
if _oidc_issuer:
    _oidc_issuer = _url("PORTAL_OIDC_ISSUER", "")
    _client_id = _read("PORTAL_OIDC_CLIENT_ID", str, "").strip()
    _client_secret = (_secret("PORTAL_OIDC_CLIENT_SECRET", "") or "").strip()
    if not _client_id or not _client_secret:
        raise ImproperlyConfigured(
            "PORTAL_OIDC_ISSUER is set: PORTAL_OIDC_CLIENT_ID and PORTAL_OIDC_CLIENT_SECRET (or _FILE) must be set too"
        )
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": _read("PORTAL_OIDC_PROVIDER_ID", str, "sso").strip() or "sso",
                "name": _read("PORTAL_OIDC_NAME", str, "Single sign-on"),
                "client_id": _client_id,
                "secret": _client_secret,
                "settings": {
                    "server_url": _oidc_issuer,
                    "token_auth_method": _read("PORTAL_OIDC_TOKEN_AUTH_METHOD", str, "client_secret_basic"),
                    "scope": _read("PORTAL_OIDC_SCOPES", str, "openid profile email groups").split(),
                    "fetch_userinfo": True,
                },
            }
        ],
    }

_saml_metadata_url = _read("PORTAL_SAML_IDP_METADATA_URL", str, "").strip()
_saml_sso_url = _read("PORTAL_SAML_IDP_SSO_URL", str, "").strip()
if _saml_metadata_url or _saml_sso_url:
    if _saml_metadata_url:
        _metadata: dict = {"metadata_url": _url("PORTAL_SAML_IDP_METADATA_URL", "")}
    else:
        _certificate = (_secret("PORTAL_SAML_IDP_X509CERT", "") or "").strip()
        if "BEGIN CERTIFICATE" not in _certificate:
            raise ImproperlyConfigured(
                "PORTAL_SAML_IDP_SSO_URL is set: PORTAL_SAML_IDP_X509CERT (or _FILE) must be the identity provider's "
                "PEM signing certificate (or give PORTAL_SAML_IDP_METADATA_URL instead)"
            )
        _metadata = {"sso_url": _url("PORTAL_SAML_IDP_SSO_URL", ""), "x509cert": _certificate}
    _entity_id = _read("PORTAL_SAML_IDP_ENTITY_ID", str, "").strip()
    if not _entity_id:
        raise ImproperlyConfigured("PORTAL_SAML_IDP_ENTITY_ID must name the identity provider's entity id")
    SOCIALACCOUNT_PROVIDERS["saml"] = {
        "APPS": [
            {
                "provider_id": "saml",
                "name": _read("PORTAL_SAML_NAME", str, "SAML single sign-on"),
                # The organisation slug in the portal's SAML URLs: /accounts/saml/<slug>/acs/ and /metadata/.
                "client_id": _read("PORTAL_SAML_ORGANIZATION", str, "sso").strip() or "sso",
                "settings": {
                    "attribute_mapping": {
                        "uid": _read("PORTAL_SAML_UID_ATTRIBUTE", str, "uid"),
                        "email": _read("PORTAL_SAML_EMAIL_ATTRIBUTE", str, "email"),
                        "username": _read("PORTAL_SAML_USERNAME_ATTRIBUTE", str, "uid"),
                    },
                    "idp": {"entity_id": _entity_id, **_metadata},
                    "advanced": {
                        "want_assertion_signed": True,
                        "want_message_signed": False,
                        "reject_idp_initiated_sso": True,
                    },
                },
            }
        ],
    }
