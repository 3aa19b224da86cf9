"""Pure rules of the change record a request carries (ISO 27001 A.8.32, PCI DSS 6.5.1): its ticket
reference, risk level, impact statement and rollback plan, as an environment's policy requires them.
No database, no I/O; ``deployments.gate.policy`` names them too."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from compliance.errors import RuleViolation

DEFAULT_TICKET_PATTERN = r"[A-Z][A-Z0-9]+-\d+"
RISK_LEVELS = ("low", "medium", "high")
MAX_TICKET_LENGTH = 100
MIN_STATEMENT_LENGTH = 10


class ChangeRecordRules(Protocol):
    """What the policy says of the change record (``policy.PolicyRules`` has these)."""

    ticket_required: bool
    ticket_pattern: str
    risk_level_required: bool
    impact_required: bool
    rollback_plan_required: bool



@dataclass(frozen=True)
class ChangeRecord:
    """What a request says about the change beyond the commit: its ticket, risk, impact and way back."""

    ticket: str = ""
    risk_level: str = ""
    impact: str = ""
    rollback_plan: str = ""


def ticket_matches(ticket: str, pattern: str) -> bool:
    """The whole reference matches the pattern (an invalid pattern matches nothing: fail closed)."""
    try:
        return re.fullmatch(pattern or DEFAULT_TICKET_PATTERN, ticket) is not None
    except re.error:
        return False


def ticket_url(ticket: str, template: str) -> str:
    """The ticket's link from the policy's template (``{ticket}`` replaced); "" when there is none."""
    if not ticket or not template or "{ticket}" not in template:
        return ""
    return template.replace("{ticket}", quote(ticket, safe=""))


def find_ticket(texts: Iterable[str], pattern: str) -> str:
    """The first ticket reference found in ``texts`` (branch names, pull request titles…), or "": what
    an integration passes when CI cannot name the ticket itself (``feature/PAY-123-fix`` → PAY-123)."""
    try:
        compiled = re.compile(rf"(?<![A-Za-z0-9])(?:{pattern or DEFAULT_TICKET_PATTERN})(?![A-Za-z0-9])")
    except re.error:
        return ""
    for text in texts:
        found = compiled.search(text or "") if isinstance(text, str) else None
        if found and len(found.group(0)) <= MAX_TICKET_LENGTH:
            return found.group(0)
    return ""


def validate_change_record(record: ChangeRecord, rules: ChangeRecordRules) -> None:
    """Raise ``RuleViolation`` naming the first part of the change record the policy requires and the
    request lacks (or gives in the wrong form). A ticket given where none is required is still checked
    against the pattern: a malformed reference is never kept as evidence."""
    ticket = record.ticket.strip()
    if len(ticket) > MAX_TICKET_LENGTH or any(ch.isspace() for ch in ticket):
        raise RuleViolation(
            "invalid_ticket", f"A ticket reference is one word of at most {MAX_TICKET_LENGTH} characters.",
            status_code=400,
        )
    if rules.ticket_required and not ticket:
        raise RuleViolation(
            "ticket_required",
            f"This environment's policy requires a ticket reference (pattern {rules.ticket_pattern}).",
            details={"ticket_pattern": rules.ticket_pattern}, status_code=400,
        )
    if ticket and not ticket_matches(ticket, rules.ticket_pattern):
        raise RuleViolation(
            "invalid_ticket",
            f"Ticket {ticket!r} does not match this environment's ticket pattern {rules.ticket_pattern}.",
            details={"ticket_pattern": rules.ticket_pattern}, status_code=400,
        )
    if record.risk_level and record.risk_level not in RISK_LEVELS:
        raise RuleViolation(
            "invalid_risk_level", f"Risk level must be one of {', '.join(RISK_LEVELS)}; got {record.risk_level!r}.",
            status_code=400,
        )
    if rules.risk_level_required and not record.risk_level:
        raise RuleViolation(
            "risk_level_required",
            f"This environment's policy requires a risk level ({', '.join(RISK_LEVELS)}).", status_code=400,
        )
    for required, text, code, what in (
        (rules.impact_required, record.impact, "impact_required", "an impact statement"),
        (rules.rollback_plan_required, record.rollback_plan, "rollback_plan_required", "a rollback plan"),
    ):
        if required and len(text.strip()) < MIN_STATEMENT_LENGTH:
            raise RuleViolation(
                code,
                f"This environment's policy requires {what} of at least {MIN_STATEMENT_LENGTH} characters.",
                status_code=400,
            )
