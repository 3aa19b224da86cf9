"""My API tokens: every signed-in person lists, creates and revokes their own API tokens.

A token acts as its owner, so this page is the only place a person's token is made: nobody else
(administrators included) can create one for them. The clear value is shown once, on the page that
answers the creation POST (never cached, never stored), and never again. Writes go through
``deployments.api.tokens`` (which re-checks every rule and records refusals); the list is one query
for the tokens and one per scope relation, whatever their number.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compliance.errors import RuleViolation
from deployments.api import tokens
from deployments.choices import TokenAction
from deployments.gate import permissions
from deployments.models import ApiToken, Environment, Service
from portal.client import client_ip

EXPIRY_CHOICES = [("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year"),
                  ("never", "Never")]
DEFAULT_EXPIRY = "90"


def scope_text(token: ApiToken) -> str:
    """``payments-api; payments-api/staging`` or ``everything you may reach``, and ``nothing`` once the
    scoped objects are gone (from prefetched relations where the caller prefetched them)."""
    parts = []
    if token.scoped_services or token.services.all():
        names = [service.name for service in token.services.all()]
        parts.append("services: " + (", ".join(names) or "none left (deleted)"))
    if token.scoped_environments or token.environments.all():
        names = [f"{env.service.name}/{env.name}" for env in token.environments.all()]
        parts.append("environments: " + (", ".join(names) or "none left (deleted)"))
    return "; ".join(parts) or "everything you may reach"


def actions_text(token: ApiToken) -> str:
    if not token.actions:
        return "all"
    return ", ".join(TokenAction(action).label for action in token.actions if action in TokenAction.values)


class EnvironmentChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Environment) -> str:
        return f"{obj.service.name}/{obj.name}"


class TokenCreateForm(forms.Form):
    """What a person's new token may do. Scopes are limited to what the person may see."""

    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “laptop CLI” or “release script”.")
    actions = forms.MultipleChoiceField(
        choices=TokenAction.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Tick what the token may do; none ticked allows whatever you may do.",
    )
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.none(), required=False,
        help_text="Limit the token to these services (none selected: every service you may reach).",
    )
    environments = EnvironmentChoiceField(
        queryset=Environment.objects.none(), required=False,
        help_text="Limit the token to these environments (none selected: every environment you may reach).",
    )
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial=DEFAULT_EXPIRY, label="Expires")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        visible = permissions.visible_environments(user)
        self.fields["environments"].queryset = (
            visible.select_related("service").order_by("service__name", "name")
        )
        self.fields["services"].queryset = Service.objects.filter(
            pk__in=visible.values("service_id")
        ).order_by("name")

    def expires_at(self):
        choice = self.cleaned_data["expires"]
        return None if choice == "never" else timezone.now() + timedelta(days=int(choice))


def _my_tokens(user):
    return (
        ApiToken.objects.filter(user=user)
        .select_related("created_by")
        .prefetch_related("services", Prefetch("environments", Environment.objects.select_related("service")))
        .order_by("-created_at", "-id")
    )


def _page(request, form, *, status=200):
    rows = list(_my_tokens(request.user))
    for token in rows:
        token.scope_label = scope_text(token)
        token.actions_label = actions_text(token)
    return render(request, "deployments/tokens.html", {"tokens": rows, "form": form, "now": timezone.now()},
                  status=status)


@require_GET
@login_required
def my_tokens(request):
    """The signed-in person's tokens (revoked and expired ones included) and the form for a new one."""
    return _page(request, TokenCreateForm(user=request.user))


@never_cache
@require_http_methods(["POST"])
@login_required
def create_token(request):
    """Create a token for the signed-in person and show its clear value this once."""
    form = TokenCreateForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        token, clear = tokens.create_api_token(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            actions=form.cleaned_data["actions"],
            services=form.cleaned_data["services"],
            environments=form.cleaned_data["environments"],
            expires_at=form.expires_at(),
            ip_address=client_ip(request),
        )
    except RuleViolation as exc:
        messages.error(request, exc.message)
        return _page(request, form, status=exc.status_code)
    token = _my_tokens(request.user).get(pk=token.pk)
    context = {"token": token, "clear": clear, "scope": scope_text(token), "actions": actions_text(token)}
    return render(request, "deployments/token_created.html", context)


@require_POST
@login_required
def revoke_token(request, pk: int):
    """Revoke one of the signed-in person's tokens (someone else's token is a 404 here)."""
    token = ApiToken.objects.filter(pk=pk, user=request.user).first()
    if token is None:
        raise Http404("No such token.")
    try:
        tokens.revoke_api_token(actor=request.user, token=token, ip_address=client_ip(request))
    except RuleViolation as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token “{token.name}” ({token.prefix}…) is revoked; it no longer works.")
    return redirect("deployments:my_tokens")
