"""Each violation kind, from realistic event sequences through the real services, and reconciliation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.errors import RuleViolation
from compliance.models import Violation, ViolationKind
from compliance.people import gates
from compliance.people.suspensions import suspend_user
from deployments import integrations
from deployments.choices import ExecutionStatus, RequestStatus, Tier
from deployments.detection import findings as detection
from deployments.detection import reconciliation
from deployments.gate import services
from deployments.models import Approval, DeploymentRequest, FreezeWindow
from deployments.signals import execution_recorded
from tests import factories

pytestmark = pytest.mark.django_db


def ci():
    return factories.UserFactory(username="ci-bot", is_service_account=True)


def approved(submit, approvers, **kwargs):
    request = submit(**kwargs)
    factories.approve(request, approvers[0], comment="Looks good")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    return request


def run(environment, sha, status=ExecutionStatus.SUCCESS, **kwargs):
    return services.report_execution(actor=ci(), environment=environment, sha=sha, status=status, **kwargs)


def kinds():
    return sorted(Violation.objects.values_list("kind", flat=True))


def test_an_authorized_deployment_opens_nothing(environment, submit, approvers):
    request = approved(submit, approvers)
    run(environment, request.sha, ExecutionStatus.IN_PROGRESS, external_id="run-1")
    run(environment, request.sha, ExecutionStatus.SUCCESS, external_id="run-1")
    assert kinds() == []
    assert reconciliation.reconcile() == {"executions": 0, "decisions": 0}


def test_a_deployment_without_any_request_is_unauthorized(environment):
    sha = factories.sha()
    execution = run(environment, sha, external_id="run-7", url="https://ci.example.com/runs/7")
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.UNAUTHORIZED_DEPLOYMENT
    assert violation.severity == "high"  # staging; production is critical (below)
    assert violation.source == "event"
    assert violation.subject == str(environment)
    assert violation.evidence["execution"]["sha"] == sha
    assert violation.evidence["execution"]["flag_reason"] == execution.flag_reason
    assert violation.evidence["request"] is None
    urls = [link["url"] for link in violation.evidence_links]
    assert "https://ci.example.com/runs/7" in urls
    assert any(url.endswith(f"/admin/deployments/execution/{execution.pk}/change/") for url in urls)
    # The CI reports the same run again (success after in-progress): still one violation.
    run(environment, sha, ExecutionStatus.FAILURE, external_id="run-7")
    assert Violation.objects.count() == 1


def test_an_unauthorized_production_deployment_is_critical():
    production = factories.make_environment(name="production", tier=Tier.PRODUCTION)
    run(production, factories.sha())
    assert Violation.objects.get().severity == "critical"


def test_a_development_environment_is_not_monitored():
    development = factories.make_environment(name="dev", tier=Tier.DEVELOPMENT)
    run(development, factories.sha())
    assert kinds() == []


def test_a_deployment_of_another_sha_than_approved(environment, submit, approvers):
    request = approved(submit, approvers)
    other = factories.sha()
    run(environment, other, request=request, external_id="run-2")
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.SHA_MISMATCH
    assert violation.evidence["request"]["id"] == request.pk
    assert violation.evidence["request"]["approvers"] == ["approver0"]
    assert request.sha[:12] in violation.title and other[:12] in violation.title


def test_a_deployment_after_the_approval_expired(environment, submit, approvers):
    request = approved(submit, approvers)
    # The pipeline only starts after the approval time limit.
    DeploymentRequest.objects.filter(pk=request.pk).update(approval_expires_at=timezone.now() - timedelta(minutes=5))
    execution = run(environment, request.sha, external_id="run-3")
    assert execution.authorized is False
    assert kinds() == [ViolationKind.STALE_APPROVAL]
    request.refresh_from_db()
    assert request.status == RequestStatus.EXPIRED


def test_a_deployment_of_a_request_that_was_never_approved(environment, submit):
    request = submit()
    run(environment, request.sha, request=request, external_id="run-4")
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.UNAUTHORIZED_DEPLOYMENT
    assert "awaiting approval" in violation.title


def test_a_deployment_during_a_freeze_without_emergency_approval(environment, submit, approvers):
    request = approved(submit, approvers)
    now = timezone.now()
    FreezeWindow.objects.create(environment=environment, starts_at=now - timedelta(minutes=1),
                                ends_at=now + timedelta(hours=4), reason="Black Friday")
    execution = run(environment, request.sha, external_id="run-5")
    assert execution.authorized is True  # the gate let it through: approved before the freeze
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.FREEZE_BREACH
    assert violation.evidence["freeze"]["reason"] == "Black Friday"


def test_an_emergency_deployment_during_a_freeze_is_not_a_violation(environment, submit, approvers):
    now = timezone.now()
    FreezeWindow.objects.create(environment=environment, starts_at=now - timedelta(minutes=1),
                                ends_at=now + timedelta(hours=4), reason="Black Friday")
    request = submit(is_emergency=True, justification="Card payments are failing")
    for person in approvers[:2]:
        factories.approve(request, person, comment="emergency ok")
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    run(environment, request.sha, external_id="run-6")
    assert kinds() == []


@pytest.fixture
def training_lapsed_for():
    """A compliance gate (as the training module registers) saying someone's training has lapsed."""
    lapsed: set[int] = set()

    def gate(*, user, action):
        if user.pk in lapsed:
            return RuleViolation("training_lapsed", "Required training on the deployment policy has lapsed.")
        return None

    gates.register_gate(gate)
    yield lapsed
    gates._gates.remove(gate)


