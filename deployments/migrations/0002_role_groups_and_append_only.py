"""The four role groups with their model permissions (the per-environment grants are object
permissions managed in the admin), and decision records append-only on PostgreSQL (see
compliance.audit.db_triggers)."""

from django.db import migrations

from compliance.audit.db_triggers import installer

APPEND_ONLY = installer("deployments_approval", "deployments_requestevent", "deployments_refusal")


def create_role_groups(apps, schema_editor):
    from compliance.people.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
        ("compliance", "0002_training_defaults_and_append_only"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("auditlog", "__latest__"),
        ("axes", "__latest__"),
        ("django_celery_beat", "__latest__"),
        ("guardian", "__latest__"),
    ]

    operations = [
        migrations.RunPython(create_role_groups, migrations.RunPython.noop),
        migrations.RunPython(*APPEND_ONLY, elidable=False),
    ]
