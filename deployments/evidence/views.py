"""Evidence pages: one change's story (page, JSON, PDF), the changes of a period with who authorized
them, evidence samples and their bundles, and the after-the-fact review of emergency changes.

Reads go through the permission layer (a request outside the reader's scope is a 404, as on the
request page); the story, samples and the period list are for auditors and administrators (403
otherwise: the story names approvers' addresses and every refusal). The emergency review pages are
for the approvers who review.
Every export is recorded as a ``ReportExport`` before it is produced.
"""

from __future__ import annotations

import tempfile

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from compliance.errors import RuleViolation
from compliance.people.roles import oversees_everything
from compliance.reports.models import ExportFormat
from compliance.reports.registry import Filters
from compliance.reports.services import record_export
from deployments.evidence import exports, selectors, services
from deployments.evidence.forms import EmergencyReviewForm, FailedChangeForm, PeriodForm, SampleForm
from deployments.evidence.story import change_story
from deployments.gate import selectors as gate_selectors
from deployments.models import EmergencyReview, Execution, FailedChangeFlag
from portal.client import client_ip

STORY_REPORT = "change-story"
SAMPLE_REPORT = "evidence-sample"
LIST_LIMIT = 500



def _require_overseer(user) -> None:
    if not oversees_everything(user):
        raise PermissionDenied("Evidence pages are for auditors and administrators.")


