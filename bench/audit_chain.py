"""Benchmark: the keyed audit chain on 1,000,000 links — write-time tagging, sealing, verification.

Not part of the test run. Needs a local PostgreSQL (loopback only) and uses only its own database
(default ``portal_bench_audit``, dropped and re-created on every run: the chain must start empty).

    .venv/bin/python bench/audit_chain.py                    # 1,000,000 audit entries
    .venv/bin/python bench/audit_chain.py --links 100000

What it measures, each in the same run against a baseline:
- ``tagging``: the extra cost of a portal write of an audit entry (the write-time tag, in the same
  transaction) — 2,000 ``LogEntry.objects.create`` calls with the chain registered, against the same
  calls with the tag handler disconnected; medians per write and the ratio.
- ``load``: N audit entries and their tags written in bulk (what N portal writes leave behind), and
  PostgreSQL's ``COPY`` of the same rows into a scratch table as the baseline.
- ``seal``: ``seal_chain()`` linking all N rows (HMAC + public hash per row, checks each tag),
  throughput in links/s, against COPY's rows/s.
- ``verify``: ``verify_chain()`` over the whole chain (every keyed hash, public hash and the
  checkpoint), in a fresh subprocess so its peak RSS (``VmHWM``) is verification alone.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pgdb import ensure_database  # bench/ is the script's directory, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/portal_bench_audit"
BATCH = 10_000


def _setup_django(database_url: str) -> None:
    host = urlsplit(database_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to benchmark against a non-loopback database host {host!r}")
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # development audit keys; queries are not kept (see below)
    os.environ.setdefault("PORTAL_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("PORTAL_AUDIT_CHECKPOINT_DIR", str(ROOT / "var" / "bench" / "audit-checkpoints-bench"))
    os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")
    os.environ.setdefault("PORTAL_AUDIT_CHAIN_SEAL_ON_COMMIT", "0")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import reset_queries
    from django.db.backends.signals import connection_created

    connection_created.connect(lambda **kwargs: reset_queries())


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _recreate(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    ensure_database(database_url)


def _entries(count: int, content_type_id: int, start: int):
    from auditlog.models import LogEntry
    from django.utils import timezone

    now = timezone.now()
    return [
        LogEntry(content_type_id=content_type_id, object_pk=str(start + i), object_id=start + i,
                 object_repr=f"Deployment request #{start + i}", action=LogEntry.Action.UPDATE,
                 changes={"status": ["pending_approval", "approved"], "decided_at": ["None", str(now)]},
                 timestamp=now)
        for i in range(count)
    ]


def measure_tagging(samples: int = 2000) -> dict:
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction
    from django.db.models.signals import post_save

    from compliance.audit import chain

    content_type = ContentType.objects.get_for_model(LogEntry)

    def timed() -> list[float]:
        durations = []
        for i in range(samples):
            entry = _entries(1, content_type.pk, 10_000_000 + i)[0]
            started = time.perf_counter()
            with transaction.atomic():
                entry.save()
            durations.append(time.perf_counter() - started)
        return durations

    tagged = timed()
    first_plain = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first()
    post_save.disconnect(sender=LogEntry, dispatch_uid="audit_chain.auditlog.logentry")
    try:
        plain = timed()
    finally:
        chain.register_chained_model(LogEntry)
    # The untagged samples would rightly read as forged inserts: remove them (the bench's own database).
    with connection.cursor() as cursor:
        cursor.execute("SET portal.audit_maintenance = on")
        cursor.execute("DELETE FROM auditlog_logentry WHERE id > %s", [first_plain])
        cursor.execute("SET portal.audit_maintenance = off")
    with_tag, without = statistics.median(tagged) * 1000, statistics.median(plain) * 1000
    return {"tagged_ms": with_tag, "untagged_ms": without, "ratio": with_tag / without}


def load(links: int) -> dict:
    """N audit entries with valid write-time tags, as N portal writes would leave them; then the
    same rows through COPY into a scratch table (the baseline)."""
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    from compliance.audit import chain
    from compliance.audit.keys import current_chain_key
    from compliance.models import ChainTag

    entry = chain.chained_model("auditlog.logentry")
    key = current_chain_key()
    content_type = ContentType.objects.get_for_model(LogEntry)
    started = time.perf_counter()
    for start in range(0, links, BATCH):
        with transaction.atomic():
            # The tags are made from the rows in memory (a portal write re-reads its row first; the
            # same values here, which the sealer checks: a wrong tag would show as a forged insert).
            created = LogEntry.objects.bulk_create(_entries(min(BATCH, links - start), content_type.pk, start))
            ChainTag.objects.bulk_create([
                ChainTag(model_label=entry.label, object_id=row.pk, key_id=key.key_id,
                         tag=chain.write_tag(key.key_id, entry.label, row.pk, entry.row_digest(row)))
                for row in created
            ])
    load_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE copy_baseline (LIKE auditlog_logentry INCLUDING DEFAULTS)")
        buffer = io.StringIO()
    raw = connection.connection
    with raw.cursor() as pg:
        with pg.copy("COPY (SELECT * FROM auditlog_logentry) TO STDOUT") as copy:
            for data in copy:
                buffer.write(bytes(data).decode())
        payload = buffer.getvalue().encode()
        started = time.perf_counter()
        with pg.copy("COPY copy_baseline FROM STDIN") as copy:
            for offset in range(0, len(payload), 1 << 20):
                copy.write(payload[offset:offset + (1 << 20)])
        copy_seconds = time.perf_counter() - started
    return {"load_s": load_seconds, "copy_s": copy_seconds, "copy_rows_per_s": LogEntry.objects.count() / copy_seconds}


def seal() -> dict:
    from compliance.audit.chain import seal_chain
    from compliance.audit.checkpoints import record_checkpoint

    started = time.perf_counter()
    linked = seal_chain()
    seconds = time.perf_counter() - started
    record_checkpoint(force=True)
    from compliance.models import ForgedEntry

    forged = ForgedEntry.objects.count()
    if forged:
        raise SystemExit(f"{forged} rows were refused as forged: the bench's tags do not match the stored rows")
    return {"linked": linked, "seal_s": seconds, "links_per_s": linked / seconds}


def verify_in_subprocess(database_url: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--database-url", database_url, "--verify-only"],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def verify_only() -> None:
    from compliance.audit.verify import verify_chain

    started = time.perf_counter()
    report = verify_chain()
    seconds = time.perf_counter() - started
    print(json.dumps({"ok": report.ok, "links": report.links_checked, "verify_s": seconds,
                      "peak_rss_mb": _peak_rss_kb() / 1024, "summary": report.summary()[:300]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--verify-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_only:
        _setup_django(args.database_url)
        verify_only()
        return
    _recreate(args.database_url)
    _setup_django(args.database_url)
    import shutil

    from django.conf import settings
    from django.core.management import call_command

    shutil.rmtree(settings.PORTAL_AUDIT_CHECKPOINT_DIR, ignore_errors=True)
    call_command("migrate", verbosity=0)
    tagging = measure_tagging()
    print(f"tagging: median write of an audit entry {tagging['tagged_ms']:.3f} ms with its write-time tag, "
          f"{tagging['untagged_ms']:.3f} ms without ({tagging['ratio']:.2f}x)", flush=True)
    from compliance.audit.chain import seal_chain

    seal_chain()  # the tagging samples
    loaded = load(args.links)
    print(f"load: {args.links:,} audit entries with tags in {loaded['load_s']:.1f} s; "
          f"COPY of the same rows {loaded['copy_s']:.1f} s ({loaded['copy_rows_per_s']:,.0f} rows/s)", flush=True)
    sealed = seal()
    print(f"seal: {sealed['linked']:,} links in {sealed['seal_s']:.1f} s = {sealed['links_per_s']:,.0f} links/s "
          f"({loaded['copy_rows_per_s'] / sealed['links_per_s']:.1f}x slower than COPY's rows/s)", flush=True)
    verified = verify_in_subprocess(args.database_url)
    print(f"verify: {verified['links']:,} links in {verified['verify_s']:.1f} s "
          f"({verified['links'] / verified['verify_s']:,.0f} links/s), peak RSS {verified['peak_rss_mb']:.0f} MB, "
          f"ok={verified['ok']}", flush=True)
    if not verified["ok"]:
        print(verified["summary"])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
