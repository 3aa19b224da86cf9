"""PostgreSQL triggers that make audit tables append-only (used by migrations).

UPDATE and DELETE (row triggers) and TRUNCATE (statement trigger) raise an exception unless the
session sets ``portal.audit_maintenance = on`` — which only the test suite does (it flushes tables
and drops test databases). SQLite has no such protection; production runs on PostgreSQL.
"""

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION portal_refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('portal.audit_maintenance', true), '') = 'on' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit evidence is append-only: % on table % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit entries, decision records and chain links are never changed or removed.';
END;
$$;
"""


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
