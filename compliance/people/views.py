"""The administrators' pages for privileged access: pending access changes (approve or reject with a
reason) and access reviews (start, confirm or revoke each holder, sign off). Administrators and
auditors read; only administrators act, and the services check every rule again."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..errors import RuleViolation
from . import access_changes, access_reviews
from .access_models import AccessChange, AccessReview, AccessReviewItem, AccessReviewStatus
from .roles import administers, oversees_everything


def _require_reader(user) -> None:
    if not oversees_everything(user):
        raise PermissionDenied("Only administrators and auditors see privileged access.")


def _changes_page(request, *, status: int = 200):
    return render(request, "compliance/access_changes.html", {
        "pending": list(access_changes.pending_changes()),
        "recent": list(access_changes.recent_changes()),
        "can_decide": administers(request.user),
    }, status=status)


@login_required
def changes(request):
    _require_reader(request.user)
    return _changes_page(request)


@login_required
@require_POST
def decide_change(request, pk: int):
    # Anyone signed in reaches the service, which refuses (and records) whoever may not decide.
    change = get_object_or_404(AccessChange, pk=pk)
    decision = request.POST.get("decision", "")
    service = {"approve": access_changes.approve_access_change, "reject": access_changes.reject_access_change}
    if decision not in service:
        if not oversees_everything(request.user):
            raise PermissionDenied("Only administrators decide access changes.")
        messages.error(request, "Choose approve or reject.")
        return _changes_page(request, status=400)
    try:
        service[decision](actor=request.user, change=change, reason=request.POST.get("reason", ""))
    except RuleViolation as exc:
        if not oversees_everything(request.user):
            raise PermissionDenied(exc.message) from None
        messages.error(request, exc.message)
        return _changes_page(request, status=exc.status_code)
    outcome = "approved: it is in effect" if decision == "approve" else "rejected"
    messages.success(request, f"Access change #{change.pk} {outcome}.")
    return redirect("compliance:access_changes")


def _reviews_page(request, *, status: int = 200):
    current = AccessReview.objects.filter(status=AccessReviewStatus.OPEN).first()
    items = list(current.items.select_related("subject", "grantee_group", "decided_by")) if current else []
    return render(request, "compliance/access_reviews.html", {
        "status": access_reviews.access_review_status(),
        "current": current,
        "items": items,
        "undecided": sum(item.decision == "pending" for item in items),
        "past": AccessReview.objects.filter(status=AccessReviewStatus.SIGNED_OFF).select_related(
            "signed_off_by", "started_by")[:20],
        "can_act": administers(request.user),
    }, status=status)


@login_required
def reviews(request):
    _require_reader(request.user)
    if request.method == "POST":
        return _review_action(request)
    return _reviews_page(request)


def _review_action(request):
    action = request.POST.get("action", "")
    try:
        if action == "start":
            access_reviews.start_access_review(actor=request.user)
            messages.success(request, "An access review was started: decide each holder below.")
        elif action == "decide":
            item = get_object_or_404(AccessReviewItem, pk=request.POST.get("item") or 0)
            access_reviews.decide_review_item(actor=request.user, item=item, decision=request.POST.get("decision", ""),
                                              reason=request.POST.get("reason", ""))
            messages.success(request, f"{item.privilege} for {item.grantee}: {request.POST.get('decision')}.")
        elif action == "sign_off":
            review = get_object_or_404(AccessReview, pk=request.POST.get("review") or 0)
            access_reviews.sign_off_access_review(actor=request.user, review=review,
                                                  notes=request.POST.get("notes", ""))
            messages.success(request, "The access review was signed off.")
        else:
            messages.error(request, "Unknown action.")
            return _reviews_page(request, status=400)
    except RuleViolation as exc:
        messages.error(request, exc.message)
        return _reviews_page(request, status=exc.status_code)
    return redirect("compliance:access_reviews")
