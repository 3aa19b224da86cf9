"""The dashboard: approver queue, my requests, recent decisions, the request page and its decision form.

Views read through ``selectors`` (the permission layer: anything out of scope is a 404) and write
through ``services`` (which re-check every rule and raise ``RuleViolation``). Lists run a constant
number of queries: approvals are prefetched and the policy progress is computed in Python.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from compliance.errors import RuleViolation
from compliance.people.roles import Role, administers, has_role
from deployments.choices import Decision, RequestStatus
from deployments.gate import eligibility, permissions, policy, selectors, services
from deployments.web import step_up
from deployments.web.forms import DecisionForm
from deployments.web.requests import next_steps
from portal.client import client_ip

PAGE_SIZE = 25
QUEUE_STATUS_CHOICES = [
    ("", "Awaiting approval"),
    (RequestStatus.PENDING_CHECKS.value, "Waiting for checks"),
    ("open", "All open"),
]



def _with_progress(requests) -> list:
    """Attach the policy verdict to each request (approvals are prefetched: no query per row)."""
    rows = list(requests)
    for row in rows:
        row.verdict = services.verdict_for(row, row.approvals.all())
    return rows


class Window:
    """A page of a list without ``COUNT(*)`` (which grows with the table and repeats the list's query):
    one row more than shown is fetched to know whether there is a next page."""

    def __init__(self, queryset, number: str | None, size: int = PAGE_SIZE) -> None:
        self.number = int(number) if (number or "").isdigit() and int(number) > 0 else 1
        rows = list(queryset[(self.number - 1) * size: self.number * size + 1])
        self.object_list = rows[:size]
        self.has_next = len(rows) > size
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1


def _is_refresh(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _list_page(request, *, template: str, partial: str, queryset, filters, extra, rows=_with_progress):
    """Render a filtered list page by page, or only its results partial for an htmx refresh (which
    needs neither the filter form's choices nor the page around it)."""
    page = Window(queryset, request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "rows": rows(page.object_list),
        "filters": filters,
        "query": query.urlencode(),
        "partial": partial,
        **({} if _is_refresh(request) else extra()),
    }
    response = render(request, partial if _is_refresh(request) else template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _filter_choices(user, action, status_choices) -> dict:
    environments = selectors.filter_environments(user=user, action=action)
    return {
        "environments": environments,
        "services": sorted({service for _, service, _ in environments}),
        "status_choices": status_choices,
    }


@require_GET
@login_required
def queue(request):
    """Requests awaiting the signed-in approver's decision across every environment they may approve."""
    if not has_role(request.user, Role.APPROVER):
        raise PermissionDenied("Only deployment approvers have an approval queue.")
    filters = selectors.ListFilters.from_query(request.GET)
    return _list_page(
        request,
        template="deployments/queue.html",
        partial="deployments/_queue_results.html",
        queryset=selectors.approver_queue(user=request.user, filters=filters),
        filters=filters,
        extra=lambda: {
            **_filter_choices(request.user, permissions.APPROVE, QUEUE_STATUS_CHOICES),
            "not_yours": selectors.requests_not_yours_to_decide(user=request.user),
        },
    )


@require_GET
@login_required
def my_requests(request):
    """The engineer's own requests, newest first."""
    if not has_role(request.user, Role.ENGINEER):
        raise PermissionDenied("Only engineers request deployments.")
    filters = selectors.ListFilters.from_query(request.GET)
    return _list_page(
        request,
        template="deployments/my_requests.html",
        partial="deployments/_my_requests_results.html",
        queryset=selectors.my_request_list(user=request.user, filters=filters),
        filters=filters,
        extra=lambda: _filter_choices(
            request.user, permissions.REQUEST, [("", "Any status"), ("open", "Open"), *RequestStatus.choices]
        ),
    )


@require_GET
@login_required
def decisions(request):
    """Recent decisions on every request the signed-in person may see."""
    filters = selectors.ListFilters.from_query(request.GET)
    return _list_page(
        request,
        template="deployments/decisions.html",
        partial="deployments/_decisions_results.html",
        queryset=selectors.recent_decisions(user=request.user, filters=filters),
        filters=filters,
        rows=list,
        extra=lambda: _filter_choices(request.user, None, [("", "Any decision"), *Decision.choices]),
    )


# --- the request page ---------------------------------------------------------------------------


def _decision_state(user, req) -> dict:
    """Which decisions the form offers (``eligibility``: approve, reject or both), and when neither
    is possible, why (only to people who approve here)."""
    if not permissions.can_act(user, permissions.APPROVE, req.environment):
        return {"show_form": False, "why_not": ""}
    if req.status == RequestStatus.PENDING_CHECKS:
        return {"show_form": False, "why_not": "The request can be decided once its required checks pass."}
    if req.status != RequestStatus.AWAITING_APPROVAL:
        return {"show_form": False, "why_not": ""}
    approvals, standing = req.approvals.all(), eligibility.standing_of(user)
    refusals = {
        decision: eligibility.decision_refusal(
            user=user, request=req, decision=decision, approvals=approvals, standing=standing, now=standing.at
        )
        for decision in (Decision.APPROVE, Decision.REJECT)
    }
    if all(refusals.values()):
        return {"show_form": False, "why_not": refusals[Decision.APPROVE].message}
    approve_refusal = refusals[Decision.APPROVE]
    return {
        "show_form": True,
        "can_approve": approve_refusal is None,
        "can_reject": refusals[Decision.REJECT] is None,
        "why_not": approve_refusal.message if approve_refusal else "",
    }


def _checks(req) -> list[tuple[str, str, bool, str]]:
    """(name, state, required, reported by) for every required check (missing ones as "not reported")
    and the rest; "reported by" names the account and whether it is CI or a person."""
    states = req.check_states
    provenance = req.check_provenance or {}

    def by(name: str) -> str:
        origin = provenance.get(name) or {}
        if not origin.get("by"):
            return ""
        return f"{origin['by']} ({'CI' if origin.get('service_account') else 'a person'})"

    required = list(req.policy_snapshot.get("required_checks", []))
    rows = [(name, states.get(name, "missing"), True, by(name)) for name in required]
    rows += [(name, state, False, by(name)) for name, state in sorted(states.items()) if name not in required]
    return rows


CHANGE_SET_TEXT = ("base", "head", "compare_url")
CHANGE_SET_NUMBERS = ("files_changed", "additions", "deletions")


def _change_set(raw) -> dict:
    """The request's change set reduced to the documented shape (see README "Dashboard"): CI data is
    untrusted, so anything of the wrong type is left out rather than breaking the page."""
    if not isinstance(raw, dict):
        return {}
    out: dict = {key: str(raw[key]) for key in CHANGE_SET_TEXT if isinstance(raw.get(key), str) and raw[key]}
    out.update({key: raw[key] for key in CHANGE_SET_NUMBERS
                if isinstance(raw.get(key), int) and not isinstance(raw[key], bool)})
    for key in ("commits", "pull_requests"):
        items = raw.get(key)
        if isinstance(items, list):
            out[key] = [item for item in items if isinstance(item, dict)][:500]
    return out


def _render_request(request, req, *, status: int = 200, error: str = "", form=None, form_data=None):
    verdict = services.verdict_for(req, req.approvals.all())
    snapshot = req.policy_snapshot or {}
    context = {
        "req": req,
        "verdict": verdict,
        "checks": _checks(req),
        "change_set": _change_set(req.change_set),
        "last_deployment": selectors.last_successful_deployment(req),
        "checklist": list(snapshot.get("impact_checklist", [])),
        "policy_version": snapshot.get("version", 1),
        "policy_sha256": policy.snapshot_sha256(snapshot),
        "error": error,
        "form_errors": form.errors if form is not None else {},
        "form_data": form_data or {},
        "ticked": set(form_data.getlist("checklist")) if form_data is not None else set(),
        "next": next_steps(request.user, req, verdict),
        # The status reason is the verdict's reasons joined (shown as bullets already) unless the
        # request ended otherwise (cancelled, superseded, expired): then it says how.
        "extra_reason": "" if req.status_reason in (" ".join(verdict.reasons), *verdict.reasons) else req.status_reason,
        **_decision_state(request.user, req),
        **step_up.context(request, req),
        "flags": req.failed_change_flags.select_related("flagged_by"),
        "may_flag_failed_change": req.status == RequestStatus.DEPLOYED and (
            administers(request.user) or permissions.can_act(request.user, permissions.APPROVE, req.environment)),
    }
    if not context["show_form"]:
        # Decided, or not for this person to decide: one click on to the next request waiting for them.
        context["next_request"] = _next_in_queue(request.user, after=req.pk)
    return render(request, "deployments/request_detail.html", context, status=status)


@require_GET
@login_required
def request_detail(request, pk: int):
    return _render_request(request, selectors.request_for(user=request.user, pk=pk))


def _next_in_queue(user, after: int):
    """The oldest other request waiting for this approver's decision (offered after a decision)."""
    if not has_role(user, Role.APPROVER):
        return None
    return selectors.next_request_awaiting(user=user, exclude_pk=after)


@require_POST
@login_required
def decide(request, pk: int):
    """Approve or reject (POST-redirect-GET). The form reports every typing mistake at once and records
    none of them; the services then refuse whatever the rules forbid, and record that."""
    req = selectors.request_for(user=request.user, pk=pk)
    snapshot = req.policy_snapshot or {}
    form = DecisionForm(
        request.POST, checklist_items=snapshot.get("impact_checklist", []), policy_version=snapshot.get("version", 1)
    )
    if not form.is_valid():
        return _render_request(request, req, status=400, form=form, form_data=request.POST)
    decision = form.cleaned_data["decision"]
    service = services.approve_request if decision == Decision.APPROVE else services.reject_request
    try:
        service(actor=request.user, request=req, comment=form.cleaned_data["comment"], checklist=form.answers(),
                ip_address=client_ip(request), policy_acknowledged=True,
                authentication=step_up.authentication_of(request))
    except RuleViolation as exc:
        if exc.code == "reauthentication_required":  # the policy's step-up window (deployments/web/step_up.py)
            return step_up.ask_for_reauthentication(request, req, exc)
        req = selectors.request_for(user=request.user, pk=pk)
        return _render_request(request, req, status=exc.status_code, error=exc.message, form_data=request.POST)
    verb = "approved" if decision == Decision.APPROVE else "rejected"
    messages.success(request, f"You {verb} request #{req.pk}.")
    return redirect("deployments:request_detail", pk=req.pk)
