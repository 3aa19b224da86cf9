"""API tokens and the reports API: a token must allow ``read``, and its scope narrows report rows.

``compliance.reports`` cannot know about tokens (it never imports ``deployments``); this module
registers, from ``DeploymentsConfig.ready()``:

- a credential policy turning an ``ApiToken`` into a ``ReportScope`` (may it read, and which
  environment ids, after the token's fail-closed scope rules) and recording refused reads;
- the scoped variants of the deployment reports, which keep only rows of those environments.
  Reports without one (training, violations, the export log…) are refused to a scoped token.
"""

from __future__ import annotations

from compliance.errors import RuleViolation
from compliance.reports.access import ReportScope, register_credential_policy, register_scoped_rows
from deployments.api import tokens
from deployments.choices import Action, TokenAction
from deployments.gate import services
from deployments.models import ApiToken, Environment
from deployments.reports import access_review
from deployments.reports import definitions as reports


class TokenReportPolicy:
    """What an API token lets its holder read (``None`` for credentials that are not our tokens)."""

    def scope(self, credential) -> ReportScope | None:
        if not isinstance(credential, ApiToken):
            return None
        details = {"token": credential.prefix, "token_actions": list(credential.actions)}
        if not tokens.token_allows_action(credential, TokenAction.READ):
            return ReportScope(may_read=False, label=f"token {credential.prefix}… allows only "
                               f"{', '.join(credential.actions)}", details=details)
        if not tokens.token_scope(credential).is_narrowed:
            return ReportScope(details=details)
        environment_ids = frozenset(
            tokens.narrow_environments(credential, Environment.objects.all()).values_list("pk", flat=True)
        )
        return ReportScope(environment_ids=environment_ids, details=details)

    def record_refusal(self, *, actor, violation: RuleViolation, ip_address: str | None) -> None:
        services.record_refusal(actor=actor, action=Action.READ_REPORT, violation=violation, ip_address=ip_address)


TOKEN_REPORT_POLICY = register_credential_policy(TokenReportPolicy())

for _report, _rows in (
    (reports.AUTHORIZATION_LOG, reports.authorization_log_rows),
    (reports.SOD_EXCEPTIONS, reports.sod_exception_rows),
    (access_review.ACCESS_REVIEW, access_review.access_review_rows),
    (reports.REFUSALS, reports.refusal_rows),
):
    register_scoped_rows(_report.slug, _rows)
