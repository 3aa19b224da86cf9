"""Who may read reports, and how far an API credential narrows what they read.

People: auditors and administrators (and superusers), nobody else. Through the API a caller may
also hold a credential (an API token) that allows only some actions and is narrowed to some
environments. ``compliance`` knows nothing of tokens (it never imports ``deployments``), so the
layer that issues credentials registers a ``CredentialPolicy`` that turns one into a
``ReportScope``, and the reports that can be narrowed to environments register a scoped variant
of their rows with ``register_scoped_rows``. Everything fails closed:

- a credential no registered policy recognises may read nothing;
- a narrowed credential may read only reports that registered a scoped variant, and that variant
  gets the environment ids (possibly none: then no rows).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from compliance.errors import RuleViolation
from compliance.people.roles import oversees_everything

from .registry import Filters, Report


def can_read_reports(user) -> bool:
    return oversees_everything(user)


@dataclasses.dataclass(frozen=True)
class ReportScope:
    """What a credential lets its holder read. ``environment_ids`` ``None``: not narrowed; a set
    (maybe empty): only rows of those environments."""

    may_read: bool = True
    environment_ids: frozenset[int] | None = None
    label: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_narrowed(self) -> bool:
        return self.environment_ids is not None


class CredentialPolicy(Protocol):
    def scope(self, credential) -> ReportScope | None:
        """The scope of ``credential``, or ``None`` when it is not a credential this policy issues."""

    def record_refusal(self, *, actor, violation: RuleViolation, ip_address: str | None) -> None:
        """Keep a refused report read as evidence."""


_policies: list[CredentialPolicy] = []
NOTHING = ReportScope(may_read=False, label="an unrecognised credential")


def register_credential_policy(policy: CredentialPolicy) -> CredentialPolicy:
    if policy not in _policies:
        _policies.append(policy)
    return policy


def credential_scope(credential) -> tuple[ReportScope, CredentialPolicy | None]:
    """The scope of ``credential`` (``None``: a browser session, not narrowed) and the policy that
    issued it; a credential nobody recognises reads nothing."""
    if credential is None:
        return ReportScope(), None
    for policy in reversed(_policies):
        scope = policy.scope(credential)
        if scope is not None:
            return scope, policy
    return NOTHING, None


# --- reports that can be narrowed to environments -----------------------------------------------

ScopedRows = Callable[[Filters, frozenset[int]], Iterable[dict[str, Any]]]
_scoped_rows: dict[str, ScopedRows] = {}


def register_scoped_rows(slug: str, rows: ScopedRows) -> ScopedRows:
    """Say that report ``slug`` can be narrowed: ``rows(filters, environment_ids)`` yields only rows
    of those environments (and nothing tied to no environment, or to a deleted one)."""
    _scoped_rows[slug] = rows
    return rows


def unregister_scoped_rows(slug: str) -> None:
    _scoped_rows.pop(slug, None)


def can_be_scoped(report: Report) -> bool:
    return report.slug in _scoped_rows


def scoped_report(report: Report, scope: ReportScope) -> Report | None:
    """``report`` as ``scope`` lets its holder read it: itself when not narrowed, its scoped variant
    bound to the environment ids, or ``None`` when it cannot be narrowed (refuse it)."""
    if not scope.is_narrowed:
        return report
    rows = _scoped_rows.get(report.slug)
    if rows is None:
        return None
    bound = functools.partial(_bound_rows, rows, scope.environment_ids)
    return dataclasses.replace(report, rows=bound)


def _bound_rows(rows: ScopedRows, environment_ids: frozenset[int], filters: Filters):
    return rows(filters, environment_ids)
