"""The policy v1.0 and the default training courses (with a role assignment for every current member
of a role group), and the audit trail append-only on PostgreSQL (see compliance.audit.db_triggers)."""

from django.db import migrations

from compliance.audit.db_triggers import installer

APPEND_ONLY = installer("auditlog_logentry", "compliance_chainlink", with_function=True)


def install_defaults(apps, schema_editor):
    from django.utils import timezone

    from compliance.people.roles import Role
    from compliance.training.defaults import install_default_training

    install_default_training(apps)
    user_model = apps.get_model("compliance", "User")
    assignment_model = apps.get_model("compliance", "RoleAssignment")
    now = timezone.now()
    through = user_model.groups.through
    for user_id, role in through.objects.filter(group__name__in=[str(r) for r in Role]).values_list(
        "user_id", "group__name"
    ):
        assignment_model.objects.get_or_create(user_id=user_id, role=role, ended_at=None, defaults={"assigned_at": now})


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0001_initial"),
        ("auditlog", "__latest__"),
    ]

    operations = [
        migrations.RunPython(install_defaults, migrations.RunPython.noop),
        migrations.RunPython(*APPEND_ONLY, elidable=False),
    ]
