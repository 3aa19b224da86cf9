"""``push`` and ``branch_protection_rule`` webhooks: pushes to protected branches and rule changes become
monitoring signals, handed to ``deployments.detection.findings`` (which opens the violations)."""

from __future__ import annotations

import fnmatch
import logging

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from deployments.detection import findings as detection
from deployments.models import Service

from .common import Outcome, as_dict, as_str, find_service, https_url
from .models import BranchProtectionRule, DeliveryState, GitHubWebhookDelivery, MonitoringSignal, SignalKind

logger = logging.getLogger(__name__)


def rules_for_branch(service: Service, branch: str) -> list[BranchProtectionRule]:
    return [rule for rule in service.branch_protection_rules.all() if fnmatch.fnmatchcase(branch, rule.pattern)]


def allowed_push_logins(rule: BranchProtectionRule) -> set[str]:
    user_model = get_user_model()
    logins = (
        user_model.objects.filter(
            Q(pk__in=rule.allowed_push_users.values("pk")) | Q(groups__in=rule.allowed_push_groups.values("pk")),
            is_active=True,
        )
        .exclude(github_login="")
        .values_list("github_login", flat=True)
    )
    return {login.lower() for login in logins}


def _signal(delivery, *, kind, service, repository, branch, actor_login, summary, details) -> None:
    try:
        with transaction.atomic():
            signal = MonitoringSignal.objects.create(
                kind=kind,
                service=service,
                repository=repository,
                branch=branch[:255],
                actor_login=actor_login[:100],
                summary=summary,
                details=details,
                delivery=delivery,
            )
    except IntegrityError:
        return  # already raised by an earlier run of this delivery
    _forward_to_detection(signal)


def _forward_to_detection(signal: MonitoringSignal) -> None:
    """Hand a push signal to monitoring, which opens a violation (deduplicated per pushed commit)."""
    if signal.kind not in (SignalKind.UNAUTHORIZED_PUSH, SignalKind.FORCE_PUSH):
        return
    details = signal.details or {}
    sha = details.get("after") if isinstance(details.get("after"), str) else ""
    try:
        detection.report_unauthorized_push(
            repository=signal.repository,
            branch=signal.branch,
            sha=sha,
            pusher_login=signal.actor_login,
            url=https_url(details.get("compare")),  # a payload value: only an https link, never javascript:
            details={
                "signal_id": signal.pk,
                "signal": signal.kind,
                "forced": details.get("forced"),
                "deleted": details.get("deleted"),
            },
            source="github",
        )
    except Exception:  # monitoring must never lose the delivery
        logger.exception("Monitoring could not take signal #%s", signal.pk)


def handle_push(delivery: GitHubWebhookDelivery, payload: dict) -> None:
    repository = as_str(as_dict(payload.get("repository"), "repository").get("full_name"), "repository.full_name")
    ref = as_str(payload.get("ref"), "ref")
    if not ref.startswith("refs/heads/"):
        raise Outcome(DeliveryState.IGNORED, "Not a branch push.")
    branch = ref.removeprefix("refs/heads/")
    service = find_service(repository)
    if service is None:
        raise Outcome(DeliveryState.IGNORED, f"No portal service for repository {repository}.")
    rules = rules_for_branch(service, branch)
    if not rules:
        raise Outcome(DeliveryState.IGNORED, f"Branch {branch!r} is not protected by a portal rule.")
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    login = sender.get("login") if isinstance(sender.get("login"), str) else ""
    pusher = payload.get("pusher") if isinstance(payload.get("pusher"), dict) else {}
    details = {
        "before": payload.get("before"),
        "after": payload.get("after"),
        "forced": bool(payload.get("forced")),
        "deleted": bool(payload.get("deleted")),
        "pusher": pusher.get("name", ""),
        "compare": https_url(payload.get("compare")),
        "rules": [rule.pattern for rule in rules],
    }
    for rule in rules:
        if rule.restrict_pushers and login.lower() not in allowed_push_logins(rule):
            _signal(
                delivery,
                kind=SignalKind.UNAUTHORIZED_PUSH,
                service=service,
                repository=repository,
                branch=branch,
                actor_login=login,
                details=details,
                summary=f"{login or 'someone unknown'} pushed to protected branch {branch} of {repository} "
                f"without being an authorized pusher (rule {rule.pattern}).",
            )
            break
    if (payload.get("forced") and not all(r.allow_force_pushes for r in rules)) or (
        payload.get("deleted") and not all(r.allow_deletions for r in rules)
    ):
        what = "deleted" if payload.get("deleted") else "force-pushed"
        _signal(
            delivery,
            kind=SignalKind.FORCE_PUSH,
            service=service,
            repository=repository,
            branch=branch,
            actor_login=login,
            details=details,
            summary=f"{login or 'someone unknown'} {what} protected branch {branch} of {repository}.",
        )


def handle_branch_protection_rule(delivery: GitHubWebhookDelivery, payload: dict) -> None:
    repository = as_str(as_dict(payload.get("repository"), "repository").get("full_name"), "repository.full_name")
    rule = as_dict(payload.get("rule"), "rule")
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    login = sender.get("login") if isinstance(sender.get("login"), str) else ""
    pattern = rule.get("name") if isinstance(rule.get("name"), str) else ""
    _signal(
        delivery,
        kind=SignalKind.PROTECTION_CHANGED,
        service=find_service(repository),
        repository=repository,
        branch=pattern,
        actor_login=login,
        details={"action": delivery.action, "rule": rule, "changes": payload.get("changes") or {}},
        summary=f"{login or 'someone'} {delivery.action or 'changed'} the branch protection rule "
        f"{pattern!r} of {repository} on GitHub.",
    )
