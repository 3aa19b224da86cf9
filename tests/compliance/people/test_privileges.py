"""Nobody changes their own privileges; only superusers hand out superuser, staff and the
administrator role; every change to who administers or approves is recorded, e-mailed to the
administrators and shown on the monitoring page. All through the real admin forms."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.forms import MultiWidget
from django.urls import reverse

from compliance.people.roles import Role
from deployments.models import EnvironmentGroupObjectPermission, EnvironmentUserObjectPermission
from tests import factories

pytestmark = pytest.mark.django_db


def _privilege_changes():
    # looked up when used, so the behaviour checks above it also run against code without the model
    from django.apps import apps as django_apps

    return django_apps.get_model("compliance", "PrivilegeChange").objects


@pytest.fixture
def ada():
    """An administrator who is not a superuser."""
    return factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True, email="ada@example.com")


@pytest.fixture
def otto():
    """A second administrator, who hears about every change."""
    return factories.UserFactory(username="otto", roles=[Role.ADMINISTRATOR], is_staff=True, email="otto@example.com")


@pytest.fixture
def boss():
    return factories.UserFactory(username="boss", is_superuser=True, is_staff=True, email="boss@example.com")


def _change_form_data(client, url) -> dict:
    """What the browser would send back unchanged from the admin change page at ``url``."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        if isinstance(field.widget, MultiWidget):
            for index, part in enumerate(field.widget.decompress(value)):
                if part is not None:
                    data[f"{name}_{index}"] = str(part)
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [getattr(v, "pk", v) for v in value]
        elif value is not None:
            data[name] = str(value)
    return data


def _user_url(user):
    return reverse("admin:compliance_user_change", args=[user.pk])


def _errors(response) -> str:
    form = response.context["adminform"].form
    return " ".join(str(e) for e in form.non_field_errors())


def _group(role):
    return Group.objects.get(name=str(role))


# --- self-grants through the user admin -------------------------------------------------------------------


def test_an_administrator_cannot_make_themselves_approver_and_superuser(client, ada, otto):
    client.force_login(ada)
    data = _change_form_data(client, _user_url(ada))
    data["groups"] = [_group(Role.ADMINISTRATOR).pk, _group(Role.APPROVER).pk]
    data["is_superuser"] = "on"
    response = client.post(_user_url(ada), data)
    assert response.status_code == 200  # the form again, editable, with the reason
    assert "<h1>Change user</h1>" in response.content.decode()  # not turned into a read-only view
    assert "You cannot change your own" in _errors(response)
    assert "roles (groups)" in _errors(response) and "superuser status" in _errors(response)
    ada.refresh_from_db()
    assert ada.is_superuser is False
    assert sorted(ada.groups.values_list("name", flat=True)) == [str(Role.ADMINISTRATOR)]
    refusal = _privilege_changes().get(kind="refused", actor=ada)
    assert refusal.subject == ada and refusal.code == "self_privilege_change"


@pytest.mark.parametrize(
    ("field", "value"), [("is_staff", ""), ("user_permissions", "approve"), ("groups", "drop-admin")]
)
def test_an_administrator_cannot_change_any_of_their_own_privileges(client, ada, field, value):
    client.force_login(ada)
    data = _change_form_data(client, _user_url(ada))
    if field == "is_staff":
        data.pop("is_staff", None)
    elif field == "user_permissions":
        data["user_permissions"] = [Permission.objects.get(codename="approve_deployment").pk]
    else:
        data["groups"] = []
    response = client.post(_user_url(ada), data)
    assert response.status_code == 200 and "You cannot change your own" in _errors(response)
    ada.refresh_from_db()
    assert ada.is_staff and not ada.user_permissions.exists() and ada.groups.count() == 1


def test_an_administrator_still_edits_their_own_name(client, ada):
    client.force_login(ada)
    data = _change_form_data(client, _user_url(ada))
    data["first_name"] = "Ada"
    assert client.post(_user_url(ada), data).status_code == 302
    ada.refresh_from_db()
    assert ada.first_name == "Ada"


def test_only_a_superuser_grants_superuser_staff_or_the_administrator_role(client, ada):
    carol = factories.UserFactory(username="carol", roles=[Role.ENGINEER])
    client.force_login(ada)
    for change in ("is_superuser", "is_staff", "administrator"):
        data = _change_form_data(client, _user_url(carol))
        if change == "administrator":
            data["groups"] = [*data.get("groups", []), _group(Role.ADMINISTRATOR).pk]
        else:
            data[change] = "on"
        response = client.post(_user_url(carol), data)
        assert response.status_code == 200 and "Only a superuser may" in _errors(response), change
    carol.refresh_from_db()
    assert not carol.is_superuser and not carol.is_staff
    assert list(carol.groups.values_list("name", flat=True)) == [str(Role.ENGINEER)]
    assert _privilege_changes().filter(kind="refused", subject=carol, code="superuser_only").count() == 3


