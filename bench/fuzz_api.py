#!/usr/bin/env python3
"""The larger fuzz run: schemathesis against the live app (the WSGI application, in-process) for every
operation of the OpenAPI schema, as two callers (an administrator-approver and an engineer), with a
bigger budget than CI's. Prints cases, server errors and mismatches in both directions (schema-valid
requests refused as invalid, schema-invalid ones accepted) and the operations they occurred on:

    .venv/bin/python bench/fuzz_api.py [--examples 50]

It runs tests/api/test_api_schema.py with PORTAL_FUZZ_EXAMPLES and reads the cases it logs. Not
part of the test run; about 2 minutes with the default budget (SQLite, 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=50, help="examples per operation and caller (CI: 4)")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="fuzz-api-")) / "cases.jsonl"
    env = {**os.environ, "PORTAL_FUZZ_EXAMPLES": str(args.examples), "PORTAL_FUZZ_LOG": str(log)}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:logging", "tests/api/test_api_schema.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    cases = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    statuses = Counter(f"{c['status'] // 100}xx" if c["status"] else "none" for c in cases)
    server_errors = [c for c in cases if (c["status"] or 0) >= 500 or any("ST1" in f or "Server error" in f
                                                                         for f in c["failures"])]
    refused_valid = [c for c in cases if any("Schema-valid request rejected" in f for f in c["failures"])]
    accepted_invalid = [c for c in cases if any("API accepted schema-violating request" in f or "Schema-violating"
                                                in f for f in c["failures"])]
    other = [c for c in cases if c["failures"] and c not in server_errors and c not in refused_valid
             and c not in accepted_invalid]
    operations = {c["operation"] for c in cases}
    other_methods = sum(1 for c in cases if not c["operation"].startswith(c.get("sent", "") + " "))
    print(f"cases: {len(cases)} over {len(operations)} operations x 2 callers ({args.examples} examples each, "
          f"shrinking included; {other_methods} of them with an undocumented method); wall {wall:.0f} s")
    print(f"responses: {dict(sorted(statuses.items()))}")
    print(f"server errors: {len(server_errors)}")
    print(f"mismatches: schema-valid refused {len(refused_valid)}, schema-invalid accepted {len(accepted_invalid)}, "
          f"other check failures {len(other)}")
    for label, found in (("refused valid", refused_valid), ("accepted invalid", accepted_invalid), ("other", other),
                         ("server error", server_errors)):
        for operation, count in Counter(f"{c['operation']} ({c['caller']})" for c in found).most_common(10):
            print(f"  {label}: {operation} x{count}")
    print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-500:])
    return 0 if not (server_errors or refused_valid or accepted_invalid or other) else 1


if __name__ == "__main__":
    sys.exit(main())
