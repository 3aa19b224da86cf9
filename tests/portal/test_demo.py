import pytest
from django.core.management import call_command

from deployments.choices import RequestStatus
from deployments.models import DeploymentRequest

pytestmark = pytest.mark.django_db


def test_demo_data_has_every_state_and_loads_twice_without_change(capsys):
    call_command("load_demo_data")
    first = DeploymentRequest.objects.count()
    call_command("load_demo_data")
    assert DeploymentRequest.objects.count() == first
    assert set(DeploymentRequest.objects.values_list("status", flat=True)) == set(RequestStatus.values)
    out = capsys.readouterr().out
    assert "carol" in out and "demo-approver-pass" in out
