"""Absolute links to the portal (e-mails, chat messages, CI callbacks, evidence): one helper, built on
``reverse()`` and ``PORTAL_BASE_URL``, so a link never hard-codes a path."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def absolute_url(viewname: str, *args, **kwargs) -> str:
    """The absolute URL of the named view, e.g. ``absolute_url("deployments:request_detail", 42)``."""
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse(viewname, args=args or None, kwargs=kwargs or None)
