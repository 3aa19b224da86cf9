"""State replay: the state that the (chained) audit entries describe, compared with the rows.

Deployment requests and executions are not chained themselves — they change as a request moves
through its life — but every change to them writes an audit entry, and those entries are chained.
Replaying a row's entries gives the value each watched field should have now; a row whose current
value disagrees (``UPDATE deployments_execution SET authorized = true`` by SQL), or that has no
audit entry at all (a row inserted by SQL), is reported as ``state_mismatch``.

``compliance`` never imports ``deployments``: models are registered with ``register_replayed_model``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from auditlog.diff import get_field_value
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models

BATCH = 1000


@dataclass(frozen=True)
class ReplayedModel:
    model: type[models.Model]
    fields: tuple[str, ...]


_replayed: dict[str, ReplayedModel] = {}


def register_replayed_model(model: type[models.Model], *, fields: tuple[str, ...]) -> None:
    """Check ``fields`` of every ``model`` row against the state its audit entries describe."""
    for name in fields:
        model._meta.get_field(name)  # a typo fails at start-up, not silently at verification
    _replayed[model._meta.label_lower] = ReplayedModel(model=model, fields=tuple(fields))


def replayed_models() -> list[ReplayedModel]:
    return list(_replayed.values())


def _comparable(value):
    # As django-auditlog writes values into an entry's changes (non-JSON values by ``str``).
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def current_value(instance: models.Model, name: str):
    use_json = getattr(settings, "AUDITLOG_STORE_JSON_CHANGES", False)
    return _comparable(get_field_value(instance, instance._meta.get_field(name), use_json_for_changes=use_json))


def recorded_state(entries, fields: tuple[str, ...]) -> dict[str, object]:
    """The last value each field was given by the entries (in order), as the entries recorded it."""
    state: dict[str, object] = {}
    for entry in entries:
        changes = entry.changes if isinstance(entry.changes, dict) else {}
        for name in fields:
            change = changes.get(name)
            if isinstance(change, list | tuple) and len(change) == 2:
                state[name] = _comparable(change[1])
    return state


def verify_states(report) -> None:
    for replayed in replayed_models():
        model = replayed.model
        label = model._meta.label_lower
        content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
        last = 0
        while True:
            rows = list(model._base_manager.filter(pk__gt=last).order_by("pk")[:BATCH])
            if not rows:
                break
            last = rows[-1].pk
            entries: dict[str, list[LogEntry]] = {}
            for entry in (
                LogEntry.objects.filter(content_type=content_type, object_pk__in=[str(r.pk) for r in rows])
                .only("object_pk", "changes", "action").order_by("pk")
            ):
                entries.setdefault(entry.object_pk, []).append(entry)
            for row in rows:
                report.states_replayed += 1
                _compare(report, label, row, replayed.fields, entries.get(str(row.pk), []))


def _compare(report, label: str, row, fields: tuple[str, ...], entries: list[LogEntry]) -> None:
    where = f"{label} #{row.pk}"
    if not any(entry.action == LogEntry.Action.CREATE for entry in entries):
        report.add("state_mismatch", f"{where} has no audit entry recording its creation: it was not written "
                   "through the portal.")
        return
    state = recorded_state(entries, fields)
    for name in fields:
        if name not in state:
            continue
        try:
            now = current_value(row, name)
        except Exception as exc:  # a value the audit form cannot read: report it, keep going
            report.add("malformed", f"{where}.{name} cannot be read: {exc!r}")
            continue
        if now != state[name]:
            report.add("state_mismatch", f"{where}: {name} is {now!r} but its audit trail says {state[name]!r}: "
                       "the row was changed without going through the portal.")
