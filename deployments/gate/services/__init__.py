"""Every write to a deployment request goes through these functions.

Each one locks the request row (``select_for_update``), checks the rules, writes the state, the
decision and a timeline event in one transaction, and leaves side effects to ``on_commit`` hooks
(see ``deployments.signals``). A refused action raises ``RuleViolation`` and is recorded as a
``Refusal`` in its own transaction, so the evidence survives the rollback of the refused change.

The package's modules hold one capability each (requests, decisions, executions, and what they
share); callers use ``deployments.gate.services.<function>``.
"""

from deployments.gate.facts import (
    change_authors_known,
    environment_in_freeze,
    facts_for,
    untrusted_checks,
    verdict_for,
)
from deployments.gate.services.common import (
    STRICT_PRODUCTION_DEFAULTS,
    _expire_if_due,
    create_environment,
    policy_rules,
    record_refusal,
    records_refusals,
    update_policy,
)
from deployments.gate.services.decisions import approve_request, reject_request
from deployments.gate.services.executions import EXECUTION_FINISHED, report_execution
from deployments.gate.services.requests import (
    cancel_request,
    expire_due_requests,
    find_environment,
    record_change_set,
    record_checks,
    submit_request,
    submit_request_by_name,
)

__all__ = [
    "EXECUTION_FINISHED",
    "STRICT_PRODUCTION_DEFAULTS",
    "_expire_if_due",
    "records_refusals",
    "approve_request",
    "cancel_request",
    "change_authors_known",
    "create_environment",
    "environment_in_freeze",
    "expire_due_requests",
    "facts_for",
    "find_environment",
    "policy_rules",
    "record_change_set",
    "record_checks",
    "record_refusal",
    "reject_request",
    "report_execution",
    "submit_request",
    "submit_request_by_name",
    "untrusted_checks",
    "update_policy",
    "verdict_for",
]
