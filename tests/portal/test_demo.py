import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from deployments.choices import RequestStatus, Tier
from deployments.gate import permissions
from deployments.models import DeploymentRequest, Environment

pytestmark = pytest.mark.django_db


def test_demo_data_has_every_state_and_loads_twice_without_change(capsys, client):
    call_command("load_demo_data")
    first = DeploymentRequest.objects.count()
    call_command("load_demo_data")
    assert DeploymentRequest.objects.count() == first
    assert set(DeploymentRequest.objects.values_list("status", flat=True)) == set(RequestStatus.values)
    out = capsys.readouterr().out
    assert "carol" in out and "demo-approver-pass" in out

    # Production requests carry the change set approvers review.
    production = DeploymentRequest.objects.filter(
        environment__tier=Tier.PRODUCTION, environment__service__name="payments-api"
    )
    assert production.exists() and all(r.change_set.get("commits") for r in production)
    # A per-environment approver: erin approves staging, not production.
    erin = get_user_model().objects.get(username="erin")
    approvable = set(permissions.environments_for(erin, permissions.APPROVE).values_list("tier", flat=True))
    assert approvable == {Tier.STAGING}
    assert Environment.objects.filter(tier=Tier.PRODUCTION).exists()
    # An approved request still waiting for CI, and one superseded while undecided.
    assert DeploymentRequest.objects.filter(status=RequestStatus.APPROVED, approval_expires_at__isnull=False).exists()
    superseded = DeploymentRequest.objects.get(status=RequestStatus.SUPERSEDED)
    assert superseded.superseded_by is not None and superseded.approval_expires_at is None
    _demo_evidence_checks()
    # The auditor sees the metrics' charts and the emergency change's whole story.
    from deployments.evidence import services as evidence

    client.force_login(get_user_model().objects.get(username="frank"))
    metrics = client.get("/metrics/").content.decode()
    assert metrics.count("<svg") == 6 and "web-frontend / production" in metrics
    emergency = evidence.emergency_changes().get()
    story = client.get(f"/requests/{emergency.pk}/story/")
    assert story.status_code == 200 and b"PAY-120" in story.content and b"not reviewed yet" in story.content


def _demo_evidence_checks():
    """What the demo shows of issue 17: tickets on production, an emergency change awaiting review,
    and metrics with a failure and a restore, and a rollback."""
    from deployments.evidence import services as evidence
    from deployments.metrics.queries import Period, dora_metrics

    production = DeploymentRequest.objects.filter(environment__tier=Tier.PRODUCTION)
    assert production.exists() and all(r.ticket and r.rollback_plan for r in production)
    assert all(r.ticket_url.startswith("https://acme.atlassian.net/browse/") for r in production)
    awaiting = evidence.emergency_changes().filter(emergency_review__isnull=True)
    assert awaiting.exists()
    rows = {(r["service"], r["environment"]): r for r in dora_metrics(Period.last_days(1))}
    web = rows[("web-frontend", "production")]
    assert web["failed_deployments"] == 1 and web["restores"] == 1 and web["change_failure_rate"] == 0.5
    staging = rows[("payments-api", "staging")]
    assert staging["rolled_back_deployments"] == 1 and staging["failed_changes"] == 1 and staging["restores"] == 1
