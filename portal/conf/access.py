"""Access-control settings: four-eyes access changes, time-bound grants, access reviews and SCIM
provisioning (see docs/access-control.md)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from portal.envvars import _positive_int, _secret

__all__ = [
    "PORTAL_ACCESS_EXPIRY_REMINDER_DAYS",
    "PORTAL_ACCESS_REVIEW_DAYS",
    "PORTAL_SCIM_TOKEN",
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
