"""PostgreSQL: the maintenance switch is only for the maintenance role, and the two-role set-up of
docs/audit-trail.md works as written. Roles are created inside the test's transaction (PostgreSQL
rolls CREATE ROLE back with it), so nothing outlives the test."""

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction

from compliance.audit.checks import runtime_role_problems
from compliance.audit.db_triggers import MAINTENANCE_ROLE
from deployments.models import Approval
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit-trail.md"


def documented_grants() -> str:
    """The second SQL block of the production guide: the runtime role's rights."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2, "docs/audit-trail.md shows the roles and then the grants"
    assert "CREATE ROLE portal_runtime" in blocks[0]
    return blocks[1]


def execute(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@contextmanager
def as_role(role):
    """Act as ``role`` in a savepoint. SET LOCAL outlives a released savepoint, hence the RESET."""
    with transaction.atomic():
        execute(f"SET LOCAL ROLE {role}")
        yield
        execute("RESET ROLE")


@pytest.fixture
def runtime_role(postgres):
    execute("CREATE ROLE portal_runtime NOLOGIN")
    execute(documented_grants())
    return "portal_runtime"


def test_the_runtime_role_cannot_use_the_maintenance_switch(runtime_role, submit, approvers):
    approval = factories.approve(submit(), approvers[0], comment="ok")
    with pytest.raises(DatabaseError, match="append-only") as refused, transaction.atomic():
        execute(f"SET LOCAL ROLE {runtime_role}")
        execute("SET LOCAL portal.audit_maintenance = 'on'")
        execute("UPDATE deployments_approval SET comment = 'rewritten' WHERE id = %s", [approval.pk])
    assert MAINTENANCE_ROLE in str(refused.value)
    with pytest.raises(DatabaseError, match="owner"), transaction.atomic():
        execute(f"SET LOCAL ROLE {runtime_role}")
        execute("DROP TRIGGER portal_append_only_rows ON deployments_approval")
    assert Approval.objects.get(pk=approval.pk).comment == "ok"


def test_the_application_works_as_the_runtime_role(runtime_role, submit, approvers):
    with as_role(runtime_role):
        request = submit()
        approval = factories.approve(request, approvers[0], comment="as the runtime role")
    assert Approval.objects.filter(pk=approval.pk, comment="as the runtime role").exists()


def test_the_maintenance_role_may_switch_protection_off(runtime_role, submit, approvers):
    approval = factories.approve(submit(), approvers[0], comment="ok")
    execute("CREATE ROLE portal_test_maintainer NOLOGIN")
    execute(f"GRANT {MAINTENANCE_ROLE} TO portal_test_maintainer")
    execute(documented_grants().replace("portal_runtime", "portal_test_maintainer"))
    with as_role("portal_test_maintainer"):
        execute("SET LOCAL portal.audit_maintenance = 'on'")
        execute("UPDATE deployments_approval SET comment = 'maintenance' WHERE id = %s", [approval.pk])
        assert [p.id for p in runtime_role_problems(connection)] == ["compliance.W103"]
    # Without the switch, even the maintenance role is refused.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        execute("SET LOCAL ROLE portal_test_maintainer")
        execute("SET LOCAL portal.audit_maintenance = 'off'")
        execute("UPDATE deployments_approval SET comment = 'again' WHERE id = %s", [approval.pk])


def test_the_system_check_warns_when_the_runtime_role_could_drop_the_triggers(runtime_role):
    assert [p.id for p in runtime_role_problems(connection)] == ["compliance.W101"]  # the suite runs as a superuser
    with as_role(runtime_role):
        assert runtime_role_problems(connection) == []
    with transaction.atomic():
        execute("CREATE ROLE portal_test_owner NOLOGIN")
        execute("ALTER TABLE deployments_approval OWNER TO portal_test_owner")
        execute("SET LOCAL ROLE portal_test_owner")
        problems = runtime_role_problems(connection)
        assert [p.id for p in problems] == ["compliance.W102"] and "deployments_approval" in problems[0].msg
        transaction.set_rollback(True)