def _attachment(response: HttpResponse, name: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_safe
@login_required
def story(request, pk: int, fmt: str = "html"):
    """One change's whole story, as a page or as a JSON or PDF download."""
    if fmt not in ("html", "json", "pdf"):
        raise Http404("Unknown export format.")
    req = gate_selectors.request_for(user=request.user, pk=pk)  # outside the reader's scope: 404
    _require_overseer(request.user)
    data = change_story(req)
    record_export(actor=request.user, report=STORY_REPORT, fmt=fmt if fmt != "html" else ExportFormat.HTML,
                  filters=Filters(), ip_address=client_ip(request))
    if fmt == "json":
        response = HttpResponse(exports.story_json(data), content_type="application/json")
        return _attachment(response, f"change-{req.pk}.json")
    if fmt == "pdf":
        response = HttpResponse(exports.story_pdf(data, generated_by=request.user.get_username()),
                                content_type="application/pdf")
        return _attachment(response, f"change-{req.pk}.pdf")
    return render(request, "evidence/story.html", {"story": data, "req": req})


@require_safe
@login_required
def changes(request):
    """What went where in a period and who authorized each change: "show me October 15th"."""
    _require_overseer(request.user)
    today = timezone.localdate()
    form = PeriodForm(request.GET or {"date_from": today, "date_to": today})
    rows, truncated = None, False
    if form.is_valid():
        data = form.cleaned_data
        fetched = list(selectors.changes_in_period(
            user=request.user, date_from=data["date_from"], date_to=data["date_to"], service=data["service"],
            environment=data["environment"], emergency_only=data["emergency_only"],
        )[: LIST_LIMIT + 1])
        rows, truncated = fetched[:LIST_LIMIT], len(fetched) > LIST_LIMIT
    return render(request, "evidence/changes.html", {"form": form, "rows": rows, "truncated": truncated,
                                                     "limit": LIST_LIMIT}, status=200 if form.is_valid() else 400)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def samples(request):
    """Draw a sample (POST) or list the samples drawn so far."""
    _require_overseer(request.user)
    form = SampleForm(request.POST or None)
    error, status = "", 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                sample = services.draw_sample(
                    actor=request.user, date_from=data["date_from"], date_to=data["date_to"], size=data["size"],
                    service=data["service"], environment=data["environment"],
                    emergency_only=data["emergency_only"], seed=data["seed"] or None, ip_address=client_ip(request),
                )
            except RuleViolation as exc:
                error, status = exc.message, exc.status_code
            else:
                messages.success(request, f"Sample #{sample.pk} drawn: {len(sample.request_ids)} changes.")
                return redirect("deployments:sample_detail", pk=sample.pk)
        else:
            status = 400
    listed = selectors.samples(user=request.user)[:100]
    return render(request, "evidence/samples.html", {"form": form, "samples": listed, "error": error}, status=status)


@require_safe
@login_required
def sample_detail(request, pk: int):
    _require_overseer(request.user)
    sample = get_object_or_404(selectors.samples(user=request.user), pk=pk)
    rows = selectors.changes_in_period(user=request.user, date_from=sample.date_from, date_to=sample.date_to).filter(
        pk__in=sample.request_ids
    )
    return render(request, "evidence/sample_detail.html", {"sample": sample, "rows": rows})


@require_safe
@login_required
def sample_bundle(request, pk: int):
    """The sample's evidence as one signed ZIP (per-change JSON and PDF, manifest, chain checkpoint)."""
    _require_overseer(request.user)
    sample = get_object_or_404(selectors.samples(user=request.user), pk=pk)
    record_export(actor=request.user, report=SAMPLE_REPORT, fmt=ExportFormat.ZIP,
                  filters=Filters(sample.date_from, sample.date_to, sample.service, sample.environment),
                  ip_address=client_ip(request))
    target = tempfile.TemporaryFile(prefix="portal-sample-")  # noqa: SIM115  (closed by FileResponse)
    exports.write_sample_bundle(target, sample=sample, generated_by=request.user.get_username())
    target.seek(0)
    return _attachment(FileResponse(target, content_type="application/zip"), f"evidence-sample-{sample.pk}.zip")


@require_safe
@login_required
def emergency_reviews(request):
    """Approved emergency changes and their review: done (on time or late), due, or overdue."""
    now = timezone.now()
    rows = []
    for req in selectors.emergency_changes_for(user=request.user)[:LIST_LIMIT]:
        review = getattr(req, "emergency_review", None)
        due = services.review_due_at(req)
        state = "reviewed" if review and review.on_time else "late" if review else (
            "overdue" if due and due <= now else "due")
        rows.append({"req": req, "review": review, "due": due, "state": state})
    return render(request, "evidence/emergency_reviews.html",
                  {"rows": rows, "hours": services.review_hours()})


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def emergency_review(request, pk: int):
    """Review an emergency change after the fact (an approver who did not decide on it)."""
    req = gate_selectors.request_for(user=request.user, pk=pk)
    form = EmergencyReviewForm(request.POST or None)
    refusal = services.review_refusal(user=request.user, request=req)
    error, status = (refusal.message if refusal else ""), 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.review_emergency_change(
                    actor=request.user, request=req, outcome=form.cleaned_data["outcome"],
                    notes=form.cleaned_data["notes"], ip_address=client_ip(request),
                )
            except RuleViolation as exc:
                error, status = exc.message, exc.status_code
            else:
                messages.success(request, f"Review of emergency change #{req.pk} recorded.")
                return redirect("deployments:change_story", pk=req.pk)
        else:
            status = 400
    review = EmergencyReview.objects.filter(request=req).select_related("reviewer").first()
    return render(request, "evidence/emergency_review.html", {
        "req": req, "form": form, "error": error, "can_review": refusal is None, "review": review,
        "due": services.review_due_at(req),
    }, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def failed_change(request, pk: int):
    """Flag a deployment as a failed change (administrators and approvers of its environment); lists the
    flags already recorded. ``?execution=<id>`` picks one of the request's executions (the admin's
    action links here); by default the request's latest successful one."""
    req = gate_selectors.request_for(user=request.user, pk=pk)
    executions = Execution.objects.filter(request=req).select_related("environment")
    chosen = request.GET.get("execution", "")
    if chosen:
        execution = executions.filter(pk=int(chosen) if chosen.isdigit() else 0).first()
        if execution is None:
            raise Http404("No such execution of this request.")
    else:
        execution = executions.filter(status="success").order_by("-started_at", "-id").first()
    form = FailedChangeForm(request.POST or None)
    refusal = services.flag_refusal(user=request.user, execution=execution) if execution else None
    error, status = (refusal.message if refusal else ""), 200
    if execution is None:
        error = "This request has no successful deployment to flag."
    if request.method == "POST":
        if execution is None:
            status = 400
        elif form.is_valid():
            try:
                services.flag_failed_change(actor=request.user, execution=execution,
                                            reason=form.cleaned_data["reason"], ip_address=client_ip(request))
            except RuleViolation as exc:
                error, status = exc.message, exc.status_code
            else:
                messages.success(request, f"Deployment #{req.pk} flagged as a failed change.")
                return redirect("deployments:request_detail", pk=req.pk)
        else:
            status = 400
    flags = FailedChangeFlag.objects.filter(request=req).select_related("flagged_by")
    return render(request, "evidence/failed_change.html", {
        "req": req, "execution": execution, "form": form, "error": error, "flags": flags,
        "can_flag": execution is not None and refusal is None,
    }, status=status)
