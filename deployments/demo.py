"""Demo data for ``make run``: a user for every role, three services, staging and production
environments with different policies, and requests in every state. Idempotent."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta

from auditlog.context import set_actor
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from compliance.audit.reviews import record_audit_review
from compliance.audit.services import seal_and_checkpoint
from compliance.errors import RuleViolation
from compliance.models import AccessChange, Violation, ViolationKind, ViolationStatus
from compliance.people import access_changes, four_eyes
from compliance.people.identity import system_actor
from compliance.people.roles import Role
from compliance.training.demo import load_training_demo
from compliance.violations.services import transition_violation
from deployments.choices import CIProvider, ExecutionStatus, RequestSource, Tier
from deployments.gate import services
from deployments.models import DeploymentRequest, Environment, FreezeWindow, Service
from deployments.signals import demo_data_loaded

DEMO_USERS = [
    # username, password, role, full name, extra
    ("admin", "demo-admin-pass", Role.ADMINISTRATOR, "Ada Admin", {"is_staff": True, "is_superuser": True}),
    # A second administrator: privileged grants need one (four-eyes access changes).
    ("otto", "demo-admin-pass", Role.ADMINISTRATOR, "Otto Admin", {"is_staff": True}),
    ("alice", "demo-engineer-pass", Role.ENGINEER, "Alice Engineer", {"github_login": "alice-gh"}),
    ("bob", "demo-engineer-pass", Role.ENGINEER, "Bob Engineer", {"github_login": "bob-gh"}),
    ("carol", "demo-approver-pass", Role.APPROVER, "Carol Approver", {"github_login": "carol-gh"}),
    ("dave", "demo-approver-pass", Role.APPROVER, "Dave Approver", {}),
    ("erin", "demo-approver-pass", Role.APPROVER, "Erin Approver", {}),
    ("frank", "demo-auditor-pass", Role.AUDITOR, "Frank Auditor", {"is_staff": True}),
]
SERVICES = [
    ("payments-api", "Payments API", "acme/payments-api", CIProvider.GITHUB),
    ("web-frontend", "Web frontend", "acme/web-frontend", CIProvider.GITHUB),
    ("billing-worker", "Billing worker", "acme/billing-worker", CIProvider.GITLAB),
]
ALL_CHECKS = {"unit": "success", "integration": "success", "lint": "success", "security-scan": "success"}


def demo_sha(label: str) -> str:
    return hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()


def _users() -> dict:
    user_model = get_user_model()
    users = {}
    for username, password, role, full_name, extra in DEMO_USERS:
        first, last = full_name.split(" ", 1)
        user, created = user_model.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com", **extra},
        )
        if created:
            user.set_password(password)
            user.save()
        user.groups.add(Group.objects.get(name=str(role)))
        users[username] = user
    ci, created = user_model.objects.get_or_create(
        username="ci-bot", defaults={"is_service_account": True, "first_name": "CI", "last_name": "bot"}
    )
    if created:
        ci.set_unusable_password()
        ci.save()
    users["ci-bot"] = ci
    return users


# Who approves where (per-environment grants to people, not to the whole approvers group): erin
# approves staging only, carol and dave everywhere.
APPROVERS_BY_TIER = {Tier.STAGING: ("carol", "dave", "erin"), Tier.PRODUCTION: ("carol", "dave")}


def _change_set(label: str, *, authors: tuple[str, ...], messages: tuple[str, ...]) -> dict:
    """A change set as CI reports it: the commits since the last deployment and the diff's size."""
    commits = [
        {"sha": demo_sha(f"{label}-{i}"), "author": authors[i % len(authors)], "message": message,
         "url": f"https://github.com/acme/{label.split(':')[0]}/commit/{demo_sha(f'{label}-{i}')}"}
        for i, message in enumerate(messages)
    ]
    return {"base": demo_sha(f"{label}-base"), "head": commits[-1]["sha"], "commits": commits,
            "files_changed": 3 * len(commits), "additions": 40 * len(commits), "deletions": 7 * len(commits)}


# Production asks every request for its change record (ISO 27001 A.8.32, PCI DSS 6.5.1).
PRODUCTION_CHANGE_RECORD = {
    "require_ticket": True, "require_risk_level": True, "require_impact": True, "require_rollback_plan": True,
    "ticket_url_template": "https://acme.atlassian.net/browse/{ticket}",
}


def _record(ticket: str, risk: str, impact: str, rollback: str) -> dict:
    return {"ticket": ticket, "risk_level": risk, "impact": impact, "rollback_plan": rollback}


