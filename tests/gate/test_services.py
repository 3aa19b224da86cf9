"""The gate, through its services: every rule, every refusal recorded, no state change on refusal."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.people.roles import Role
from compliance.people.suspensions import lift_suspension, suspend_user
from deployments.choices import ExecutionStatus, RequestStatus, Tier
from deployments.gate import services
from deployments.models import Approval, DeploymentRequest, FreezeWindow, Refusal
from tests import factories

pytestmark = pytest.mark.django_db


def refused(code, func, **kwargs):
    """Call ``func``, expect a refusal with ``code``; return the recorded Refusal."""
    before = Refusal.objects.count()
    with pytest.raises(RuleViolation) as caught:
        func(**kwargs)
    assert caught.value.code == code, caught.value.message
    assert Refusal.objects.count() == before + 1
    refusal = Refusal.objects.order_by("-id").first()
    assert refusal.code == code
    assert refusal.message == caught.value.message
    return refusal


# --- submission ---------------------------------------------------------------------------------


def test_a_request_without_checks_awaits_approval_with_a_policy_snapshot(submit, requester):
    request = submit(title="Add refunds")
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert request.requester == requester
    assert request.policy_snapshot["required_approvals"] == 1
    assert list(request.events.values_list("kind", flat=True)) == ["submitted", "awaiting_approval"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"sha": "not-a-sha"}, "invalid_sha"), ({"sha": "ABCDEF" + "0" * 34}, "invalid_sha")],
)
def test_it_refuses_a_malformed_sha(submit, kwargs, code):
    refused(code, submit, **kwargs)
    assert DeploymentRequest.objects.count() == 0


def test_it_refuses_a_ref_outside_the_allowed_patterns(requester):
    env = factories.make_environment(name="prod", allowed_refs=["main", "release/*"])
    factories.grant(requester, "request", env)
    refusal = refused(
        "ref_not_allowed",
        services.submit_request,
        actor=requester,
        environment=env,
        sha=factories.sha(),
        ref="refs/heads/feature/x",
    )
    assert "feature/x" in refusal.message and "release/*" in refusal.message
    assert refusal.environment == env
    assert DeploymentRequest.objects.count() == 0


def test_an_unknown_or_inaccessible_environment_is_one_indistinguishable_refusal(requester, environment):
    other = factories.make_environment(name="secret")
    for service, env_name in [("nope", "prod"), (other.service.name, "secret")]:
        refusal = refused(
            "unknown_environment",
            services.submit_request_by_name,
            actor=requester,
            service=service,
            environment=env_name,
            sha=factories.sha(),
            ref="main",
        )
        assert refusal.message == f"No environment {service}/{env_name} you may request deployments to."
    assert DeploymentRequest.objects.count() == 0


def test_an_engineer_without_the_environment_permission_is_refused(environment):
    outsider = factories.engineer()
    refused(
        "not_permitted",
        services.submit_request,
        actor=outsider,
        environment=environment,
        sha=factories.sha(),
        ref="main",
    )


def test_an_approver_without_the_engineer_role_cannot_request(environment):
    person = factories.approver(environment)
    factories.grant(person, "request", environment)
    refused(
        "not_permitted", services.submit_request, actor=person, environment=environment, sha=factories.sha(), ref="main"
    )


def test_a_newer_request_supersedes_open_ones(submit, approvers):
    first = submit()
    second = submit()
    first.refresh_from_db()
    assert first.status == RequestStatus.SUPERSEDED
    assert first.superseded_by == second
    assert second.status == RequestStatus.AWAITING_APPROVAL


# --- quorum -------------------------------------------------------------------------------------


def test_one_of_n_quorum(submit, approvers):
    request = submit()
    factories.approve(request, approvers[0], comment="Looks right")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert request.approval_expires_at == request.decided_at + timedelta(hours=2)


def test_two_of_n_quorum(requester, approvers, environment):
    services.update_policy(actor=None, approval_policy=environment.policy, required_approvals=2)
    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    assert request.policy_snapshot["version"] == 2
    factories.approve(request, approvers[0])
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert "Needs 1 more approval" in request.status_reason
    factories.approve(request, approvers[1])
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_any_rejection_rejects(requester, approvers, environment):
    services.update_policy(actor=None, approval_policy=environment.policy, required_approvals=2)
    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    factories.approve(request, approvers[0])
    services.reject_request(actor=approvers[1], request=request, comment="Migration is not reversible")
    request.refresh_from_db()
    assert request.status == RequestStatus.REJECTED
    # a terminal request takes no further decision, and the refusal is recorded on it
    refusal = refused("request_terminal", factories.approve, request=request, user=approvers[2])
    assert refusal.request == request
    assert request.approvals.count() == 2


def test_a_rejection_needs_a_comment(submit, approvers):
    request = submit()
    refused("comment_required", services.reject_request, actor=approvers[0], request=request, comment="  ")
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert not Approval.objects.exists()


def test_an_approval_needs_the_whole_impact_checklist(submit, approvers):
    request = submit()
    refusal = refused(
        "checklist_incomplete",
        services.approve_request,
        actor=approvers[0],
        request=request,
        checklist={"Impact on production assessed": True},
    )
    assert "Meets security requirements" in refusal.message
    assert not Approval.objects.exists()


# --- separation of duties and eligibility -------------------------------------------------------


def test_self_approval_is_refused_even_with_the_approver_role(submit, requester, environment):
    requester.groups.add(factories.Group.objects.get(name=str(Role.APPROVER)))
    factories.grant(requester, "approve", environment)
    request = submit()
    refusal = refused("self_approval", factories.approve, request=request, user=requester)
    assert refusal.actor == requester and refusal.request == request
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert request.events.filter(kind="refused").count() == 1


def test_change_authors_are_excluded_when_the_policy_says_so(requester, approvers, environment):
    services.update_policy(actor=None, approval_policy=environment.policy, exclude_change_authors=True)
    approvers[0].github_login = "approver0-gh"
    approvers[0].save()
    request = services.submit_request(
        actor=requester, environment=environment, sha=factories.sha(), ref="main", change_authors=["approver0-gh"]
    )
    refused("change_author", factories.approve, request=request, user=approvers[0])
    factories.approve(request, approvers[1])
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_a_second_decision_by_the_same_person_is_refused(requester, approvers, environment):
    services.update_policy(actor=None, approval_policy=environment.policy, required_approvals=2)
    request = services.submit_request(actor=requester, environment=environment, sha=factories.sha(), ref="main")
    factories.approve(request, approvers[0])
    refused("duplicate_decision", factories.approve, request=request, user=approvers[0])
    refused(
        "duplicate_decision", services.reject_request, actor=approvers[0], request=request, comment="changed my mind"
    )
    assert request.approvals.count() == 1


def test_someone_without_the_approve_permission_is_refused(submit, environment):
    request = submit()
    no_grant = factories.approver()
    refused("not_permitted", factories.approve, request=request, user=no_grant)
    grant_no_role = factories.UserFactory()
    factories.grant(grant_no_role, "approve", environment)
    refused("not_permitted", factories.approve, request=request, user=grant_no_role)


def test_a_superuser_gets_no_bypass(submit):
    request = submit()
    boss = factories.UserFactory(is_superuser=True, is_staff=True)
    refused("not_permitted", factories.approve, request=request, user=boss)


def test_a_revoked_permission_takes_effect_at_once(submit, approvers, environment):
    request = submit()
    factories.revoke(approvers[0], "approve", environment)
    refused("not_permitted", factories.approve, request=request, user=approvers[0])


def test_group_grants_count_and_leaving_the_group_revokes(submit, environment):
    team = factories.Group.objects.create(name="payments-approvers")
    factories.grant(team, "approve", environment)
    person = factories.approver()
    person.groups.add(team)
    request = submit()
    person.groups.remove(team)
    person = type(person).objects.get(pk=person.pk)
    refused("not_permitted", factories.approve, request=request, user=person)
    person.groups.add(team)
    person = type(person).objects.get(pk=person.pk)
    factories.approve(request, person)


def test_a_suspended_approver_is_refused_and_lifting_restores(submit, approvers):
    request = submit()
    admin = factories.UserFactory(roles=[Role.ADMINISTRATOR])
    suspension = suspend_user(actor=admin, user=approvers[0], reason="Approved outside the portal")
    refusal = refused("suspended", factories.approve, request=request, user=approvers[0])
    assert "Approved outside the portal" in refusal.message
    lift_suspension(actor=admin, suspension=suspension, reason="Investigated: training redone")
    factories.approve(request, approvers[0])


def test_a_suspended_engineer_cannot_request(environment, requester):
    suspend_user(actor=None, user=requester, reason="Pushed to main directly")
    refused(
        "suspended", services.submit_request, actor=requester, environment=environment, sha=factories.sha(), ref="main"
    )


# --- checks -------------------------------------------------------------------------------------


def test_required_checks_gate_the_decision(requester, approvers):
    env = factories.make_environment(name="prod", required_checks=["unit", "security-scan"])
    factories.grant(requester, "request", env)
    factories.grant(approvers[0], "approve", env)
    request = services.submit_request(
        actor=requester, environment=env, sha=factories.sha(), ref="main", checks={"unit": "success"}
    )
    assert request.status == RequestStatus.PENDING_CHECKS
    refusal = refused("checks_not_passed", factories.approve, request=request, user=approvers[0])
    assert "security-scan" in refusal.message
    services.record_checks(actor=requester, request=request, checks={"security-scan": "success"})
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    factories.approve(request, approvers[0])


def test_a_failed_required_check_blocks(requester):
    env = factories.make_environment(name="prod", required_checks=["unit"])
    factories.grant(requester, "request", env)
    request = services.submit_request(
        actor=requester, environment=env, sha=factories.sha(), ref="main", checks={"unit": "pending"}
    )
    services.record_checks(actor=requester, request=request, checks={"unit": "failure"})
    request.refresh_from_db()
    assert request.status == RequestStatus.BLOCKED
    assert "unit" in request.status_reason


def test_an_unknown_check_state_is_refused(submit):
    refused("invalid_checks", submit, checks={"unit": "green"})


# --- time limits --------------------------------------------------------------------------------


def test_request_ttl_expires_an_undecided_request(submit, approvers):
    request = submit()
    later = request.expires_at + timedelta(seconds=1)
    assert services.expire_due_requests(actor=None, now=request.expires_at - timedelta(seconds=1)) == 0
    assert services.expire_due_requests(actor=None, now=later) == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.EXPIRED
    assert services.expire_due_requests(actor=None, now=later) == 0


def test_deciding_after_the_request_ttl_expires_it_and_is_refused(submit, approvers):
    request = submit()
    DeploymentRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused("request_expired", factories.approve, request=request, user=approvers[0])
    request.refresh_from_db()
    assert request.status == RequestStatus.EXPIRED
    assert not Approval.objects.exists()


def test_approval_ttl_makes_an_unstarted_approval_stale(submit, approvers):
    request = submit()
    factories.approve(request, approvers[0])
    request.refresh_from_db()
    assert services.expire_due_requests(actor=None, now=request.approval_expires_at - timedelta(seconds=1)) == 0
    assert services.expire_due_requests(actor=None, now=request.approval_expires_at + timedelta(seconds=1)) == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.EXPIRED
    assert "stale" in request.status_reason


# --- freeze windows and the emergency path ------------------------------------------------------


def test_a_freeze_refuses_ordinary_requests_and_takes_emergencies_with_extra_approvals(submit, approvers, environment):
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=environment,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="Black Friday",
    )
    refused("freeze_in_effect", submit)
    refused("justification_required", submit, is_emergency=True, justification="urgent")
    request = submit(is_emergency=True, justification="Checkout is down for every customer; hotfix.")
    assert request.during_freeze and request.flagged_for_review
    factories.approve(request, approvers[0])
    request.refresh_from_db()
    assert request.status == RequestStatus.AWAITING_APPROVAL
    assert "Emergency during a freeze" in request.status_reason
    factories.approve(request, approvers[1])
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_a_freeze_starting_after_submission_blocks_ordinary_approval(submit, approvers, environment):
    request = submit()
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=environment,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        reason="Incident",
    )
    refused("freeze_in_effect", factories.approve, request=request, user=approvers[0])


# --- cancel and execution -----------------------------------------------------------------------


def test_only_the_requester_or_an_administrator_cancels(submit, approvers):
    request = submit()
    refused("not_permitted", services.cancel_request, actor=approvers[0], request=request)
    services.cancel_request(actor=request.requester, request=request, reason="wrong sha")
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED
    refused("request_terminal", services.cancel_request, actor=request.requester, request=request)


def test_an_execution_of_the_approved_sha_deploys_the_request(submit, approvers, environment):
    request = submit()
    factories.approve(request, approvers[0])
    ci = factories.UserFactory(is_service_account=True)
    services.report_execution(
        actor=ci, environment=environment, sha=request.sha, status=ExecutionStatus.IN_PROGRESS, external_id="run-1"
    )
    request.refresh_from_db()
    assert request.status == RequestStatus.DEPLOYING
    execution = services.report_execution(
        actor=ci, environment=environment, sha=request.sha, status=ExecutionStatus.SUCCESS, external_id="run-1"
    )
    request.refresh_from_db()
    assert request.status == RequestStatus.DEPLOYED
    assert execution.authorized and execution.request == request
    assert request.executions.count() == 1


def test_an_unapproved_or_different_sha_execution_is_flagged(submit, approvers, environment):
    ci = factories.UserFactory(is_service_account=True)
    unapproved = services.report_execution(
        actor=ci, environment=environment, sha=factories.sha(), status=ExecutionStatus.SUCCESS
    )
    assert not unapproved.authorized
    assert unapproved.flag_reason == "No deployment request authorizes this execution."
    request = submit()
    factories.approve(request, approvers[0])
    other = services.report_execution(
        actor=ci, environment=environment, sha=factories.sha(), status=ExecutionStatus.IN_PROGRESS, request=request
    )
    assert not other.authorized and "differs from the approved sha" in other.flag_reason
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED


def test_production_environments_get_strict_defaults():
    env = factories.make_environment(name="production", tier=Tier.PRODUCTION)
    assert env.is_protected
    assert env.policy.required_approvals == 2
    assert env.policy.exclude_change_authors
    assert "security-scan" in env.policy.required_checks
