"""Verify the audit trail: every link, forged or unlinked rows, replayed state, and signed checkpoints
(the portal's own, a checkpoint file an auditor kept, or an evidence bundle). Exit status 1 on any
problem, naming the first and counting every kind."""

from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from compliance.audit import checkpoints
from compliance.audit.bundle import compare_bundle_with_database
from compliance.audit.services import seal_and_checkpoint
from compliance.audit.verify import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the tamper-evident audit trail and report every problem by kind (exit status 1 when any). "
        "Compares the chain with the signed checkpoints under PORTAL_AUDIT_CHECKPOINT_DIR, and with "
        "--checkpoint/--bundle files kept elsewhere."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seal", action="store_true", help="Link pending entries (and sign a checkpoint) first.")
        parser.add_argument(
            "--grace-minutes", type=int, default=None,
            help="Report unlinked entries older than this (default PORTAL_AUDIT_CHAIN_GRACE_MINUTES).",
        )
        parser.add_argument(
            "--checkpoint", action="append", default=[], metavar="FILE", type=Path,
            help="A checkpoint file (JSON lines, e.g. from the daily e-mail) to compare the chain with. Repeatable.",
        )
        parser.add_argument(
            "--bundle", action="append", default=[], metavar="FILE.zip", type=Path,
            help="An evidence bundle: verify it offline, then check the database still holds its chain segment.",
        )

    def handle(self, *args, seal=False, grace_minutes=None, checkpoint=(), bundle=(), **options):
        if seal:
            linked = seal_and_checkpoint(force_checkpoint=True)
            self.stdout.write(f"Linked {linked} pending entries.")
        grace = timedelta(minutes=grace_minutes) if grace_minutes is not None else None
        items = checkpoints.read_all()
        for path in checkpoint:
            items.extend(checkpoints.read_file(path))
        report = verify_chain(grace=grace, checkpoints=items)
        for path in bundle:
            compare_bundle_with_database(path, report)
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))