def _environments(admin, users: dict) -> dict:
    envs = {}
    engineers = Group.objects.get(name=str(Role.ENGINEER))
    for name, display, repo, provider in SERVICES:
        service, _ = Service.objects.get_or_create(
            name=name, defaults={"display_name": display, "repository": repo, "ci_provider": provider}
        )
        for env_name, tier in (("staging", Tier.STAGING), ("production", Tier.PRODUCTION)):
            env = Environment.objects.filter(service=service, name=env_name).first()
            if env is None:
                extra = PRODUCTION_CHANGE_RECORD if tier == Tier.PRODUCTION else {"required_checks": ["unit", "lint"]}
                env = services.create_environment(actor=admin, service=service, name=env_name, tier=tier, **extra)
            assign_perm("deployments.request_deployment", engineers, env)
            for username in APPROVERS_BY_TIER[tier]:
                assign_perm("deployments.approve_deployment", users[username], env)
            envs[f"{name}/{env_name}"] = env
    return envs


def _approve(env_checklist_request, approver):
    checklist = {item: True for item in env_checklist_request.policy_snapshot.get("impact_checklist", [])}
    return services.approve_request(
        actor=approver,
        request=env_checklist_request,
        checklist=checklist,
        comment="Reviewed the change set and its impact.",
    )


