#!/bin/sh
# The two database roles of docs/audit-trail.md ("Two database roles"), created once by the image's
# superuser when the trial's database volume is new. Passwords come from the compose secrets.
set -eu
owner_password=$(cat /run/secrets/pg_owner_password)
runtime_password=$(cat /run/secrets/pg_runtime_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE portal_owner LOGIN PASSWORD '$owner_password';
CREATE ROLE portal_runtime LOGIN PASSWORD '$runtime_password';
CREATE ROLE portal_audit_maintenance NOLOGIN;
CREATE DATABASE portal OWNER portal_owner;
SQL
# Tables and sequences the owner creates later (every migration) are granted to the runtime role.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname portal <<SQL
GRANT USAGE ON SCHEMA public TO portal_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE portal_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO portal_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE portal_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO portal_runtime;
SQL
