"""django-auditlog records who did what: web requests, background jobs and permission grants."""

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from compliance.people.identity import SYSTEM_USERNAME
from deployments import tasks
from deployments.models import DeploymentRequest, EnvironmentUserObjectPermission
from tests import factories

pytestmark = pytest.mark.django_db


def entries_for(model, pk):
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model), object_pk=str(pk))


def test_a_web_change_records_its_actor(client, environment):
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    url = reverse("admin:deployments_service_change", args=[environment.service.pk])
    response = client.post(url, {
        "name": environment.service.name, "display_name": "Payments", "repository": "acme/payments",
        "ci_provider": "github", "description": "",
        "environments-TOTAL_FORMS": 0, "environments-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = entries_for(type(environment.service), environment.service.pk).latest("timestamp")
    assert entry.actor == admin
    assert "display_name" in entry.changes_dict


def test_a_background_job_records_the_system_actor(submit):
    request = submit()
    DeploymentRequest.objects.filter(pk=request.pk).update(expires_at=request.created_at - timedelta(seconds=1))
    assert tasks.expire_due_requests.delay().get() == 1
    entry = entries_for(DeploymentRequest, request.pk).latest("timestamp")
    assert entry.actor.username == SYSTEM_USERNAME
    assert entry.changes_dict["status"] == ["awaiting_approval", "expired"]


def test_permission_grants_and_revocations_are_audited(environment):
    person = factories.approver()
    factories.grant(person, "approve", environment)
    grant = EnvironmentUserObjectPermission.objects.get(user=person)
    factories.revoke(person, "approve", environment)
    actions = list(entries_for(EnvironmentUserObjectPermission, grant.pk).order_by("timestamp")
                   .values_list("action", flat=True))
    assert actions == [LogEntry.Action.CREATE, LogEntry.Action.DELETE]


def test_group_membership_changes_are_audited_and_passwords_never_are():
    person = factories.UserFactory()
    from django.contrib.auth.models import Group

    person.groups.add(Group.objects.get(name="Deployment Approvers"))
    person.set_password("another-long-password")
    person.save()
    user_entries = entries_for(type(person), person.pk)
    assert any(e.action == LogEntry.Action.ACCESS or e.changes_dict.get("groups") for e in user_entries)
    assert all("password" not in e.changes_dict for e in user_entries)
