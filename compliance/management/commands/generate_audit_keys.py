"""Print a new chain key and Ed25519 signing key for the audit trail (nothing is stored)."""

from django.core.management.base import BaseCommand

from compliance.audit.keys import generate_keys


class Command(BaseCommand):
    help = (
        "Print a fresh PORTAL_AUDIT_CHAIN_KEY and PORTAL_AUDIT_SIGNING_KEY (Ed25519, PEM) with the public key "
        "and its fingerprint. Store the two secrets outside the database (files read with the _FILE variables)."
    )

    def handle(self, *args, **options):
        keys = generate_keys()
        self.stdout.write(
            "# PORTAL_AUDIT_CHAIN_KEY (keep secret; after a rotation keep the old one in "
            "PORTAL_AUDIT_CHAIN_RETIRED_KEYS)\n"
            f"{keys['chain_key']}\n\n"
            "# PORTAL_AUDIT_SIGNING_KEY (keep secret)\n"
            f"{keys['signing_key_pem']}\n"
            "# The public key, for auditors (also shown on the monitoring page)\n"
            f"{keys['public_key_pem']}\n"
            f"# Its SHA-256 fingerprint: {keys['fingerprint']}\n"
        )