def test_an_administrator_cannot_change_a_superusers_account(client, ada, boss):
    client.force_login(ada)
    assert client.post(reverse("admin:auth_user_password_change", args=[boss.pk]),
                       {"password1": "x-new-pass-123456", "password2": "x-new-pass-123456"}).status_code == 403
    data = {"username": "boss", "is_superuser": "", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    assert client.post(_user_url(boss), data).status_code == 403
    boss.refresh_from_db()
    assert boss.is_superuser and boss.check_password("correct-horse-battery")


def test_an_administrator_cannot_set_an_approvers_password_and_sign_in_as_them(
    client, ada, otto, boss, django_capture_on_commit_callbacks
):
    carol = factories.approver(username="carol", email="carol@example.com")
    url = reverse("admin:auth_user_password_change", args=[carol.pk])
    client.force_login(ada)

    assert client.get(url).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"password1": "ada-knows-this-1", "password2": "ada-knows-this-1"})

    assert response.status_code == 403
    carol.refresh_from_db()
    assert carol.check_password("correct-horse-battery")
    refused = _privilege_changes().get(code="password_of_another_person")
    assert refused.actor == ada and refused.subject == carol
    assert any("password" in m.body for m in mail.outbox if "otto@example.com" in m.to)
    # A superuser still can (e.g. for a locked-out colleague), and so can each person for themself.
    client.force_login(boss)
    assert client.post(url, {"password1": "reset-by-boss-1", "password2": "reset-by-boss-1"}).status_code == 302
    client.force_login(ada)
    own = reverse("admin:auth_user_password_change", args=[ada.pk])
    assert client.post(own, {"password1": "ada-own-pass-12", "password2": "ada-own-pass-12"}).status_code == 302


# --- role changes are recorded and e-mailed -----------------------------------------------------------


def _approve_pending(client, approver, subject):
    """A second administrator approves the pending access change for ``subject`` on the portal page."""
    change = _privilege_changes().model._meta.apps.get_model("compliance", "AccessChange").objects.get(
        subject=subject, status="pending")
    client.force_login(approver)
    response = client.post(reverse("compliance:access_change_decide", args=[change.pk]),
                           {"decision": "approve", "reason": "on the rota"})
    assert response.status_code == 302
    return change


def test_a_superuser_granting_approver_e_mails_every_administrator(client, boss, ada, otto,
                                                                  django_capture_on_commit_callbacks):
    carol = factories.UserFactory(username="carol", roles=[Role.ENGINEER])
    client.force_login(boss)
    data = _change_form_data(client, _user_url(carol))
    data["groups"] = [*data.get("groups", []), _group(Role.APPROVER).pk]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(_user_url(carol), data).status_code == 302
    assert not carol.groups.filter(name=str(Role.APPROVER)).exists()  # four eyes: pending
    [requested] = [m for m in mail.outbox if "carol" in m.subject]
    assert "requested" in requested.subject.lower() and "boss" in requested.body
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _approve_pending(client, otto, carol)
    assert carol.groups.filter(name=str(Role.APPROVER)).exists()
    change = _privilege_changes().get(kind="role_added", subject=carol)
    assert change.actor == otto and change.group == str(Role.APPROVER)
    [message] = [m for m in mail.outbox if "carol" in m.subject]
    assert "Deployment Approvers" in message.subject
    assert sorted(message.to) == ["ada@example.com", "otto@example.com"]
    assert "otto" in message.body


def test_an_administrator_granting_someone_else_approver_is_requested_and_announced(
        client, ada, otto, django_capture_on_commit_callbacks):
    carol = factories.UserFactory(username="carol", roles=[Role.ENGINEER])
    client.force_login(ada)
    data = _change_form_data(client, _user_url(carol))
    data["groups"] = [_group(Role.APPROVER).pk]  # engineer → approver
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(_user_url(carol), data).status_code == 302
    kinds = sorted(_privilege_changes().filter(subject=carol).values_list("kind", "group"))
    assert kinds == [("access_requested", str(Role.APPROVER))]  # engineers are not a privileged role
    assert any("otto@example.com" in m.to for m in mail.outbox)
    assert not carol.groups.exists()  # the engineer role was removed at once; approver waits


def test_a_superuser_making_someone_staff_is_recorded(client, boss, otto):
    carol = factories.UserFactory(username="carol", roles=[Role.AUDITOR])
    second = factories.UserFactory(username="root2", is_superuser=True, is_staff=True)
    client.force_login(boss)
    data = _change_form_data(client, _user_url(carol))
    data["is_staff"] = "on"
    assert client.post(_user_url(carol), data).status_code == 302
    assert _privilege_changes().get(kind="access_requested", subject=carol).actor == boss
    _approve_pending(client, second, carol)
    change = _privilege_changes().get(kind="flag_changed", subject=carol)
    assert change.privilege == "staff status granted" and change.actor == second


