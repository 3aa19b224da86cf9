"""Recompute the tamper-evidence chain and report the first broken link (exit status 1 when broken)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from compliance.audit.chain import seal_chain, verify_chain


class Command(BaseCommand):
    help = "Verify the audit hash chain; report the first broken link and old entries that are not linked."

    def add_arguments(self, parser):
        parser.add_argument("--seal", action="store_true", help="Link pending entries before verifying.")
        parser.add_argument(
            "--grace-minutes", type=int, default=None,
            help="Report unlinked entries older than this (default PORTAL_AUDIT_CHAIN_GRACE_MINUTES).",
        )

    def handle(self, *args, seal=False, grace_minutes=None, **options):
        if seal:
            linked = seal_chain()
            self.stdout.write(f"Linked {linked} pending entries.")
        grace = timedelta(minutes=grace_minutes) if grace_minutes is not None else None
        report = verify_chain(grace=grace)
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))