def _requests(users: dict, envs: dict) -> None:
    u = users

    def sub(*, checks=None, **kwargs):
        # People request; CI reports the checks (production counts only checks CI reported).
        request = services.submit_request(**kwargs)
        if checks:
            request = services.record_checks(actor=u["ci-bot"], request=request, checks=checks)
        return request

    main, rel = "refs/heads/main", "refs/heads/release/2026.11"

    # payments-api/staging: one superseded (still undecided when a newer request came), then deployed
    env = envs["payments-api/staging"]
    sub(actor=u["alice"], environment=env, sha=demo_sha("p1"), ref=main, title="Add refund endpoint")
    r = sub(
        actor=u["alice"],
        environment=env,
        sha=demo_sha("p2"),
        ref=main,
        checks=ALL_CHECKS,
        title="Refund endpoint with idempotency keys",
        change_authors=["alice"],
    )
    _approve(r, u["carol"])
    services.report_execution(
        actor=u["ci-bot"],
        environment=env,
        sha=r.sha,
        status=ExecutionStatus.IN_PROGRESS,
        external_id="run-101",
        request=r,
    )
    services.report_execution(
        actor=u["ci-bot"], environment=env, sha=r.sha, status=ExecutionStatus.SUCCESS, external_id="run-101", request=r
    )

    # ... and an emergency fix, approved and deployed, awaiting its review after the fact (dave or erin)
    r = sub(actor=u["alice"], environment=env, sha=demo_sha("p2-hotfix"), ref=main, checks=ALL_CHECKS,
            title="Hotfix: refunds time out", is_emergency=True,
            justification="Refunds time out for every customer since this morning's deployment.",
            ticket="PAY-120", risk_level="medium", impact="Refund requests only.", rollback_plan="Redeploy run-101.")
    _approve(r, u["carol"])
    services.report_execution(
        actor=u["ci-bot"], environment=env, sha=r.sha, status=ExecutionStatus.SUCCESS, external_id="run-103", request=r
    )
    # ... then a release that broke refund batching, rolled back to the hotfix build: the metrics count
    # the release as a failed change (followed by a rollback) and the rollback as its restore
    r = sub(actor=u["alice"], environment=env, sha=demo_sha("p4"), ref=main, checks=ALL_CHECKS,
            title="Batch refunds nightly", change_authors=["alice"])
    _approve(r, u["carol"])
    services.report_execution(
        actor=u["ci-bot"], environment=env, sha=r.sha, status=ExecutionStatus.SUCCESS, external_id="run-104", request=r
    )
    r = sub(actor=u["alice"], environment=env, sha=demo_sha("p2-hotfix"), ref=main, checks=ALL_CHECKS,
            title="Roll back to the hotfix build: nightly batching double-refunds", change_authors=["alice"])
    _approve(r, u["carol"])
    services.report_execution(
        actor=u["ci-bot"], environment=env, sha=r.sha, status=ExecutionStatus.SUCCESS, external_id="run-105", request=r
    )

    # payments-api/production: one deploying, one waiting with 1 of 2 approvals
    env = envs["payments-api/production"]
    r = sub(
        actor=u["alice"],
        environment=env,
        sha=demo_sha("p2"),
        ref=main,
        checks=ALL_CHECKS,
        change_authors=["alice"],
        change_set=_change_set("payments-api:p2", authors=("alice",),
                               messages=("Add refund endpoint", "Idempotency keys for refunds")),
        title="Refund endpoint with idempotency keys",
        **_record("PAY-101", "medium", "New refund endpoint; existing payment flows unchanged.",
                  "Redeploy release 2026.10.3; the endpoint's table is additive."),
        source=RequestSource.GITHUB,
        source_url="https://github.com/acme/payments-api/actions/runs/101",
    )
    _approve(r, u["carol"])
    _approve(r, u["dave"])
    services.report_execution(
        actor=u["ci-bot"],
        environment=env,
        sha=r.sha,
        status=ExecutionStatus.IN_PROGRESS,
        external_id="run-102",
        request=r,
    )
    r = sub(
        actor=u["bob"],
        environment=env,
        sha=demo_sha("p3"),
        ref=rel,
        checks=ALL_CHECKS,
        change_authors=["bob", "carol"],
        change_set=_change_set("payments-api:p3", authors=("bob", "carol"),
                               messages=("Round half to even", "Tests for currency rounding")),
        title="Currency rounding fix",
        **_record("PAY-117", "high", "Amounts of every currency conversion; invoices issued after the release.",
                  "Redeploy the previous release; no data migration to undo."),
    )
    _approve(r, u["dave"])
    # carol co-authored the change: production excludes change authors, so this is refused and recorded
    with contextlib.suppress(RuleViolation):
        _approve(r, u["carol"])

    # web-frontend/staging: blocked, rejected, cancelled, then one still waiting for checks
    env = envs["web-frontend/staging"]
    sub(
        actor=u["bob"],
        environment=env,
        sha=demo_sha("w1"),
        ref=main,
        checks={"unit": "failure", "lint": "success"},
        title="New checkout flow",
    )
    r = sub(
        actor=u["bob"],
        environment=env,
        sha=demo_sha("w2"),
        ref=main,
        checks={"unit": "success", "lint": "success"},
        title="New checkout flow, take two",
    )
    services.reject_request(actor=u["erin"], request=r, comment="Breaks the accessibility of the cart page.")
    r = sub(
        actor=u["alice"],
        environment=env,
        sha=demo_sha("w3"),
        ref="refs/heads/feature/dark-mode",
        title="Dark mode preview",
    )
    services.cancel_request(actor=u["alice"], request=r, reason="Preview moved to a feature environment.")
    sub(
        actor=u["alice"],
        environment=env,
        sha=demo_sha("w4"),
        ref=main,
        checks={"unit": "pending"},
        title="Checkout flow, take three",
    )

    # web-frontend/production: failed deployment, an expired request, and an approved one
    env = envs["web-frontend/production"]
    r = sub(actor=u["bob"], environment=env, sha=demo_sha("w0"), ref=main, checks=ALL_CHECKS, title="Header redesign",
            **_record("WEB-88", "low", "The site header on every page.", "Redeploy the previous build."),
            change_authors=["bob"], change_set=_change_set("web-frontend:w0", authors=("bob",),
                                                           messages=("New header", "Header: mobile layout")))
    _approve(r, u["carol"])
    _approve(r, u["dave"])
    services.report_execution(
        actor=u["ci-bot"], environment=env, sha=r.sha, status=ExecutionStatus.FAILURE, external_id="run-201", request=r
    )
    # ... restored by a fixed build (the metrics' time to restore)
    r = sub(actor=u["bob"], environment=env, sha=demo_sha("w0-fix"), ref=main, checks=ALL_CHECKS,
            title="Header redesign: fix the failed build",
            **_record("WEB-88", "low", "The site header on every page.", "Redeploy the previous build."),
            change_authors=["bob"], change_set=_change_set("web-frontend:w0-fix", authors=("bob",),
                                                           messages=("Header: fix the asset path",)))
    _approve(r, u["carol"])
    _approve(r, u["dave"])
    services.report_execution(
        actor=u["ci-bot"], environment=env, sha=r.sha, status=ExecutionStatus.SUCCESS, external_id="run-202", request=r
    )
    r = sub(actor=u["bob"], environment=env, sha=demo_sha("w5"), ref=main, checks=ALL_CHECKS, title="Cookie banner",
            **_record("WEB-91", "low", "A consent banner for visitors from the EU.", "Turn the banner flag off."),
            change_authors=["bob"], change_set=_change_set("web-frontend:w5", authors=("bob",),
                                                           messages=("Cookie consent banner",)))
    services._expire_if_due(r.pk, actor=system_actor(), now=r.expires_at + timedelta(seconds=1))
    # ... approved, waiting for CI to deploy before its approval time limit
    r = sub(actor=u["alice"], environment=env, sha=demo_sha("w6"), ref=main, checks=ALL_CHECKS, title="Footer links",
            **_record("WEB-95", "low", "Footer links on every page.", "Redeploy the previous build."),
            change_authors=["alice"], change_set=_change_set("web-frontend:w6", authors=("alice",),
                                                             messages=("Footer: legal links", "Footer: sitemap")))
    _approve(r, u["dave"])
    _approve(r, u["carol"])

    # billing-worker: staging waiting; production frozen, with an emergency request
    env = envs["billing-worker/staging"]
    sub(
        actor=u["bob"],
        environment=env,
        sha=demo_sha("b1"),
        ref=main,
        checks={"unit": "success", "lint": "success"},
        title="Retry failed invoices",
        change_authors=["bob"],
    )
    env = envs["billing-worker/production"]
    now = timezone.now()
    FreezeWindow.objects.get_or_create(
        environment=env,
        reason="Month-end billing freeze",
        defaults={"starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(days=3)},
    )
    sub(
        actor=u["bob"],
        environment=env,
        sha=demo_sha("b2"),
        ref=main,
        checks=ALL_CHECKS,
        is_emergency=True,
        justification="Invoices are double-charged since the last release; this reverts the faulty change.",
        title="Revert double-charge bug",
        **_record("BILL-12", "high", "Invoice charging for every customer.", "Re-apply the reverted commit."),
        change_authors=["bob"],
        change_set=_change_set("billing-worker:b2", authors=("bob",), messages=('Revert "Batch invoice charges"',)),
    )

    # monitoring: a deployment nobody approved (run by hand from a laptop) becomes a violation
    services.report_execution(
        actor=u["ci-bot"], environment=envs["payments-api/production"], sha=demo_sha("p-hotfix"),
        status=ExecutionStatus.SUCCESS, external_id="run-666",
        url="https://github.com/acme/payments-api/actions/runs/666",
    )
    # ... which the administrator is investigating, and last month's audit-log review is signed off
    violation = Violation.objects.filter(kind=ViolationKind.UNAUTHORIZED_DEPLOYMENT).order_by("pk").first()
    if violation is not None:
        transition_violation(
            actor=u["admin"], violation=violation, to_status=ViolationStatus.INVESTIGATING,
            notes="Asked the payments team who started run-666 and why it bypassed the portal.",
        )
    last_month_end = timezone.localdate().replace(day=1) - timedelta(days=1)
    record_audit_review(
        actor=u["admin"], period_start=last_month_end.replace(day=1), period_end=last_month_end,
        scope="All production approvals, refusals, permission grants and role changes.",
        findings="No exceptions. One grant to a departed engineer was revoked on the spot.",
    )


def _pending_access_change(users: dict, envs: dict) -> None:
    """One grant waiting for a second administrator: erin to approve payments-api/production (otto may
    approve it; admin, who asked, may not)."""
    grant = access_changes.permission_grant(
        permission=Permission.objects.get(content_type__app_label="deployments", codename="approve_deployment"),
        target=envs["payments-api/production"], subject=users["erin"],
    )
    if access_changes.holds(grant) or AccessChange.objects.filter(grant_key=grant.key()).exists():
        return
    access_changes.request_access_change(
        actor=users["admin"], grant=grant, reason="Erin joins the production release rota next month.",
        expires_at=timezone.now() + timedelta(days=30),
    )


def load_demo_data() -> dict:
    """Create the demo users, services, environments and requests; returns the demo logins."""
    with transaction.atomic():
        admin = _users()["admin"]
    # The demo grants roles and approve permissions directly, as the installation's setup (recorded as
    # privilege changes); everything granted afterwards needs a second administrator.
    with set_actor(admin), four_eyes.applying("demo data loaded by the operator during setup"):
        users = _users()
        training_logins = load_training_demo(users)  # before any request: acting needs training
        envs = _environments(users["admin"], users)
        if not DeploymentRequest.objects.exists():
            _requests(users, envs)
        demo_data_loaded.send(sender=Service, users=users, environments=envs)
    with set_actor(admin):
        _pending_access_change(users, envs)
    seal_and_checkpoint(force_checkpoint=True)  # the demo's evidence is linked and signed at once
    return {username: (password, str(role)) for username, password, role, _, _ in DEMO_USERS} | training_logins
