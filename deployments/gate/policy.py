"""Pure rules: evaluate a deployment request against the policy in force. No database, no I/O.

The dashboard shows these reasons, the services enforce them and unit tests cover them directly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from compliance.errors import RuleViolation
from deployments.choices import PASSING_CHECK_STATES, CheckState, Decision
from deployments.gate.change_record import (  # noqa: F401 (the change record's rules, named from here too)
    DEFAULT_TICKET_PATTERN,
    MAX_TICKET_LENGTH,
    MIN_STATEMENT_LENGTH,
    RISK_LEVELS,
    ChangeRecord,
    find_ticket,
    ticket_matches,
    ticket_url,
    validate_change_record,
)

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
REF_PREFIXES = ("refs/heads/", "refs/tags/")
MIN_JUSTIFICATION_LENGTH = 20
UNVERIFIED_REFUSE = "refuse"
UNVERIFIED_FLAG = "flag"


@dataclass(frozen=True)
class PolicyRules:
    """The parts of an ``ApprovalPolicy`` the rules need (also what is snapshotted on a request)."""

    required_approvals: int = 1
    exclude_change_authors: bool = False
    required_checks: tuple[str, ...] = ()
    allowed_refs: tuple[str, ...] = ()
    request_ttl_seconds: int = 24 * 3600
    approval_ttl_seconds: int = 2 * 3600
    emergency_extra_approvals: int = 1
    impact_checklist: tuple[str, ...] = ()
    version: int = 1
    # What happens when the requester or the change authors cannot be identified: "refuse" approval
    # (production's default) or "flag" — approvals allowed, the request flagged for review.
    unverified_identity: str = "refuse"
    # Required checks count only when a CI service account or an integration reported them.
    trusted_checks_only: bool = False
    # A newer request for the environment withdraws older approvals not yet deploying (otherwise it
    # supersedes only undecided requests, and an approval stands until its time limit).
    newer_request_withdraws_approvals: bool = False
    # The change record a request must carry (ISO 27001 A.8.32, PCI DSS 6.5.1): a ticket reference
    # matching ``ticket_pattern`` (linked with ``ticket_url_template``), a risk level, an impact
    # statement and a rollback plan.
    ticket_required: bool = False
    ticket_pattern: str = DEFAULT_TICKET_PATTERN
    ticket_url_template: str = ""
    risk_level_required: bool = False
    impact_required: bool = False
    rollback_plan_required: bool = False
    # Step-up: decisions only within this many minutes of the approver's MFA (re-)authentication (0: off).
    step_up_minutes: int = 0

    @classmethod
    def from_snapshot(cls, data: Mapping) -> PolicyRules:
        return cls(
            required_approvals=int(data.get("required_approvals", 1)),
            exclude_change_authors=bool(data.get("exclude_change_authors", False)),
            required_checks=tuple(data.get("required_checks", ())),
            allowed_refs=tuple(data.get("allowed_refs", ())),
            request_ttl_seconds=int(data.get("request_ttl_seconds", 24 * 3600)),
            approval_ttl_seconds=int(data.get("approval_ttl_seconds", 2 * 3600)),
            emergency_extra_approvals=int(data.get("emergency_extra_approvals", 1)),
            impact_checklist=tuple(data.get("impact_checklist", ())),
            version=int(data.get("version", 1)),
            # Snapshots taken before these rules existed get the safe reading.
            unverified_identity=str(data.get("unverified_identity", UNVERIFIED_REFUSE)),
            trusted_checks_only=bool(data.get("trusted_checks_only", False)),
            newer_request_withdraws_approvals=bool(data.get("newer_request_withdraws_approvals", False)),
            ticket_required=bool(data.get("ticket_required", False)),
            ticket_pattern=str(data.get("ticket_pattern") or DEFAULT_TICKET_PATTERN),
            ticket_url_template=str(data.get("ticket_url_template", "")),
            risk_level_required=bool(data.get("risk_level_required", False)),
            impact_required=bool(data.get("impact_required", False)),
            rollback_plan_required=bool(data.get("rollback_plan_required", False)),
            step_up_minutes=int(data.get("step_up_minutes", 0)),
        )

    def snapshot(self) -> dict:
        snapshot = {
            "required_approvals": self.required_approvals,
            "exclude_change_authors": self.exclude_change_authors,
            "required_checks": list(self.required_checks),
            "allowed_refs": list(self.allowed_refs),
            "request_ttl_seconds": self.request_ttl_seconds,
            "approval_ttl_seconds": self.approval_ttl_seconds,
            "emergency_extra_approvals": self.emergency_extra_approvals,
            "impact_checklist": list(self.impact_checklist),
            "version": self.version,
            "unverified_identity": self.unverified_identity,
            "trusted_checks_only": self.trusted_checks_only,
            "newer_request_withdraws_approvals": self.newer_request_withdraws_approvals,
            "ticket_required": self.ticket_required,
            "ticket_pattern": self.ticket_pattern,
            "ticket_url_template": self.ticket_url_template,
            "risk_level_required": self.risk_level_required,
            "impact_required": self.impact_required,
            "rollback_plan_required": self.rollback_plan_required,
        }
        if self.step_up_minutes:  # only when on: snapshots (and their hashes) of other policies stay as they were
            snapshot["step_up_minutes"] = self.step_up_minutes
        return snapshot

    @property
    def request_ttl(self) -> timedelta:
        return timedelta(seconds=self.request_ttl_seconds)

    @property
    def approval_ttl(self) -> timedelta:
        return timedelta(seconds=self.approval_ttl_seconds)


def step_up_refusal(
    rules: PolicyRules, *, method: str, mfa_at: datetime | None, now: datetime
) -> RuleViolation | None:
    """Step-up: with ``step_up_minutes`` set, a decision needs a second-factor sign-in or
    re-authentication within that many minutes; an API token never has one."""
    if not rules.step_up_minutes:
        return None
    window = timedelta(minutes=rules.step_up_minutes)
    if method == "api_token":
        return RuleViolation(
            "reauthentication_required",
            f"This environment's policy requires deciding within {rules.step_up_minutes} minutes of an MFA "
            "re-authentication; an API token cannot satisfy that. Decide in the browser.",
            details={"step_up_minutes": rules.step_up_minutes},
            status_code=403,
        )
    if mfa_at is None or mfa_at > now or now - mfa_at > window:
        return RuleViolation(
            "reauthentication_required",
            f"This environment's policy requires deciding within {rules.step_up_minutes} minutes of an MFA "
            "re-authentication. Re-authenticate with your second factor, then decide.",
            details={"step_up_minutes": rules.step_up_minutes,
                     "last_mfa_at": mfa_at.isoformat() if mfa_at else None},
            status_code=403,
        )
    return None


def snapshot_sha256(snapshot: Mapping) -> str:
    """The fingerprint of a policy snapshot (canonical JSON): what a decision's acknowledgement names."""
    return hashlib.sha256(json.dumps(dict(snapshot), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Person:
    """Who someone is, as far as the rules care: an id and the identities they may appear under."""

    id: int
    identities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Vote:
    approver_id: int
    decision: str


@dataclass(frozen=True)
class RequestFacts:
    rules: PolicyRules
    requester: Person | None
    change_authors: frozenset[str] = frozenset()
    checks: Mapping[str, str] = field(default_factory=dict)
    votes: tuple[Vote, ...] = ()
    is_emergency: bool = False
    during_freeze: bool = False
    # How CI named the requester (kept even when it matched no portal person).
    requester_login: str = ""
    # False when the change authors could not be determined (no change set, compare failed).
    change_authors_known: bool = True
    # Checks whose latest result came from a person rather than CI (see trusted_checks_only).
    untrusted_checks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    """The outcome of evaluating a request, with reasons a person can act on."""

    outcome: str  # "pending_checks" | "blocked" | "awaiting_approval" | "approved" | "rejected"
    reasons: tuple[str, ...]
    approvals: int
    approvals_required: int
    missing_checks: tuple[str, ...] = ()
    failed_checks: tuple[str, ...] = ()

    @property
    def progress(self) -> str:
        return f"{self.approvals} of {self.approvals_required} approvals"


# --- refs ---------------------------------------------------------------------------------------

def normalize_ref(ref: str) -> str:
    """``refs/heads/main`` → ``main``; ``refs/tags/v1.2`` → ``v1.2``."""
    for prefix in REF_PREFIXES:
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    # GitHub's branch-pattern semantics: ``*`` stays within one path segment, ``**`` crosses ``/``.
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def ref_allowed(ref: str, patterns: Iterable[str]) -> bool:
    patterns = tuple(patterns)
    if not patterns:
        return True
    name = normalize_ref(ref)
    return any(_glob_regex(pattern).match(name) for pattern in patterns)


# --- validation of a new request ----------------------------------------------------------------

def validate_submission(*, sha: str, ref: str, rules: PolicyRules, is_emergency: bool,
                        justification: str, in_freeze: bool) -> None:
    """Raise ``RuleViolation`` naming the first rule a new request breaks."""
    if not SHA_RE.match(sha or ""):
        raise RuleViolation(
            "invalid_sha", f"The commit sha must be 40 lowercase hexadecimal characters; got {sha!r}.",
            status_code=400,
        )
    if not ref or len(ref) > 255 or any(ch.isspace() for ch in ref):
        raise RuleViolation("invalid_ref", "The ref must be a non-empty branch or tag name.", status_code=400)
    if not ref_allowed(ref, rules.allowed_refs):
        raise RuleViolation(
            "ref_not_allowed",
            f"Ref {normalize_ref(ref)!r} is not allowed in this environment; allowed: "
            f"{', '.join(rules.allowed_refs)}.",
            details={"allowed_refs": list(rules.allowed_refs)},
            status_code=400,
        )
    if in_freeze and not is_emergency:
        raise RuleViolation(
            "freeze_in_effect",
            "This environment is in a deployment freeze; only an emergency request with a justification "
            "may be submitted.",
        )
    if is_emergency and len(justification.strip()) < MIN_JUSTIFICATION_LENGTH:
        raise RuleViolation(
            "justification_required",
            f"An emergency request needs a justification of at least {MIN_JUSTIFICATION_LENGTH} characters.",
            status_code=400,
        )


# --- checks -------------------------------------------------------------------------------------

def check_summary(required: Sequence[str], checks: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(missing or pending, failed) among the required checks."""
    missing, failed = [], []
    for name in required:
        state = checks.get(name)
        if state in PASSING_CHECK_STATES:
            continue
        if state is None or state == CheckState.PENDING:
            missing.append(name)
        else:
            failed.append(name)
    return tuple(missing), tuple(failed)


# --- eligibility --------------------------------------------------------------------------------

def approvals_required(rules: PolicyRules, *, is_emergency: bool, during_freeze: bool) -> int:
    extra = rules.emergency_extra_approvals if (is_emergency and during_freeze) else 0
    return rules.required_approvals + extra


def is_change_author(person: Person, change_authors: frozenset[str]) -> bool:
    return bool(person.identities & {a.lower() for a in change_authors})


def requester_identities(facts: RequestFacts) -> frozenset[str]:
    """Every name the requester is known under, including CI's own name for them."""
    names = set(facts.requester.identities) if facts.requester else set()
    if facts.requester_login.strip():
        names.add(" ".join(facts.requester_login.split()).lower())
    return frozenset(names)


def identity_gaps(facts: RequestFacts) -> tuple[str, ...]:
    """What separation of duties cannot be checked for, in words (empty when nothing is missing)."""
    gaps = []
    if facts.requester is None:
        if facts.requester_login.strip():
            gaps.append(f"The requester {facts.requester_login.strip()!r} named by CI matches no portal person.")
        else:
            gaps.append("The request names no requester.")
    if facts.rules.exclude_change_authors and not facts.change_authors_known:
        gaps.append("The change's authors could not be determined.")
    return tuple(gaps)


def eligibility_refusal(
    person: Person, facts: RequestFacts, *, decision: str = Decision.APPROVE
) -> RuleViolation | None:
    """Why ``person`` may not make ``decision`` on this request (separation of duties), or None."""
    if (facts.requester is not None and person.id == facts.requester.id) or (
        person.identities & requester_identities(facts)
    ):
        return RuleViolation(
            "self_approval", "Separation of duties: the requester of a deployment may never decide on it.",
            status_code=403,
        )
    if facts.rules.exclude_change_authors and is_change_author(person, facts.change_authors):
        return RuleViolation(
            "change_author",
            "Separation of duties: this environment's policy excludes the change's authors and committers "
            "from deciding on it.",
            status_code=403,
        )
    gaps = identity_gaps(facts)
    if gaps and decision == Decision.APPROVE and facts.rules.unverified_identity == UNVERIFIED_REFUSE:
        return RuleViolation(
            "identity_unverified",
            f"Separation of duties cannot be verified: {' '.join(gaps)} This environment's policy refuses "
            "approval until the people involved are identified (map their CI login or e-mail to a portal "
            "person, or submit a new request naming them).",
            details={"gaps": list(gaps)},
            status_code=403,
        )
    return None


def effective_checks(facts: RequestFacts) -> dict[str, str]:
    """The check states the rules count: under ``trusted_checks_only`` a passing result a person
    reported does not count (it stays pending); a failure counts whoever reported it."""
    if not facts.rules.trusted_checks_only or not facts.untrusted_checks:
        return dict(facts.checks)
    return {
        name: (CheckState.PENDING if name in facts.untrusted_checks and state in PASSING_CHECK_STATES else state)
        for name, state in facts.checks.items()
    }


# --- the verdict --------------------------------------------------------------------------------

def evaluate(facts: RequestFacts) -> Verdict:
    """Evaluate a request: checks first, then any rejection, then the approval quorum."""
    rules = facts.rules
    required = approvals_required(rules, is_emergency=facts.is_emergency, during_freeze=facts.during_freeze)
    approvals = sum(1 for v in facts.votes if v.decision == Decision.APPROVE)
    rejections = sum(1 for v in facts.votes if v.decision == Decision.REJECT)
    missing, failed = check_summary(rules.required_checks, effective_checks(facts))
    reasons: list[str] = []

    if failed:
        reasons.append(f"Required checks failed: {', '.join(failed)}.")
        return Verdict("blocked", tuple(reasons), approvals, required, missing, failed)
    if rejections:
        reasons.append(f"Rejected by {rejections} approver{'s' if rejections > 1 else ''}; any rejection rejects.")
        return Verdict("rejected", tuple(reasons), approvals, required, missing, failed)
    if missing:
        reasons.append(f"Waiting for required checks: {', '.join(missing)}.")
        self_reported = [name for name in missing if name in facts.untrusted_checks]
        if rules.trusted_checks_only and self_reported:
            reasons.append(
                f"Reported by a person, not by CI: {', '.join(self_reported)}; this environment accepts required "
                "checks only from CI service accounts or an integration."
            )
        return Verdict("pending_checks", tuple(reasons), approvals, required, missing, failed)
    if approvals >= required:
        reasons.append(f"Quorum reached: {approvals} of {required} approvals.")
        return Verdict("approved", tuple(reasons), approvals, required, missing, failed)

    needed = required - approvals
    who = "someone who is not the requester"
    if rules.exclude_change_authors:
        who = "someone who is neither the requester nor a change author"
    reasons.append(f"Needs {needed} more approval{'s' if needed > 1 else ''} from {who}.")
    if facts.is_emergency and facts.during_freeze:
        reasons.append(
            f"Emergency during a freeze: {rules.emergency_extra_approvals} extra "
            f"approval{'s' if rules.emergency_extra_approvals != 1 else ''} required; "
            "flagged for review afterwards."
        )
    gaps = identity_gaps(facts)
    if gaps:
        consequence = (
            "Approval is refused until they are identified (this environment's policy)."
            if rules.unverified_identity == UNVERIFIED_REFUSE
            else "Approvals are allowed; the request is flagged for review (this environment's policy)."
        )
        reasons.append(f"Separation of duties cannot be fully verified: {' '.join(gaps)} {consequence}")
    return Verdict("awaiting_approval", tuple(reasons), approvals, required, missing, failed)
