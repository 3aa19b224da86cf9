#!/usr/bin/env python3
"""The race run: at least 1,000 iterations through the services on PostgreSQL with real threads,
across the scenarios of tests/gate/race_scenarios.py (quorum, approve vs reject, cancel, expiry,
supersede, duplicate submits, checks vs approve, a run's report straddling the approval's expiry).
Prints iterations per scenario, deadlocks, unexpected errors, invariant violations and refusals
recorded (every refusal must leave its row):

    .venv/bin/python bench/races.py [--database postgres://postgres@127.0.0.1:5432/faults_races]
        [--iterations 1040]

The database (the benchmark's own) is dropped, created and migrated at each run. Not part of the
test run (a slice of it is: tests/gate/test_race_slice.py). About 5 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/faults_races")
    parser.add_argument("--iterations", type=int, default=1040, help="in total, spread over the scenarios")
    args = parser.parse_args()
    recreate_database(args.database)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings", "DJANGO_DEBUG": "1", "DATABASE_URL": args.database,
        # Background work (notifications, audit sealing) is published to an in-memory broker and left
        # there: the races are in the services' transactions, not in the e-mails that follow them.
        "CELERY_TASK_ALWAYS_EAGER": "0", "CELERY_BROKER_URL": "memory://",
        "PORTAL_VAR_DIR": tempfile.mkdtemp(prefix="faults-races-"),
    })
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)  # the alerts of the set-up and the refusals' log lines
    from django.core.management import call_command

    from tests.gate.race_scenarios import Scenarios, Tally

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    scenarios, tally = Scenarios("bench"), Tally()
    rounds = -(-args.iterations // len(Scenarios.names))
    for _ in range(rounds):
        for name in Scenarios.names:
            scenarios.play(name, tally)
    wall = time.monotonic() - started
    total = sum(tally.iterations.values())
    print(f"iterations: {total} in {wall:.0f} s ({rounds} rounds of {len(Scenarios.names)} scenarios, "
          f"2 to 4 threads each)")
    for name in Scenarios.names:
        each = tally.seconds[name] / max(1, tally.iterations[name])
        print(f"  {name:26} {tally.iterations[name]:5d}  {each:.3f} s each")
    print(f"deadlocks: {tally.deadlocks}")
    print(f"unexpected errors: {len(tally.errors)}" + "".join(f"\n  {e}" for e in tally.errors[:10]))
    print(f"invariant violations: {len(tally.violations)}" + "".join(f"\n  {v}" for v in tally.violations[:20]))
    refused = sum(tally.refusals.values())
    print(f"refusals: {refused}, recorded: {tally.recorded} ({dict(tally.refusals.most_common())})")
    return 1 if (tally.deadlocks or tally.errors or tally.violations) else 0


if __name__ == "__main__":
    sys.exit(main())
