"""Create the Administrators, Engineers, Deployment Approvers and Auditors groups with their model
permissions. The per-environment grants are object permissions managed in the admin."""

from django.db import migrations


def create_role_groups(apps, schema_editor):
    from compliance.people.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0001_initial"),
        ("compliance", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("auditlog", "__latest__"),
        ("axes", "__latest__"),
        ("django_celery_beat", "__latest__"),
        ("guardian", "__latest__"),
    ]

    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
