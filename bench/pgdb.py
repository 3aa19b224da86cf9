"""The benchmarks' own PostgreSQL databases: created on first use, never the suite's or production's."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def ensure_database(database_url: str) -> None:
    """Create the database ``database_url`` names if it does not exist yet (connecting to ``postgres``)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    admin = urlunsplit((scheme, parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