def test_a_person_whose_training_lapsed_still_deploying(environment, submit, approvers, requester, training_lapsed_for):
    request = approved(submit, approvers)
    training_lapsed_for.add(requester.pk)  # lapses between the approval and the deployment
    run(environment, request.sha, external_id="run-8")
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.LAPSED_TRAINING
    assert violation.evidence["person"] == requester.username
    assert violation.evidence["refusal"]["code"] == "training_lapsed"


def test_a_suspended_approver_is_refused_and_nothing_is_opened(environment, submit, approvers):
    request = submit()
    suspend_user(actor=None, user=approvers[0], reason="Investigation")
    with pytest.raises(RuleViolation):
        factories.approve(request, approvers[0])
    assert kinds() == []


def test_a_decision_written_outside_the_gate_by_the_requester_is_caught(environment, submit, requester):
    """Should be impossible: the services refuse self-approval. Detected anyway, by reconciliation."""
    request = submit()
    approval = Approval.objects.create(request=request, approver=requester, decision="approve", comment="lgtm")
    assert reconciliation.reconcile() == {"executions": 0, "decisions": 1}
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.INELIGIBLE_DECISION
    assert violation.severity == "critical"
    assert violation.source == "reconciliation"
    reasons = " ".join(violation.evidence["reasons"])
    assert "requester" in reasons and "outside the portal's services" in reasons
    assert violation.evidence["approval"]["id"] == approval.pk
    assert reconciliation.reconcile() == {"executions": 0, "decisions": 0}


def test_a_decision_by_someone_without_approval_permission_is_caught(environment, submit):
    engineer = factories.engineer(environment, username="eve")  # may request here, never approve
    request = submit()
    Approval.objects.create(request=request, approver=engineer, decision="approve", comment="lgtm")
    reconciliation.reconcile()
    reasons = " ".join(Violation.objects.get().evidence["reasons"])
    assert "did not hold the approver role and approval permission" in reasons


def test_no_permission_conclusion_is_drawn_after_an_access_change(environment, submit, approvers):
    request = submit()
    factories.approve(request, approvers[0], comment="fine")
    factories.revoke(approvers[0], "approve", environment)  # revoked after deciding: the decision stands
    assert reconciliation.reconcile() == {"executions": 0, "decisions": 0}


