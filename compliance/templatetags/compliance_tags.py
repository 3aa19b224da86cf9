import json

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


@register.filter
def evidence_items(evidence) -> list[tuple[str, str, bool]]:
    """A violation's evidence as ``(label, text, is_block)`` rows for a definition list: scalars as
    text, lists and objects as indented JSON (``is_block``), never as a Python ``repr``."""
    if not isinstance(evidence, dict):
        return [("Evidence", json.dumps(evidence, indent=2, sort_keys=True, default=str), True)] if evidence else []
    rows = []
    for key, value in evidence.items():
        label = str(key).replace("_", " ")
        label = label[:1].upper() + label[1:]
        if isinstance(value, (dict, list, tuple)):
            rows.append((label, json.dumps(value, indent=2, sort_keys=True, default=str), True))
        elif value is None or value == "":
            rows.append((label, "—", False))
        elif isinstance(value, bool):
            rows.append((label, "yes" if value else "no", False))
        else:
            rows.append((label, str(value), False))
    return rows
