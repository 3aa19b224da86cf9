"""Requesting from the web: the *New request* page and cancelling from the request page. Both go
through the same services (and refusals) as the API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from compliance.errors import RuleViolation
from compliance.people.roles import Role, has_role
from deployments.choices import (
    CANCELLABLE_STATUSES,
    OPEN_STATUSES,
    WITHDRAWING_STATUSES,
    RequestSource,
    RequestStatus,
)
from deployments.gate import permissions, selectors, services
from deployments.gate.policy import PolicyRules
from deployments.notifications.models import NotificationKind
from deployments.web.forms import NewRequestForm
from portal.client import client_ip

CHANGE_RECORD_FIELDS = ("ticket", "risk_level", "impact", "rollback_plan")



@require_http_methods(["GET", "POST"])
@login_required
def new_request(request):
    """An engineer asks to deploy a commit to an environment they may request (POST-redirect-GET)."""
    if not has_role(request.user, Role.ENGINEER):
        raise PermissionDenied("Only engineers request deployments.")
    form = NewRequestForm(request.POST or None, user=request.user)
    error = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = services.submit_request(
                    actor=request.user,
                    environment=data["environment"],
                    sha=data["sha"],
                    ref=data["ref"].strip(),
                    source=RequestSource.WEB,
                    title=data["title"].strip(),
                    change_authors=form.authors(),
                    change_set=form.change_set(),
                    is_emergency=data["is_emergency"],
                    justification=data["justification"],
                    ticket=data["ticket"],
                    risk_level=data["risk_level"],
                    impact=data["impact"],
                    rollback_plan=data["rollback_plan"],
                    ip_address=client_ip(request),
                )
            except RuleViolation as exc:  # recorded as a refusal by the service
                error, status = exc.message, exc.status_code
            else:
                messages.success(request, f"Request #{created.pk} submitted.")
                return redirect("deployments:request_detail", pk=created.pk)
        else:
            status = 400
    context = {"form": form, "error": error, "change_record_fields": CHANGE_RECORD_FIELDS}
    return render(request, "deployments/new_request.html", context, status=status)


@require_POST
@login_required
def cancel(request, pk: int):
    """The requester (or an administrator) withdraws a request from its page."""
    req = selectors.request_for(user=request.user, pk=pk)
    try:
        services.cancel_request(
            actor=request.user,
            request=req,
            reason=request.POST.get("reason", "")[:2000],
            ip_address=client_ip(request),
        )
    except RuleViolation as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Request #{req.pk} cancelled.")
    return redirect("deployments:request_detail", pk=req.pk)


def next_steps(user, req, verdict) -> dict:
    """What the request page tells its requester about what happens next: who was notified, how many
    approvals are still needed, the time limits, and whether they can still cancel."""
    notified = [
        log.user.username if log.user_id else (log.chat_channel.name if log.chat_channel_id else log.recipient)
        for log in req.notifications.filter(kind__in=(NotificationKind.AWAITING, NotificationKind.REMINDER))
        .select_related("user", "chat_channel")
        .order_by("id")
    ]
    is_open = req.status in OPEN_STATUSES
    return {
        "is_open": is_open,
        "notified": list(dict.fromkeys(notified)),
        "approvals_needed": max(0, verdict.approvals_required - verdict.approvals) if is_open else 0,
        "decide_before": req.expires_at if is_open else None,
        "deploy_before": req.approval_expires_at if req.status == RequestStatus.APPROVED else None,
        "withdrawn": req.status in WITHDRAWING_STATUSES and req.approval_expires_at is not None,
        "can_cancel": req.status in CANCELLABLE_STATUSES and permissions.can_cancel(user, req),
        "approval_window": duration_text(PolicyRules.from_snapshot(req.policy_snapshot or {}).approval_ttl_seconds),
    }


def duration_text(seconds: int) -> str:
    """2 hours, 90 minutes, 1 day."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
