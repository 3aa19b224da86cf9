"""The monitoring pages: administrators and auditors read; only administrators act.

Anyone else signed in gets 403; anonymous visitors are sent to sign in.
"""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from ..audit.models import AuditReview
from ..audit.reviews import record_audit_review, review_status
from ..errors import RuleViolation
from ..violations.models import ViolationStatus
from ..violations.selectors import next_statuses
from ..violations.selectors import violation_detail as find_violation
from ..violations.selectors import violation_list as find_violations
from ..violations.services import transition_violation
from . import panels as monitoring


def _require_monitor(user) -> None:
    if not monitoring.can_monitor(user):
        raise PermissionDenied("Only administrators and auditors see the monitoring pages.")


@login_required
def index(request):
    _require_monitor(request.user)
    return render(request, "monitoring/index.html", {"panels": monitoring.rendered_panels(user=request.user)})


@login_required
def violation_list(request):
    _require_monitor(request.user)
    status = request.GET.get("status", "")
    return render(request, "monitoring/violation_list.html", {
        "violations": find_violations(status=status), "status": status, "statuses": ViolationStatus.choices,
    })


@login_required
@require_http_methods(["GET", "POST"])
def violation_detail(request, pk: int):
    _require_monitor(request.user)
    violation = find_violation(pk=pk)
    can_handle = monitoring.can_handle_violations(request.user)
    if request.method == "POST":
        if not can_handle:
            raise PermissionDenied("Only administrators handle violations.")
        try:
            transition_violation(
                actor=request.user, violation=violation,
                to_status=request.POST.get("to_status", ""), notes=request.POST.get("notes", ""),
            )
        except RuleViolation as exc:
            messages.error(request, exc.message)
            return render(request, "monitoring/violation_detail.html", {
                "violation": violation, "can_handle": can_handle, "next_statuses": next_statuses(violation),
                "notes": request.POST.get("notes", ""),
            }, status=exc.status_code)
        messages.success(request, "The violation was updated.")
        return redirect("monitoring:violation_detail", pk=violation.pk)
    return render(request, "monitoring/violation_detail.html", {
        "violation": violation, "can_handle": can_handle, "next_statuses": next_statuses(violation),
    })


def _parse_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@login_required
@require_http_methods(["GET", "POST"])
def audit_reviews(request):
    _require_monitor(request.user)
    can_record = monitoring.can_handle_violations(request.user)
    form = {}
    status_code = 200
    if request.method == "POST":
        if not can_record:
            raise PermissionDenied("Only administrators sign off audit-log reviews.")
        form = request.POST
        start, end = _parse_date(form.get("period_start")), _parse_date(form.get("period_end"))
        if start is None or end is None:
            messages.error(request, "Give the review period as two dates (YYYY-MM-DD).")
            status_code = 400
        else:
            try:
                record_audit_review(
                    actor=request.user, period_start=start, period_end=end,
                    scope=form.get("scope", ""), findings=form.get("findings", ""),
                )
            except RuleViolation as exc:
                messages.error(request, exc.message)
                status_code = exc.status_code
            else:
                messages.success(request, "Your review was signed off.")
                return redirect("monitoring:audit_reviews")
    return render(request, "monitoring/audit_reviews.html", {
        "reviews": AuditReview.objects.select_related("signed_off_by")[:100],
        "status": review_status(), "can_record": can_record, "form": form,
        "today": timezone.localdate(),
    }, status=status_code)
