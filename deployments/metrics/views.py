"""The metrics page: the five DORA and approval figures per service and environment, with charts."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.http import require_safe

from compliance.people.roles import oversees_everything
from deployments.gate import permissions
from deployments.metrics import charts
from deployments.metrics.queries import Period, approver_waits, dora_metrics

MAX_DAYS = 366


class MetricsForm(forms.Form):
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    service = forms.CharField(required=False, max_length=100)
    environment = forms.CharField(required=False, max_length=100)

    def period(self) -> Period:
        default = Period.last_days(30)
        return Period(self.cleaned_data.get("date_from") or default.date_from,
                      self.cleaned_data.get("date_to") or default.date_to)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        period = self.period()
        if period.date_to < period.date_from:
            raise forms.ValidationError("The period must end on or after the day it starts.")
        if period.days > MAX_DAYS:
            raise forms.ValidationError(f"A period is at most {MAX_DAYS} days.")
        return cleaned


def visible_environment_ids(user):
    """None (everything) for auditors and administrators; otherwise the environments the person sees."""
    if oversees_everything(user):
        return None
    return list(permissions.visible_environments(user).values_list("pk", flat=True))


@require_safe
@login_required
def metrics(request):
    if not (oversees_everything(request.user) or permissions.visible_environments(request.user).exists()):
        raise PermissionDenied("Metrics are shown for the environments you work on.")
    form = MetricsForm(request.GET)
    if not form.is_valid():
        return render(request, "metrics/index.html", {"form": form, "rows": [], "approvers": []}, status=400)
    period = form.period()
    scope = {"environment_ids": visible_environment_ids(request.user),
             "service": form.cleaned_data["service"].strip(), "environment": form.cleaned_data["environment"].strip()}
    rows = dora_metrics(period, **scope)
    approvers = approver_waits(period, **scope)
    return render(request, "metrics/index.html", {
        "form": form, "period": period, "rows": rows, "approvers": approvers,
        "charts": charts.metric_charts(rows, approvers),
    })
