"""Every admin page an administrator or auditor opens renders; evidence has no add/delete buttons."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from compliance.people.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("load_demo_data")


def _model_admins():
    return [(model._meta.app_label, model._meta.model_name) for model in admin.site._registry]


@pytest.mark.parametrize(("app_label", "model_name"), _model_admins())
def test_every_changelist_and_first_change_page_renders_for_a_superuser(client, demo, app_label, model_name):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    response = client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    assert response.status_code == 200
    model = next(m for m in admin.site._registry if m._meta.model_name == model_name and m._meta.app_label == app_label)
    first = model._default_manager.first()
    if first is not None:
        response = client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[first.pk]))
        assert response.status_code == 200


def test_environment_object_permissions_page_renders(client, demo):
    from deployments.models import Environment

    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    env = Environment.objects.first()
    response = client.get(reverse("admin:deployments_environment_permissions", args=[env.pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("model_name", ["deploymentrequest", "approval", "requestevent", "refusal", "execution"])
def test_evidence_cannot_be_added_or_deleted_even_by_a_superuser(client, demo, model_name):
    client.force_login(factories.UserFactory(is_superuser=True, is_staff=True))
    assert client.get(reverse(f"admin:deployments_{model_name}_add")).status_code == 403
    from django.apps import apps

    first = apps.get_model("deployments", model_name).objects.first()
    assert client.get(reverse(f"admin:deployments_{model_name}_delete", args=[first.pk])).status_code == 403


def test_an_administrator_in_the_group_can_grant_environment_permissions(client, demo):
    admin_user = factories.UserFactory(roles=[Role.ADMINISTRATOR], is_staff=True)
    client.force_login(admin_user)
    assert client.get(reverse("admin:deployments_environmentuserobjectpermission_add")).status_code == 200
    assert client.get(reverse("admin:deployments_approvalpolicy_changelist")).status_code == 200


def test_people_are_deactivated_never_deleted(client, db):
    from auditlog.models import LogEntry

    boss = factories.UserFactory(username="boss", is_superuser=True, is_staff=True)
    leaver = factories.engineer(username="leaver")
    client.force_login(boss)
    assert client.get(reverse("admin:compliance_user_delete", args=[leaver.pk])).status_code == 403
    changelist = reverse("admin:compliance_user_changelist")
    client.post(changelist, {"action": "delete_selected", "_selected_action": [leaver.pk]})
    assert type(leaver).objects.filter(pk=leaver.pk).exists()  # no bulk delete either
    response = client.post(changelist, {"action": "deactivate", "_selected_action": [leaver.pk, boss.pk]},
                           follow=True)
    assert response.status_code == 200
    leaver.refresh_from_db()
    boss.refresh_from_db()
    assert leaver.is_active is False and boss.is_active is True  # nobody locks themselves out
    messages = [str(m) for m in response.context["messages"]]
    assert "1 person(s) deactivated." in messages and "You cannot deactivate yourself." in messages
    change = LogEntry.objects.filter(object_pk=str(leaver.pk), changes__has_key="is_active").latest("timestamp")
    assert change.actor == boss and [str(v) for v in change.changes["is_active"]] == ["True", "False"]