# --- environment permissions (guardian) ----------------------------------------------------------------


def _approve():
    return Permission.objects.get(codename="approve_deployment")


def test_an_administrator_cannot_grant_themselves_approval_on_an_environment(client, ada, environment):
    client.force_login(ada)
    url = reverse("admin:deployments_environmentuserobjectpermission_add")
    response = client.post(url, {"content_object": environment.pk, "user": ada.pk, "permission": _approve().pk})
    assert response.status_code == 200
    assert "You cannot grant yourself approve_deployment" in _errors(response)
    assert not EnvironmentUserObjectPermission.objects.filter(user=ada).exists()
    assert _privilege_changes().filter(kind="refused", actor=ada, code="self_privilege_change").exists()


def test_an_administrator_cannot_grant_approval_to_a_group_they_belong_to(client, ada, environment):
    client.force_login(ada)
    url = reverse("admin:deployments_environmentgroupobjectpermission_add")
    response = client.post(
        url, {"content_object": environment.pk, "group": _group(Role.ADMINISTRATOR).pk, "permission": _approve().pk},
    )
    assert "You belong to Administrators" in _errors(response)
    assert not EnvironmentGroupObjectPermission.objects.exists()


def test_granting_approval_to_someone_else_is_e_mailed_and_listed_on_the_monitoring_page(
    client, ada, otto, environment, django_capture_on_commit_callbacks
):
    dave = factories.UserFactory(username="dave", roles=[Role.APPROVER])
    client.force_login(ada)
    url = reverse("admin:deployments_environmentuserobjectpermission_add")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"content_object": environment.pk, "user": dave.pk, "permission": _approve().pk})
    assert response.status_code == 302
    assert not EnvironmentUserObjectPermission.objects.filter(user=dave).exists()  # waits for otto
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _approve_pending(client, otto, dave)
    change = _privilege_changes().get(kind="permission_granted", subject=dave)
    assert change.actor == otto and change.privilege == "approve_deployment" and change.target == str(environment)
    [message] = [m for m in mail.outbox if "approve_deployment" in m.subject]
    assert sorted(message.to) == ["ada@example.com", "otto@example.com"]
    page = client.get(reverse("monitoring:index")).content.decode()
    assert "Privileged-access changes" in page and "approve_deployment" in page and "dave" in page


def test_guardians_object_permission_pages_refuse_a_self_grant(client, ada, environment):
    client.force_login(ada)
    url = reverse("admin:deployments_environment_permissions_manage_user", args=[environment.pk, ada.pk])
    response = client.post(url, {"permissions": ["approve_deployment"]}, follow=True)
    assert any("You cannot grant yourself" in str(m) for m in response.context["messages"])
    assert not EnvironmentUserObjectPermission.objects.filter(user=ada).exists()
    group_url = reverse("admin:deployments_environment_permissions_manage_group",
                        args=[environment.pk, _group(Role.ADMINISTRATOR).pk])
    client.post(group_url, {"permissions": ["approve_deployment"]})
    assert not EnvironmentGroupObjectPermission.objects.exists()


# --- groups ------------------------------------------------------------------------------------------------


def test_an_administrator_cannot_change_role_groups_or_their_own_group(client, ada):
    client.force_login(ada)
    for role in Role:
        group = _group(role)
        url = reverse("admin:auth_group_change", args=[group.pk])
        before = set(group.permissions.values_list("pk", flat=True))
        response = client.post(url, {"name": group.name, "permissions": [p.pk for p in Permission.objects.all()]})
        assert response.status_code == 403, role
        assert set(group.permissions.values_list("pk", flat=True)) == before
    delete = reverse("admin:auth_group_delete", args=[_group(Role.AUDITOR).pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Group.objects.filter(name=str(Role.AUDITOR)).exists()


def test_only_a_superuser_gives_a_group_model_permissions(client, ada, boss):
    delete_service = Permission.objects.get(codename="delete_service")
    client.force_login(ada)
    response = client.post(reverse("admin:auth_group_add"), {"name": "shadow", "permissions": [delete_service.pk]})
    assert response.status_code == 200 and "Only a superuser may give a group model permissions" in _errors(response)
    assert not Group.objects.filter(name="shadow").exists()
    assert client.post(reverse("admin:auth_group_add"), {"name": "payments-team"}).status_code == 302  # people only
    client.force_login(boss)
    assert client.post(reverse("admin:auth_group_add"),
                       {"name": "shadow", "permissions": [delete_service.pk]}).status_code == 302


def test_an_administrator_cannot_deactivate_a_superuser(client, ada, boss):
    client.force_login(ada)
    response = client.post(reverse("admin:compliance_user_changelist"),
                           {"action": "deactivate", "_selected_action": [boss.pk]}, follow=True)
    assert "Only a superuser deactivates a superuser." in [str(m) for m in response.context["messages"]]
    boss.refresh_from_db()
    assert boss.is_active
