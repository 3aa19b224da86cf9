#!/usr/bin/env python
import os
import secrets
import sys

# Commands that only read the models and migrations: they never sign, serve or store anything, so
# they run without the deployment's secret key (a throw-away one is used for this process only).
OFFLINE_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate", "generate_audit_keys"}


def _throw_away_audit_keys() -> None:
    if not (os.environ.get("PORTAL_AUDIT_CHAIN_KEY") or os.environ.get("PORTAL_AUDIT_CHAIN_KEY_FILE")):
        os.environ["PORTAL_AUDIT_CHAIN_KEY"] = secrets.token_urlsafe(48)
    if not (os.environ.get("PORTAL_AUDIT_SIGNING_KEY") or os.environ.get("PORTAL_AUDIT_SIGNING_KEY_FILE")):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        os.environ["PORTAL_AUDIT_SIGNING_KEY"] = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def read_env_file() -> None:
    """Settings from an optional ``.env`` file (``PORTAL_ENV_FILE``, default ``.env`` next to this
    file), e.g. ``DJANGO_DEBUG=1`` on a development machine (``make run`` writes one). Variables
    already set in the environment win."""
    path = os.environ.get("PORTAL_ENV_FILE") or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".env")
    if os.path.isfile(path):
        import environ

        environ.Env.read_env(path)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    read_env_file()
    if len(sys.argv) > 1 and sys.argv[1] in OFFLINE_COMMANDS and not (
        os.environ.get("DJANGO_SECRET_KEY") or os.environ.get("DJANGO_SECRET_KEY_FILE")
    ):
        os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    if len(sys.argv) > 1 and sys.argv[1] in OFFLINE_COMMANDS:
        # Nor the audit trail's keys: a throw-away chain key and signing key for this process only.
        _throw_away_audit_keys()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
