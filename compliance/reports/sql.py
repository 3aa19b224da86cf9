"""Small database-portable expressions for reports (PostgreSQL in production, SQLite in development).

Reports format in SQL what can be formatted there, so a streamed export does little per row in
Python and the same query can be timed against PostgreSQL's own ``COPY``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Aggregate, CharField, Func, IntegerField, TextField, Value

ISO_UTC_SQLITE = "%Y-%m-%dT%H:%M:%SZ"
ISO_UTC_POSTGRES = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'


class IsoTimestamp(Func):
    """A timestamp as ISO 8601 text in UTC (``2026-01-31T09:15:00Z``), formatted by the database."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra_context):  # SQLite and anything else
        sql, params = compiler.compile(self.source_expressions[0])
        return f"strftime(%s, {sql})", (ISO_UTC_SQLITE, *params)

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"to_char(({sql}) AT TIME ZONE 'UTC', %s)", (*params, ISO_UTC_POSTGRES)


class JsonArrayLength(Func):
    """The length of the JSON array at ``key`` of a JSON column; NULL when it is absent or not an array."""

    output_field = IntegerField()

    def __init__(self, expression, key: str, **extra):
        self.key = key
        super().__init__(expression, **extra)

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        path = f"$.{self.key}"
        return (
            f"CASE WHEN json_type({sql}, %s) = 'array' THEN json_array_length({sql}, %s) END",
            (*params, path, *params, path),
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"CASE WHEN jsonb_typeof(({sql}) -> %s) = 'array' THEN jsonb_array_length(({sql}) -> %s) END",
            (*params, self.key, *params, self.key),
        )


class GroupConcat(Aggregate):
    """SQLite's ``group_concat(expression, delimiter)``."""

    function = "GROUP_CONCAT"
    output_field = TextField()

    def __init__(self, expression, delimiter: str, **extra):
        super().__init__(expression, Value(delimiter), **extra)


def string_agg(expression, delimiter: str, order_by: Sequence[str] = (), filter=None):
    """Join text values of a group with ``delimiter``, in ``order_by`` order.

    PostgreSQL uses ``STRING_AGG(... ORDER BY ...)``. SQLite (development and the quick test run)
    uses ``group_concat``, which joins in scan order (in practice the rows' primary-key order, i.e.
    creation order). ``filter`` is a ``Q`` restricting the aggregated rows (e.g. skip the NULL row
    a LEFT JOIN yields for a parent without children).
    """
    if connection.vendor == "postgresql":
        from django.contrib.postgres.aggregates import StringAgg

        return StringAgg(
            expression, delimiter=delimiter, order_by=tuple(order_by), filter=filter, output_field=TextField()
        )
    return GroupConcat(expression, delimiter, filter=filter)


# In the four functions below ``sql`` is the column reference Django compiled, never user input.


class JsonObjectText(Func):
    """A flat JSON object as ``key=value, key=value`` text (keys sorted), formatted by the database."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(SELECT group_concat(k || '=' || v, ', ') FROM (SELECT key AS k, value AS v "  # noqa: S608  (sql is Django's compiled column)
            f"FROM json_each(CASE WHEN json_type({sql}) = 'object' THEN {sql} END) ORDER BY key))",
            (*params, *params),
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(SELECT string_agg(key || '=' || value, ', ' ORDER BY key) FROM jsonb_each_text("  # noqa: S608  (sql is Django's compiled column)
            f"CASE WHEN jsonb_typeof({sql}) = 'object' THEN {sql} END))",
            (*params, *params),
        )


class JsonArrayText(Func):
    """A JSON array of strings as ``a; b; c`` text (in array order), formatted by the database."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            "(SELECT group_concat(value, '; ') FROM json_each("  # noqa: S608  (sql is Django's compiled column)
            f"CASE WHEN json_type({sql}) = 'array' THEN {sql} END))",
            (*params, *params),
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(SELECT string_agg(value, '; ' ORDER BY ordinality) FROM jsonb_array_elements_text("  # noqa: S608  (sql is Django's compiled column)
            f"CASE WHEN jsonb_typeof({sql}) = 'array' THEN {sql} END) WITH ORDINALITY)",
            (*params, *params),
        )
