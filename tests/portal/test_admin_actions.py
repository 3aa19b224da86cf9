"""View-only means no action: every admin action, ours and third-party, declares the permission it
needs, and an auditor (or an engineer or approver who reaches the admin) can run none of them.

The generic tests walk ``admin.site._registry``, so an action added later without a permission
makes them fail."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import AdminSite, ModelAdmin
from django.core import mail
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from django.urls import reverse

from compliance.errors import RuleViolation
from compliance.models import Suspension
from compliance.people import suspensions as services
from compliance.people.identity import SYSTEM_USERNAME
from compliance.people.roles import Role
from portal.celery import app as celery_app
from tests import factories

pytestmark = pytest.mark.django_db


def _privilege_changes():
    # looked up when used, so the behaviour checks above it also run against code without the model
    from django.apps import apps as django_apps

    return django_apps.get_model("compliance", "PrivilegeChange").objects

COMPLIANCE_JOBS = [
    "deployments.expire_due_requests",
    "compliance.enforce_training",
    "compliance.seal_audit_chain",
    "compliance.verify_audit_chain",
    "deployments.reconcile_deployments",
]


def _people():
    return {
        "auditor": factories.UserFactory(username="frank", roles=[Role.AUDITOR], is_staff=True),
        "engineer": factories.UserFactory(username="eng", roles=[Role.ENGINEER], is_staff=True, trained=False),
        "approver": factories.UserFactory(username="appr", roles=[Role.APPROVER], is_staff=True, trained=False),
        "administrator": factories.UserFactory(username="ada", roles=[Role.ADMINISTRATOR], is_staff=True),
    }


def _schedule_in_database():
    """The periodic tasks as beat writes them into the database when it starts (django-celery-beat's
    own conversion of each entry; the scheduler object itself closes connections, which a test
    transaction on PostgreSQL does not survive)."""
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    for name, entry in celery_app.conf.beat_schedule.items():
        ModelEntry.from_entry(name, app=celery_app, **entry)
    return PeriodicTask.objects.filter(task__in=COMPLIANCE_JOBS)


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def _undeclared_actions(model_admin) -> list[str]:
    """Actions of ``model_admin`` (whoever asks) that declare no permission."""
    return [
        name
        for func, name, _ in model_admin._get_base_actions()
        if not getattr(func, "allowed_permissions", None)
    ]


@pytest.fixture
def demo():
    call_command("load_demo_data")
    _schedule_in_database()


# --- the generic walk over every registered admin -----------------------------------------------------


def test_every_registered_admin_action_declares_the_permission_it_needs(demo):
    missing = {
        model._meta.label: _undeclared_actions(model_admin)
        for model, model_admin in admin.site._registry.items()
        if _undeclared_actions(model_admin)
    }
    assert missing == {}


def test_the_walk_catches_an_action_added_without_a_permission():
    class CarelessAdmin(ModelAdmin):
        actions = ["wipe"]

        @admin.action(description="Wipe")
        def wipe(self, request, queryset):
            queryset.update(is_active=False)

    careless = CarelessAdmin(apps.get_model("compliance", "User"), AdminSite())
    assert _undeclared_actions(careless) == ["wipe"]


@pytest.mark.parametrize("role", ["auditor", "engineer", "approver"])
def test_view_only_roles_get_no_admin_action_at_all(demo, role):
    person = _people()[role]
    offered = {
        model._meta.label: sorted(model_admin.get_actions(_request(person)))
        for model, model_admin in admin.site._registry.items()
    }
    assert {label: names for label, names in offered.items() if names} == {}


def test_a_non_superuser_administrator_gets_only_actions_backed_by_a_permission_they_hold(demo):
    person = _people()["administrator"]
    request = _request(person)
    for model, model_admin in admin.site._registry.items():
        for func, name, _ in model_admin.get_actions(request).values():
            checks = [getattr(model_admin, f"has_{p}_permission") for p in func.allowed_permissions]
            assert all(check(request) for check in checks), (model._meta.label, name)
    # a few that administrators do need
    user_admin = admin.site._registry[apps.get_model("compliance", "User")]
    assert {"deactivate", "send_training_reminders"} <= set(user_admin.get_actions(request))
    suspension_admin = admin.site._registry[Suspension]
    assert "lift" in suspension_admin.get_actions(request)


def _snapshot() -> dict[str, list]:
    """Every row of every table the admin can reach (sessions aside), to prove nothing changed."""
    rows = {}
    for model in apps.get_models():
        if model._meta.label in {"sessions.Session"}:
            continue
        rows[model._meta.label] = sorted(map(repr, model._default_manager.order_by().values()))
    return rows


@override_settings(GITHUB_API_URL="http://127.0.0.1:9")  # nothing may leave the machine, whatever runs
def test_posting_every_action_as_the_auditor_changes_nothing(client, demo):
    auditor = _people()["auditor"]
    client.force_login(auditor)
    mail.outbox.clear()
    before = _snapshot()
    statuses = {}
    for model, model_admin in admin.site._registry.items():
        pks = list(model._default_manager.order_by("pk").values_list("pk", flat=True)[:50])
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for _, name, _ in model_admin._get_base_actions():
            response = client.post(url, {"action": name, "_selected_action": pks, "index": 0, "post": "yes"})
            statuses[(model._meta.label, name)] = response.status_code
    after = _snapshot()
    changed = sorted(label for label in before if before[label] != after[label])
    assert changed == []
    assert mail.outbox == []
    assert {key: code for key, code in statuses.items() if code not in (200, 302, 403)} == {}
    assert len(statuses) > 40  # delete_selected of each admin plus the custom actions


# --- the reported holes, one by one ---------------------------------------------------------------------


def test_an_auditor_cannot_lift_a_suspension_in_the_admin(client):
    people = _people()
    dave = factories.approver(username="dave")
    suspension = services.suspend_user(actor=people["administrator"], user=dave, reason="Investigation")
    client.force_login(people["auditor"])
    client.post(reverse("admin:compliance_suspension_changelist"),
                {"action": "lift", "_selected_action": [suspension.pk]})
    suspension.refresh_from_db()
    assert suspension.lifted_at is None


def test_the_lift_service_refuses_anyone_but_an_administrator_and_records_it():
    people = _people()
    dave = factories.approver(username="dave")
    suspension = services.suspend_user(actor=people["administrator"], user=dave, reason="Investigation")
    for role in ("auditor", "engineer", "approver"):
        with pytest.raises(RuleViolation) as refused:
            services.lift_suspension(actor=people[role], suspension=suspension, reason="I say so")
        assert refused.value.code == "not_permitted"
    suspension.refresh_from_db()
    assert suspension.lifted_at is None
    refusals = _privilege_changes().filter(kind="refused", subject=dave, code="not_permitted")
    assert sorted(r.actor.username for r in refusals) == ["appr", "eng", "frank"]
    services.lift_suspension(actor=people["administrator"], suspension=suspension, reason="Investigated: fine")
    suspension.refresh_from_db()
    assert suspension.lifted_by == people["administrator"]


def test_an_administrator_cannot_lift_their_own_suspension():
    people = _people()
    other_admin = factories.UserFactory(username="otto", roles=[Role.ADMINISTRATOR], is_staff=True)
    suspension = services.suspend_user(actor=other_admin, user=people["administrator"], reason="Investigation")
    with pytest.raises(RuleViolation) as refused:
        services.lift_suspension(actor=people["administrator"], suspension=suspension, reason="Mine")
    assert refused.value.code == "self_privilege_change"
    suspension.refresh_from_db()
    assert suspension.lifted_at is None
    services.lift_suspension(actor=other_admin, suspension=suspension, reason="Done")


@pytest.mark.parametrize("action", ["disable_tasks", "toggle_tasks", "enable_tasks", "run_tasks"])
def test_an_auditor_cannot_switch_off_or_run_the_compliance_jobs(client, action):
    auditor = _people()["auditor"]
    tasks = _schedule_in_database()
    assert sorted(tasks.values_list("task", flat=True)) == sorted(COMPLIANCE_JOBS)
    if action == "enable_tasks":
        tasks.update(enabled=False)
    states = dict(tasks.values_list("pk", "enabled"))
    client.force_login(auditor)
    client.post(reverse("admin:django_celery_beat_periodictask_changelist"),
                {"action": action, "_selected_action": list(states)})
    assert dict(tasks.values_list("pk", "enabled")) == states
    from compliance.models import JobHeartbeat

    assert not JobHeartbeat.objects.filter(last_started_at__isnull=False).exists()  # nothing ran


def test_only_a_superuser_changes_periodic_tasks_and_each_change_is_audited(client):
    from auditlog.models import LogEntry
    from django_celery_beat.models import PeriodicTask

    tasks = _schedule_in_database()
    administrator = _people()["administrator"]
    client.force_login(administrator)
    task = tasks.get(task="compliance.verify_audit_chain")
    change_url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    assert client.get(change_url).status_code == 200  # viewable
    assert client.post(change_url, {"name": task.name, "enabled": ""}).status_code == 403
    assert client.get(reverse("admin:django_celery_beat_intervalschedule_add")).status_code == 403

    boss = factories.UserFactory(username="boss", is_superuser=True, is_staff=True)
    client.force_login(boss)
    response = client.post(reverse("admin:django_celery_beat_periodictask_changelist"),
                           {"action": "disable_tasks", "_selected_action": [task.pk]}, follow=True)
    assert response.status_code == 200
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    entry = LogEntry.objects.get_for_object(task).latest("timestamp")
    assert entry.actor == boss and [str(v) for v in entry.changes["enabled"]] == ["True", "False"]


@pytest.mark.django_db(transaction=True)
def test_beat_re_asserts_the_code_defined_schedule_when_it_starts():
    from auditlog.models import LogEntry
    from django_celery_beat.models import IntervalSchedule

    from compliance.monitoring.beat import PortalScheduler

    tasks = _schedule_in_database()
    seal = tasks.get(task="compliance.seal_audit_chain")
    seal.enabled = False
    seal.interval = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.DAYS)
    seal.save()
    PortalScheduler(app=celery_app)
    seal.refresh_from_db()
    assert seal.enabled is True
    assert (seal.interval.every, seal.interval.period) == (60, IntervalSchedule.SECONDS)
    entry = LogEntry.objects.get_for_object(seal).latest("timestamp")
    assert entry.actor.username == SYSTEM_USERNAME


def test_an_auditor_cannot_clean_up_sign_in_attempts(client, demo):
    from axes.models import AccessAttempt

    auditor = _people()["auditor"]
    client.force_login(auditor)
    request = _request(auditor)
    assert admin.site._registry[AccessAttempt].get_actions(request) == {}
