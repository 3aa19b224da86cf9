"""A database migrated by an older version (whose migrations were regenerated) is refused with what to do."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.migrations.recorder import MigrationRecorder

pytestmark = pytest.mark.django_db


def test_a_current_database_passes():
    call_command("check_migration_history")


def test_a_database_from_an_older_version_is_refused_with_what_to_delete():
    MigrationRecorder.Migration.objects.create(app="deployments", name="0011_reconciliation_alerts")
    with pytest.raises(CommandError) as refused:
        call_command("check_migration_history")
    message = str(refused.value)
    assert "older version of the portal" in message and "deployments.0011_reconciliation_alerts" in message
    assert "Delete" in message or "Recreate" in message
