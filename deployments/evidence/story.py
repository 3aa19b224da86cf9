"""One change, its whole story: everything the portal holds about one deployment request, gathered
for an auditor in one structure (shown as a page, exported as JSON and PDF, bundled into samples).

``change_story(request)`` reads, in a fixed number of queries: the request (who, when, from where),
its change record (ticket, risk, impact, rollback plan) and reason, the change set (commits, authors,
pull requests with their reviewers where the CI integration recorded them), the checks with who
reported them, each decision with its comment, checklist, policy version and hash (and any
authentication evidence the decision carries), the policy snapshot, the deliveries to CI, the
executions and whether the deployed sha matched, the violations and their handling, the emergency
review, the refusals and the timeline, and the audit-chain links that cover the chained rows (with
the latest signed checkpoint that anchors them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from compliance.audit import checkpoints
from compliance.audit.models import ChainLink
from compliance.violations.models import Violation
from deployments.evidence.services import review_due_at
from deployments.gate import policy
from deployments.gate.facts import verdict_for
from deployments.models import (
    Approval,
    DecisionDelivery,
    DeploymentRequest,
    EmergencyReview,
    Execution,
    FailedChangeFlag,
    Refusal,
    RequestEvent,
)
from portal.links import absolute_url

STORY_FORMAT = "deployment-change-story/1"
# Decision fields that carry how the approver proved who they were (added by the authentication work).
AUTHENTICATION_FIELD_PREFIXES = ("auth", "reauth", "mfa")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _user(user) -> str | None:
    return user.username if user is not None else None


def _authentication(approval: Approval) -> dict[str, Any]:
    out = {}
    for model_field in approval._meta.concrete_fields:
        if model_field.name.startswith(AUTHENTICATION_FIELD_PREFIXES):
            value = getattr(approval, model_field.attname)
            out[model_field.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _change_set(request: DeploymentRequest) -> dict[str, Any]:
    raw = request.change_set if isinstance(request.change_set, dict) else {}
    commits = [c for c in raw.get("commits") or [] if isinstance(c, dict)]
    pulls = [p for p in raw.get("pull_requests") or [] if isinstance(p, dict)]
    # GitLab's merge requests, in the same shape (``iid`` is the number people use).
    pulls += [{**m, "number": m.get("iid")} for m in raw.get("merge_requests") or [] if isinstance(m, dict)]
    return {
        "base": raw.get("base"),
        "head": raw.get("head"),
        "compare_url": raw.get("compare_url", ""),
        "files_changed": raw.get("files_changed"),
        "additions": raw.get("additions"),
        "deletions": raw.get("deletions"),
        "fetched_at": raw.get("fetched_at"),
        "first_commit_at": raw.get("first_commit_at"),
        "error": raw.get("error"),
        "authors": list(request.change_authors or []),
        "commits": [
            {"sha": str(c.get("sha", "")), "author": str(c.get("author", "")), "message": str(c.get("message", "")),
             "url": str(c.get("url", ""))}
            for c in commits
        ],
        "pull_requests": [
            {"number": p.get("number"), "title": str(p.get("title", "")), "url": str(p.get("url", "")),
             "author": str(p.get("author", "")),
             "reviewers": [r for r in p.get("reviewers") or [] if isinstance(r, (str, dict))]}
            for p in pulls
        ],
    }


def _checks(request: DeploymentRequest) -> list[dict[str, Any]]:
    required = list((request.policy_snapshot or {}).get("required_checks", []))
    states = request.check_states
    provenance = request.check_provenance or {}
    names = required + sorted(name for name in states if name not in required)
    rows = []
    for name in names:
        origin = provenance.get(name) or {}
        rows.append({
            "name": name, "state": states.get(name, "missing"), "required": name in required,
            "reported_by": origin.get("by") or None, "reported_by_ci": bool(origin.get("service_account")),
            "reported_at": origin.get("at"),
        })
    return rows


def _chain(labelled_ids: dict[str, list[int]]) -> dict[str, Any]:
    """The chain links of the chained rows named (label → ids), and the checkpoint that anchors them."""
    condition = Q(pk__in=[])
    for label, ids in labelled_ids.items():
        if ids:
            condition |= Q(model_label=label, object_id__in=ids)
    links = list(ChainLink.objects.filter(condition).order_by("seq"))
    linked = {(link.model_label, link.object_id) for link in links}
    unsealed = [{"model": label, "id": pk} for label, ids in labelled_ids.items() for pk in ids
                if (label, pk) not in linked]
    anchor = checkpoints.latest()
    covered = bool(links) and anchor is not None and anchor.seq >= links[-1].seq
    return {
        "links": [
            {"seq": link.seq, "model": link.model_label, "id": link.object_id, "row_digest": link.row_digest,
             "entry_hash": link.entry_hash, "public_hash": link.public_hash, "prev_hash": link.prev_hash,
             "key_id": link.key_id, "sealed_at": _iso(link.sealed_at)}
            for link in links
        ],
        "not_yet_sealed": unsealed,
        "checkpoint": anchor.as_dict() if covered else None,
        "checkpoint_covers_links": covered,
    }


def change_story(request: DeploymentRequest) -> dict[str, Any]:
    """The whole story of ``request`` as plain JSON-ready data (see the module docstring)."""
    request = (
        DeploymentRequest.objects.select_related("environment__service", "requester", "superseded_by")
        .get(pk=request.pk)
    )
    approvals = list(Approval.objects.filter(request=request).select_related("approver").order_by("created_at", "id"))
    events = list(RequestEvent.objects.filter(request=request).select_related("actor").order_by("created_at", "id"))
    refusals = list(Refusal.objects.filter(request=request).select_related("actor").order_by("created_at", "id"))
    executions = list(
        Execution.objects.filter(request=request).select_related("reported_by").order_by("created_at", "id")
    )
    deliveries = list(DecisionDelivery.objects.filter(request=request).order_by("created_at", "id"))
    violations = list(
        Violation.objects.filter(
            Q(evidence__request__id=request.pk)
            | Q(dedup_key__in=[f"emergency-review-missed:{request.pk}",
                               *(f"approval:{a.pk}" for a in approvals)])
        ).select_related("owner").prefetch_related("events__actor").order_by("detected_at", "id")
    )
    review = EmergencyReview.objects.filter(request=request).select_related("reviewer").first()
    flags = list(
        FailedChangeFlag.objects.filter(request=request).select_related("flagged_by").order_by("created_at", "id")
    )
    snapshot = request.policy_snapshot or {}
    verdict = verdict_for(request, approvals)
    environment = request.environment
    due = review_due_at(request)
    chained = {
        Approval._meta.label_lower: [a.pk for a in approvals],
        RequestEvent._meta.label_lower: [e.pk for e in events],
        Refusal._meta.label_lower: [r.pk for r in refusals],
        EmergencyReview._meta.label_lower: [review.pk] if review else [],
        FailedChangeFlag._meta.label_lower: [f.pk for f in flags],
    }
    return {
        "format": STORY_FORMAT,
        "request": {
            "id": request.pk,
            "url": absolute_url("deployments:request_detail", request.pk),
            "service": environment.service.name,
            "environment": environment.name,
            "tier": environment.tier,
            "sha": request.sha,
            "ref": request.ref,
            "title": request.title,
            "requester": _user(request.requester),
            "requester_login": request.requester_login,
            "source": request.source,
            "source_url": request.source_url,
            "ip_address": request.ip_address,
            "external_ids": request.external_ids,
            "created_at": _iso(request.created_at),
            "status": request.status,
            "status_reason": request.status_reason,
            "decided_at": _iso(request.decided_at),
            "finished_at": _iso(request.finished_at),
            "superseded_by": request.superseded_by_id,
            "flagged_for_review": request.flagged_for_review,
        },
        "change_record": {
            "ticket": request.ticket,
            "ticket_url": request.ticket_url,
            "risk_level": request.risk_level,
            "impact": request.impact,
            "rollback_plan": request.rollback_plan,
            "reason": request.title,
            "is_emergency": request.is_emergency,
            "emergency_justification": request.emergency_justification,
            "during_freeze": request.during_freeze,
        },
        "change_set": _change_set(request),
        "checks": _checks(request),
        "policy": {"version": snapshot.get("version", 1), "sha256": policy.snapshot_sha256(snapshot),
                   "snapshot": snapshot},
        "verdict": {"outcome": verdict.outcome, "reasons": list(verdict.reasons),
                    "approvals": verdict.approvals, "approvals_required": verdict.approvals_required},
        "decisions": [
            {"id": a.pk, "approver": a.approver.username, "decision": a.decision, "comment": a.comment,
             "checklist": a.checklist, "policy_version": a.policy_version, "policy_sha256": a.policy_sha256,
             "policy_acknowledged": a.policy_acknowledged, "at": _iso(a.created_at), "ip_address": a.ip_address,
             "authentication": _authentication(a)}
            for a in approvals
        ],
        "deliveries": [
            {"id": d.pk, "provider": d.provider, "decision": d.decision, "status": d.status, "attempts": d.attempts,
             "last_status_code": d.last_status_code, "created_at": _iso(d.created_at),
             "delivered_at": _iso(d.delivered_at), "failed_at": _iso(d.failed_at)}
            for d in deliveries
        ],
        "executions": [
            {"id": x.pk, "sha": x.sha, "sha_matches": x.sha == request.sha, "status": x.status,
             "authorized": x.authorized, "flag_reason": x.flag_reason, "external_id": x.external_id, "url": x.url,
             "reported_by": _user(x.reported_by), "started_at": _iso(x.started_at), "recorded_at": _iso(x.created_at)}
            for x in executions
        ],
        "violations": [
            {"id": v.pk, "kind": v.kind, "severity": v.severity, "title": v.title, "status": v.status,
             "detected_at": _iso(v.detected_at), "owner": _user(v.owner), "closed_at": _iso(v.closed_at),
             "resolution_notes": v.resolution_notes,
             "handling": [{"kind": e.kind, "from": e.from_status, "to": e.to_status, "by": _user(e.actor),
                           "notes": e.notes, "at": _iso(e.created_at)} for e in v.events.all()]}
            for v in violations
        ],
        "emergency_review": None if not request.is_emergency else {
            "due_at": _iso(due),
            "review": None if review is None else {
                "reviewer": review.reviewer.username, "outcome": review.outcome, "notes": review.notes,
                "at": _iso(review.created_at), "on_time": review.on_time,
            },
        },
        "failed_change": {
            "failed_change_at": _iso(request.failed_change_at),
            "rolled_back_by": request.rolled_back_by_id,
            "flags": [{"id": f.pk, "execution": f.execution_id, "by": _user(f.flagged_by), "reason": f.reason,
                       "at": _iso(f.created_at), "ip_address": f.ip_address} for f in flags],
        },
        "refusals": [
            {"id": r.pk, "action": r.action, "code": r.code, "message": r.message, "by": _user(r.actor),
             "at": _iso(r.created_at), "ip_address": r.ip_address}
            for r in refusals
        ],
        "timeline": [
            {"id": e.pk, "kind": e.kind, "by": _user(e.actor), "message": e.message, "at": _iso(e.created_at)}
            for e in events
        ],
        "audit_chain": _chain(chained),
    }
