"""What the rules are given about a request: its facts (people, change authors, checks, votes) and
verdict, whether its authors are known, which checks a person reported, and a freeze in force.
Reads only; the pure rules are in ``policy``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from compliance.people.identity import identities_of
from deployments.gate import policy
from deployments.models import Approval, DeploymentRequest, Environment, FreezeWindow


def change_authors_known(request: DeploymentRequest) -> bool:
    """Whether the change's authors were determined: a change always has at least one author, so an
    empty list (or a change set that could not be fetched) means nobody knows who wrote it."""
    return bool(request.change_authors) and not (request.change_set or {}).get("error")


def untrusted_checks(request: DeploymentRequest) -> frozenset[str]:
    """Checks whose latest result was reported by a person rather than a CI service account or an
    integration (results recorded before provenance was kept count as untrusted)."""
    provenance = request.check_provenance or {}
    return frozenset(
        name for name in (request.checks or {}) if not (provenance.get(name) or {}).get("service_account")
    )


def facts_for(request: DeploymentRequest, approvals: Iterable[Approval] | None = None) -> policy.RequestFacts:
    if approvals is None:
        approvals = request.approvals.all()
    requester = request.requester
    return policy.RequestFacts(
        rules=policy.PolicyRules.from_snapshot(request.policy_snapshot),
        requester=policy.Person(requester.pk, identities_of(requester)) if requester else None,
        change_authors=frozenset(a.lower() for a in request.change_authors or ()),
        checks=request.check_states,
        votes=tuple(policy.Vote(a.approver_id, a.decision) for a in approvals),
        is_emergency=request.is_emergency,
        during_freeze=request.during_freeze,
        requester_login=request.requester_login,
        change_authors_known=change_authors_known(request),
        untrusted_checks=untrusted_checks(request),
    )


def verdict_for(request: DeploymentRequest, approvals: Iterable[Approval] | None = None) -> policy.Verdict:
    return policy.evaluate(facts_for(request, approvals))


def environment_in_freeze(environment: Environment, now: datetime) -> FreezeWindow | None:
    return FreezeWindow.objects.filter(environment=environment, starts_at__lte=now, ends_at__gt=now).first()