def test_a_decision_by_someone_suspended_at_the_time_is_caught(environment, submit, approvers):
    request = submit()
    factories.approve(request, approvers[0], comment="fine")
    approval = Approval.objects.get()
    # The suspension started before the decision and is still in force (e.g. entered late from a
    # paper process, back-dated): the decision was made by an ineligible person.
    suspension = suspend_user(actor=None, user=approvers[0], reason="Access review finding")
    type(suspension).objects.filter(pk=suspension.pk).update(started_at=approval.created_at - timedelta(hours=1))
    reconciliation.reconcile()
    violation = Violation.objects.get()
    assert violation.kind == ViolationKind.INELIGIBLE_DECISION
    assert "suspended at the time" in " ".join(violation.evidence["reasons"])


def test_a_normal_decision_opens_nothing(environment, submit, approvers):
    factories.approve(submit(), approvers[0])
    assert reconciliation.reconcile() == {"executions": 0, "decisions": 0}


def test_a_missed_event_is_caught_by_reconciliation(environment, submit, approvers):
    """The detector was down when the CI reported (e.g. a worker crashed): reconciliation catches it."""
    request = approved(submit, approvers)
    receiver = detection._on_execution_recorded
    execution_recorded.disconnect(dispatch_uid="deployments.detection.execution")
    try:
        run(environment, factories.sha(), external_id="run-9")  # nothing approved this sha
        run(environment, factories.sha(), request=request, external_id="run-10")  # another sha than approved
    finally:
        execution_recorded.connect(receiver, dispatch_uid="deployments.detection.execution")
    assert kinds() == []
    assert reconciliation.reconcile() == {"executions": 2, "decisions": 0}
    assert kinds() == [ViolationKind.SHA_MISMATCH, ViolationKind.UNAUTHORIZED_DEPLOYMENT]
    assert set(Violation.objects.values_list("source", flat=True)) == {"reconciliation"}
    # Safe to run again; and an event seen by both paths is one violation.
    assert reconciliation.reconcile() == {"executions": 0, "decisions": 0}
    assert Violation.objects.count() == 2


def test_reconciliation_only_looks_back_the_configured_days(environment, settings):
    settings.PORTAL_RECONCILIATION_DAYS = 1
    receiver = detection._on_execution_recorded
    execution_recorded.disconnect(dispatch_uid="deployments.detection.execution")
    try:
        run(environment, factories.sha(), external_id="old-run")
    finally:
        execution_recorded.connect(receiver, dispatch_uid="deployments.detection.execution")
    assert reconciliation.reconcile(now=timezone.now() + timedelta(days=2)) == {"executions": 0, "decisions": 0}
    from deployments.tasks import reconcile_deployments

    result = reconcile_deployments.delay().get()
    assert (result["executions"], result["decisions"]) == (1, 0)
    # Each installed CI integration reports under its name; unconfigured ones say so.
    assert all(result[source.name]["configured"] is False for source in integrations.reconciliation_sources())


def test_an_unauthorized_push_is_reported_once_per_commit(environment):
    repo = environment.service.repository
    sha = factories.sha()
    first = detection.report_unauthorized_push(
        repository=repo, branch="main", sha=sha, pusher_login="mallory", url=f"https://github.com/{repo}/commit/{sha}"
    )
    again = detection.report_unauthorized_push(repository=repo, branch="main", sha=sha, pusher_login="mallory")
    assert first.pk == again.pk and again.created is False
    assert first.kind == ViolationKind.UNAUTHORIZED_PUSH
    assert first.evidence["service"] == environment.service.name
    assert first.evidence_links[0]["url"].endswith(sha)


def test_branch_protection_drift_opens_one_violation_per_drifted_state(environment):
    repo = environment.service.repository
    expected = {"required_reviews": 2, "enforce_admins": True}
    drift = detection.report_branch_protection_drift(
        repository=repo, branch="main", expected=expected, actual={"required_reviews": 0, "enforce_admins": True}
    )
    assert drift.kind == ViolationKind.BRANCH_PROTECTION_DRIFT
    assert drift.evidence["differences"] == ["required_reviews"]
    same = detection.report_branch_protection_drift(
        repository=repo, branch="main", expected=expected, actual={"enforce_admins": True, "required_reviews": 0}
    )
    assert same.pk == drift.pk
    removed = detection.report_branch_protection_drift(repository=repo, branch="main", expected=expected, actual={})
    assert removed.pk != drift.pk and removed.severity == "high"
