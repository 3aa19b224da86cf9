"""Decision records are append-only on PostgreSQL (see compliance.audit.db_triggers)."""

from django.db import migrations

from compliance.audit.db_triggers import installer

APPEND_ONLY = installer("deployments_approval", "deployments_requestevent", "deployments_refusal")


class Migration(migrations.Migration):

    dependencies = [
        ("deployments", "0002_role_groups"),
        ("compliance", "0002_audit_trail"),
    ]

    operations = [
        migrations.RunPython(*APPEND_ONLY, elidable=False),
    ]
