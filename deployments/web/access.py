"""Who may request or approve where: a read-only page for administrators and auditors (per
environment, or one person's), built on ``deployments.gate.grants``."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from compliance.people.roles import oversees_everything
from deployments.gate import grants


@require_GET
@login_required
def access(request):
    """Effective permissions per environment: may request / may approve, via which grant or group."""
    if not oversees_everything(request.user):
        raise PermissionDenied("Only administrators and auditors see everyone's access.")
    person = None
    username = (request.GET.get("person") or "").strip()
    if username:
        person = get_object_or_404(get_user_model(), username=username)
    rows = grants.access_rows(user=person)
    return render(request, "deployments/access.html", {"rows": rows, "person": person})


def person_access_html(user) -> str:
    """The per-environment access table of one person (the person's admin page shows it)."""
    return render_to_string("deployments/_access_table.html", {"rows": grants.access_rows(user=user), "by": "person"})


def environment_access_html(environment) -> str:
    """Who may request or approve on one environment (the environment's admin page shows it)."""
    return render_to_string(
        "deployments/_access_table.html", {"rows": grants.access_rows(environment=environment), "by": "environment"}
    )
