"""System check: the application's runtime database role must not be able to switch the audit
tables' protection off. A role that owns those tables (or is a superuser) can drop the append-only
triggers; production runs with two roles (docs/audit-trail.md, "Two database roles").

Tagged ``database``: it runs with ``manage.py check --database default`` and before ``migrate``."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import connections

from .db_triggers import MAINTENANCE_ROLE


def audit_tables() -> list[str]:
    """Tables that carry the append-only triggers (the chained models and the chain itself)."""
    from .chain import chained_models
    from .models import ChainLink

    return sorted({entry.model._meta.db_table for entry in chained_models()} | {ChainLink._meta.db_table})


def runtime_role_problems(connection) -> list[checks.CheckMessage]:
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s AND pg_has_role(current_user, oid, 'MEMBER'))",
            [MAINTENANCE_ROLE],
        )
        user, superuser, maintainer = cursor.fetchone()
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relname = ANY(%s) "
            "AND pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname",
            [audit_tables()],
        )
        owned = [row[0] for row in cursor.fetchall()]
    found = []
    hint = "Run the portal as a role with SELECT/INSERT/UPDATE/DELETE rights only (docs/audit-trail.md)."
    if superuser:
        found.append(checks.Warning(
            f"The portal connects to PostgreSQL as {user}, a superuser: it could disable the audit tables' "
            "append-only triggers.", hint=hint, id="compliance.W101",
        ))
    elif owned:
        found.append(checks.Warning(
            f"The portal's database role {user} owns the audit tables ({', '.join(owned[:4])}"
            f"{', …' if len(owned) > 4 else ''}): it could drop their append-only triggers.",
            hint=hint, id="compliance.W102",
        ))
    if maintainer and not superuser:
        found.append(checks.Warning(
            f"The portal's database role {user} is a member of {MAINTENANCE_ROLE}: it can switch the audit "
            "tables' protection off.", hint=hint, id="compliance.W103",
        ))
    return found


@checks.register(checks.Tags.database)
def check_runtime_database_role(app_configs=None, databases=None, **kwargs):
    if not databases or getattr(settings, "TESTING", False) or not apps.ready:
        return []
    found = []
    for alias in databases:
        found.extend(runtime_role_problems(connections[alias]))
    return found
