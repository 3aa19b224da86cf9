"""Template helpers for the dashboard's filter forms: option lists built in Python, because hundreds
of environments rendered by a template loop (or ``format_html`` per item) dominate the page's time."""

from html import escape

from django import template
from django.utils.safestring import mark_safe

from compliance.templatetags.compliance_tags import http_url as compliance_http_url

register = template.Library()


def _options(items) -> str:
    # Every value and label is escaped here; the result is therefore safe HTML.
    return mark_safe("".join(  # noqa: S308
        f'<option value="{escape(str(value))}"{" selected" if chosen else ""}>{escape(label)}</option>'
        for value, label, chosen in items
    ))


@register.simple_tag
def environment_options(environments, selected):
    """``<option>`` elements for (id, service, environment) tuples, ``selected`` marked."""
    return _options((pk, f"{service} / {name}", pk == selected) for pk, service, name in environments)


@register.simple_tag
def service_options(services, selected):
    return _options((name, name, name == selected) for name in services)


# Links from CI data never become ``javascript:`` links: one filter, shared with the compliance pages.
register.filter("http_url", compliance_http_url)
