"""PostgreSQL triggers that make audit tables append-only (used by migrations).

UPDATE and DELETE (row triggers) and TRUNCATE (statement trigger) raise an exception. The only way
past them is the maintenance switch — ``SET portal.audit_maintenance = on`` — and it is honoured only
for members of the ``portal_audit_maintenance`` role (and superusers, who could drop the triggers
anyway): the test suite and the benchmarks, which flush tables and drop test databases. The
application's runtime role must be neither (docs/audit-trail.md, "Two database roles"); a system
check warns when it owns the audit tables. SQLite has no such protection; production runs on PostgreSQL.
"""

MAINTENANCE_ROLE = "portal_audit_maintenance"

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION portal_refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('portal.audit_maintenance', true), '') = 'on'
       AND EXISTS (SELECT 1 FROM pg_roles
                   WHERE rolname = '{MAINTENANCE_ROLE}' AND pg_has_role(current_user, oid, 'MEMBER'))
       OR coalesce(current_setting('portal.audit_maintenance', true), '') = 'on'
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit evidence is append-only: % on table % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit entries, decision records and chain links are never changed or removed '
                     '(portal.audit_maintenance is honoured only for the {MAINTENANCE_ROLE} role).';
END;
$$;
""".replace("{MAINTENANCE_ROLE}", MAINTENANCE_ROLE)

ROLE_SQL = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{MAINTENANCE_ROLE}') THEN
        CREATE ROLE {MAINTENANCE_ROLE} NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'Could not create role {MAINTENANCE_ROLE} (no CREATEROLE): only superusers can use the '
                 'audit maintenance switch until a database administrator creates it.';
END;
$$;
""".replace("{MAINTENANCE_ROLE}", MAINTENANCE_ROLE)


def replace_function(apps, schema_editor):
    """RunPython: install the maintenance-role-aware trigger function (PostgreSQL only)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(ROLE_SQL, params=None)
    schema_editor.execute(FUNCTION_SQL, params=None)


def install_sql(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS portal_append_only_rows ON {table};
CREATE TRIGGER portal_append_only_rows BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION portal_refuse_audit_change();
DROP TRIGGER IF EXISTS portal_append_only_truncate ON {table};
CREATE TRIGGER portal_append_only_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_audit_change();
"""


def uninstall_sql(table: str) -> str:
    return f"""
DROP TRIGGER IF EXISTS portal_append_only_rows ON {table};
DROP TRIGGER IF EXISTS portal_append_only_truncate ON {table};
"""


def installer(*tables: str, with_function: bool = False):
    """A pair of RunPython functions (forward, backward) that act on PostgreSQL only."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        if with_function:
            schema_editor.execute(FUNCTION_SQL, params=None)
        for table in tables:
            schema_editor.execute(install_sql(table), params=None)

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            schema_editor.execute(uninstall_sql(table), params=None)

    return forward, backward
