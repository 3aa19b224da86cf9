"""Pages: the policy, my training, a course with its quiz and attestation, and the compliance matrix."""

from __future__ import annotations

import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..errors import RuleViolation
from ..people.roles import administers
from . import enforcement, rules, selectors, services
from .forms import CourseCompletionForm, ReminderForm

CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@require_GET
@login_required
def policy_current(request):
    policy = selectors.current_policy()
    if policy is None:
        raise Http404("No policy has been published yet.")
    return render(
        request,
        "compliance/policy.html",
        {"policy": policy, "body_html": rules.render_markdown(policy.body, base_url=settings.PORTAL_BASE_URL),
         "versions": selectors.policy_versions()},
    )


@require_GET
@login_required
def my_training(request):
    return render(request, "compliance/my_training.html", selectors.my_training(user=request.user))


@require_http_methods(["GET", "POST"])
@login_required
def course_detail(request, slug: str):
    course = selectors.training_course(slug=slug)
    policy = selectors.current_policy()
    if policy is None:
        raise Http404("No policy has been published yet.")
    statement = services.attestation_statement(user=request.user, course=course, policy=policy)
    form = CourseCompletionForm(request.POST or None, course=course, statement=statement)
    if request.method == "POST" and form.is_valid():
        try:
            services.complete_course(
                actor=request.user,
                course=course,
                answers=form.answers(),
                confirmed=form.cleaned_data["confirm"],
                ip_address=request.META.get("REMOTE_ADDR"),
            )
        except RuleViolation as exc:
            messages.error(request, exc.message)
            status = exc.status_code
        else:
            messages.success(request, f'Thank you: "{course.title}" is attested.')
            return redirect("compliance:my_training")
    else:
        status = 400 if request.method == "POST" else 200
    context = {
        "course": course,
        "policy": policy,
        "content_html": rules.render_markdown(course.content, base_url=settings.PORTAL_BASE_URL),
        "form": form,
    }
    return render(request, "compliance/course.html", context, status=status)


def _matrix_or_403(request):
    try:
        return selectors.training_matrix(user=request.user, status_filter=request.GET.get("status"))
    except PermissionDenied:
        raise PermissionDenied("Only administrators and auditors see the compliance matrix.") from None


@require_GET
@login_required
def matrix(request):
    data = _matrix_or_403(request)
    return render(
        request,
        "compliance/matrix.html",
        {
            **data,
            "filters": selectors.MATRIX_FILTERS,
            "can_remind": administers(request.user),
            "query": request.GET.urlencode(),
        },
    )


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(CSV_FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value):
        return value


def _matrix_rows(data):
    yield [
        "username",
        "name",
        "roles",
        "suspended",
        "course",
        "status",
        "reason",
        "deadline",
        "last attested",
        "policy version",
    ]
    for line in data["lines"]:
        for row in line.rows:
            att = row.attestation
            yield [
                line.user.username,
                line.user.get_full_name(),
                "; ".join(line.roles),
                "yes" if line.suspension else "no",
                row.course.title,
                row.status,
                row.standing.reason,
                row.standing.deadline.isoformat(timespec="seconds"),
                att.attested_at.isoformat(timespec="seconds") if att else "",
                att.policy_version if att else "",
            ]


@require_GET
@login_required
def matrix_csv(request):
    data = _matrix_or_403(request)
    writer = csv.writer(_Echo())
    rows = (writer.writerow([csv_cell(cell) for cell in row]) for row in _matrix_rows(data))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="training-compliance-{stamp}.csv"'
    return response


@require_POST
@login_required
def matrix_remind(request):
    if not administers(request.user):
        raise PermissionDenied("Only administrators send training reminders.")
    people = list(selectors.people_in_scope())
    form = ReminderForm(request.POST, people=people)
    if not form.is_valid():
        messages.error(request, "Choose the people to remind.")
    else:
        chosen = [p for p in people if p.pk in set(form.cleaned_data["user_ids"])]
        try:
            sent = enforcement.send_training_reminders(actor=request.user, users=chosen)
        except RuleViolation as exc:
            raise PermissionDenied(exc.message) from exc
        messages.success(request, f"Reminders sent to {sent} person{'s' if sent != 1 else ''}.")
    back = reverse("compliance:matrix")
    status = request.POST.get("status")
    return redirect(f"{back}?status={status}" if status in selectors.MATRIX_FILTERS else back)
