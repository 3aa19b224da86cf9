"""Access-control settings: four-eyes access changes, time-bound grants, access reviews and SCIM
provisioning (see docs/access-control.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from portal.envvars import _positive_int, _secret, _url

__all__ = [
    "PORTAL_ACCESS_EXPIRY_REMINDER_DAYS",
    "PORTAL_ACCESS_REVIEW_DAYS",
    "PORTAL_SCIM_TOKEN",
    "SCIM_SERVICE_PROVIDER",
]

# A periodic access review is due this many days after the last one was signed off.
PORTAL_ACCESS_REVIEW_DAYS = _positive_int("PORTAL_ACCESS_REVIEW_DAYS", 90)
# A time-bound grant's holder and the administrators are reminded this many days before it ends.
PORTAL_ACCESS_EXPIRY_REMINDER_DAYS = _positive_int("PORTAL_ACCESS_EXPIRY_REMINDER_DAYS", 3)
# The bearer token the identity provider presents to /scim/v2/ (unset: SCIM is off). Secret: may come
# from PORTAL_SCIM_TOKEN_FILE; never logged or shown.
PORTAL_SCIM_TOKEN = (_secret("PORTAL_SCIM_TOKEN") or "").strip()
if PORTAL_SCIM_TOKEN and len(PORTAL_SCIM_TOKEN) < 32:
    raise ImproperlyConfigured("PORTAL_SCIM_TOKEN must be at least 32 characters (a random secret).")

# django-scim2 (compliance/people/scim.py): the portal's adapters and its bearer-token check.
_base = urlsplit(_url("PORTAL_BASE_URL", "http://127.0.0.1:8000"))
SCIM_SERVICE_PROVIDER = {
    "NETLOC": _base.netloc,
    "SCHEME": _base.scheme,
    "USER_ADAPTER": "compliance.people.scim.PortalSCIMUser",
    "GROUP_ADAPTER": "compliance.people.scim.PortalSCIMGroup",
    "GROUP_FILTER_PARSER": "compliance.people.scim_filters.PortalGroupFilterQuery",
    "AUTH_CHECK_MIDDLEWARE": "compliance.people.scim.SCIMBearerTokenAuth",
    "GET_EXTRA_MODEL_EXCLUDE_KWARGS_GETTER": "compliance.people.scim.exclude_kwargs_getter",
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="deployment-portal-scim"',
    "AUTHENTICATION_SCHEMES": [{
        "type": "oauthbearertoken", "name": "Bearer token", "primary": True,
        "description": "Authorization: Bearer <PORTAL_SCIM_TOKEN>",
    }],
}
