from django import template
from django.core.exceptions import PermissionDenied

from compliance.training import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def training_compliance(context):
    """Per-role % of people whose required training is current (administrators and auditors only)."""
    request = context.get("request")
    try:
        return selectors.role_compliance(user=getattr(request, "user", None))
    except PermissionDenied:
        return None


@register.filter
def http_url(value) -> str:
    """``value`` if it is an http(s) URL, else "": evidence links (some from CI or SCM payloads) never
    become ``javascript:`` or ``data:`` links."""
    text = str(value or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else ""
