"""The one outbox mechanism of the portal's background work: decisions delivered to CI, notifications
and inbound webhook processing each keep their rows in their own table and describe them with an
``Outbox`` (which model, which fields, which states, which lease, which retry policy).

* **Claim**: one conditional UPDATE, by id, from a claimable state; it takes a lease and counts the
  attempt. Two workers holding the same id: one wins, the other finds nothing to claim. A worker
  that dies mid-attempt leaves a row whose lease ends, and the row becomes claimable again.
  The lease is held one of two ways, as the table's schema allows:

  - *due-time lease* (``due_field``, no ``claimed`` state): the row keeps its state and the claim
    pushes its due time to the end of the lease;
  - *claimed state* (``claimed`` and ``claimed_at_field``): the claim moves the row to ``claimed``
    and stamps when; the lease ends ``lease`` after that stamp.

* **Retry**: the next attempt is the policy's capped exponential backoff with jitter, a
  ``Retry-After`` as a floor (``portal.retry.RetryPolicy``, each caller's from settings).
* **Sweep**: the ids of rows that are due (or that the caller says are overdue) or whose lease has
  ended, for the caller to enqueue again (safe to run twice: the claim decides who attempts).
* **Heartbeat**: while an attempt runs, ``heartbeat`` renews its lease every third of it from a
  thread (only while the attempt still holds the row: the claim counted it, and no later claim has
  counted another). A short lease then serves both ends: an attempt may run as long as it needs, and
  a worker that died leaves its row claimable one lease after its last renewal. An attempt that
  cannot renew (another claim took the row, or the database did not answer for two thirds of the
  lease) is told to stop (``on_lost``) before its lease ends, so two attempts never overlap.
* **Give up**: the row is marked failed (by a conditional UPDATE, or on a row the caller holds
  locked and saves) and the caller's alert runs once the failure is committed.

The mechanism knows no model: callers pass the model class and field names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.retry import RetryPolicy

logger = logging.getLogger(__name__)

Lease = timedelta | Callable[[], timedelta]
Policy = RetryPolicy | Callable[[], RetryPolicy]


@dataclass(frozen=True)
class Outbox:
    """How one table of background work is claimed, retried, swept and given up on."""

    model: type[models.Model]
    ready: tuple[str, ...]  # states a row may be claimed from at once (when due, with a due field)
    failed: str  # the state a row is given up in
    lease: Lease  # how long a claimed attempt may run before its row may be claimed again
    policy: Policy  # the retry rule (a callable is read at each use, e.g. from settings)
    state_field: str = "status"
    attempts_field: str = "attempts"
    due_field: str | None = None  # when the row may next be attempted (and, while claimed, its lease end)
    claimed: str | None = None  # the state of a row while an attempt runs
    claimed_at_field: str | None = None  # when the running attempt claimed the row
    failed_at_field: str | None = None  # stamped when the row is given up

    def __post_init__(self) -> None:
        if not self.ready:
            raise ValueError("An outbox needs at least one claimable state.")
        if self.claimed is None and self.due_field is None:
            raise ValueError("An outbox holds its lease in a due field or in a claimed state; it has neither.")
        if self.claimed is not None and self.claimed_at_field is None:
            raise ValueError("An outbox with a claimed state needs the field that stamps the claim.")
        if self.claimed is not None and self.claimed in self.ready:
            raise ValueError("The claimed state cannot also be a claimable state.")

    # --- the parts ------------------------------------------------------------------------------

    def rows(self) -> models.QuerySet:
        return self.model._default_manager.all()

    def lease_duration(self) -> timedelta:
        return self.lease() if callable(self.lease) else self.lease

    def retry_policy(self) -> RetryPolicy:
        return self.policy() if callable(self.policy) else self.policy

    def live_states(self) -> tuple[str, ...]:
        """States of a row that has not ended (ready, or claimed)."""
        return self.ready + ((self.claimed,) if self.claimed is not None else ())

    def lease_expired(self, now: datetime) -> Q | None:
        """Claimed rows whose lease has ended (their worker is gone); None with a due-time lease,
        where an ended lease is simply a row that is due."""
        if self.claimed is None:
            return None
        return Q(**{self.state_field: self.claimed, f"{self.claimed_at_field}__lte": now - self.lease_duration()})

    def claimable(self, now: datetime) -> Q:
        ready = Q(**{f"{self.state_field}__in": self.ready})
        if self.due_field is not None:
            ready &= Q(**{f"{self.due_field}__lte": now})
        expired = self.lease_expired(now)
        return ready if expired is None else ready | expired

    # --- claim ----------------------------------------------------------------------------------

    def claim(self, pk: Any, *, now: datetime | None = None) -> bool:
        """Claim the row ``pk`` for one attempt: False when it is not claimable (not due, held by a
        live lease, ended, gone). The attempt is counted in ``attempts_field``."""
        now = now or timezone.now()
        values: dict[str, Any] = {self.attempts_field: F(self.attempts_field) + 1}
        if self.claimed is not None:
            values[self.state_field] = self.claimed
            values[self.claimed_at_field] = now
        else:
            values[self.due_field] = now + self.lease_duration()
        return bool(self.rows().filter(self.claimable(now), pk=pk).update(**values))

    def renew(self, pk: Any, *, attempts: int, now: datetime | None = None) -> bool:
        """Extend the lease of the attempt that was counted as number ``attempts`` of row ``pk``; False
        when that attempt no longer holds the row (a later claim counted another, or the row ended)."""
        now = now or timezone.now()
        held = self.rows().filter(pk=pk, **{self.attempts_field: attempts})
        if self.claimed is not None:
            return bool(held.filter(**{self.state_field: self.claimed}).update(**{self.claimed_at_field: now}))
        return bool(held.filter(**{f"{self.state_field}__in": self.ready})
                    .update(**{self.due_field: now + self.lease_duration()}))

    def heartbeat(self, pk: Any, *, attempts: int, on_lost: Callable[[], Any]) -> Heartbeat:
        """``with outbox.heartbeat(pk, attempts=n, on_lost=stop):`` keeps the lease of a running attempt."""
        return Heartbeat(self, pk, attempts=attempts, on_lost=on_lost)

    def release(self, pk: Any, *, to: str, **values: Any) -> bool:
        """Hand a claimed row back in state ``to`` (with ``values``), only if it is still claimed."""
        if self.claimed is None:
            raise ValueError("A row under a due-time lease is released by setting its next due time.")
        if to not in self.ready:
            raise ValueError(f"{to!r} is not a claimable state of this outbox.")
        return bool(self.rows().filter(**{"pk": pk, self.state_field: self.claimed})
                    .update(**{self.state_field: to}, **values))

    # --- retry ----------------------------------------------------------------------------------

    def retry_delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``attempts`` failed attempts (``retry_after`` is a floor)."""
        return self.retry_policy().backoff_seconds(attempts, retry_after)

    def next_attempt(self, attempts: int, *, now: datetime, retry_after: float | None = None) -> tuple[datetime, float]:
        """When the next attempt is due, and the delay until then."""
        delay = self.retry_delay(attempts, retry_after)
        return now + timedelta(seconds=delay), delay

    def exhausted(self, attempts: int) -> bool:
        return self.retry_policy().exhausted(attempts)

    # --- sweep ----------------------------------------------------------------------------------

    def due_ids(self, *, now: datetime | None = None, overdue: Q | None = None,
                order_by: Iterable[str] = (), limit: int = 500) -> list:
        """Ids of the rows to enqueue again: due ones (or, when ``overdue`` is given, those it selects
        among the ready ones) and claimed ones whose lease has ended."""
        now = now or timezone.now()
        if overdue is None:
            condition = self.claimable(now)
        else:
            expired = self.lease_expired(now)
            condition = overdue if expired is None else overdue | expired
        rows = self.rows().filter(condition)
        order_by = tuple(order_by)
        if order_by:
            rows = rows.order_by(*order_by)
        return list(rows.values_list("pk", flat=True)[:limit])

    def sweep(self, *, enqueue: Callable[[Any], Any], now: datetime | None = None, overdue: Q | None = None,
              order_by: Iterable[str] = (), limit: int = 500) -> int:
        """Enqueue every row ``due_ids`` finds; returns how many."""
        ids = self.due_ids(now=now, overdue=overdue, order_by=order_by, limit=limit)
        for pk in ids:
            enqueue(pk)
        return len(ids)

    # --- give up --------------------------------------------------------------------------------

    def _given_up(self, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {self.state_field: self.failed}
        if self.failed_at_field is not None:
            values[self.failed_at_field] = now
        return values

    def give_up(self, pk: Any, *, now: datetime | None = None, alert: Callable[[], Any] | None = None,
                **values: Any) -> bool:
        """Mark the row failed with one conditional UPDATE (only from a live state); ``alert`` runs
        once that is committed. False when the row had already ended."""
        updated = self.rows().filter(**{"pk": pk, f"{self.state_field}__in": self.live_states()}).update(
            **self._given_up(now or timezone.now()), **values
        )
        if updated and alert is not None:
            transaction.on_commit(alert)
        return bool(updated)

    def give_up_row(self, row: models.Model, *, now: datetime | None = None,
                    alert: Callable[[], Any] | None = None) -> None:
        """Mark a row the caller holds locked as failed (the caller saves it, so the model's save
        hooks, e.g. the audit trail, see the change); ``alert`` runs once that is committed."""
        for name, value in self._given_up(now or timezone.now()).items():
            setattr(row, name, value)
        if alert is not None:
            transaction.on_commit(alert)


class Heartbeat:
    """Renews one attempt's lease every third of it, from a thread, while the ``with`` block runs.

    ``lost`` tells afterwards that the lease could not be kept and ``on_lost`` was called: another
    claim took the row (at once), or renewals failed for two thirds of the lease (the database did
    not answer), which still leaves a third of the lease for the attempt to stop in.
    """

    def __init__(self, outbox: Outbox, pk: Any, *, attempts: int, on_lost: Callable[[], Any]) -> None:
        self.outbox, self.pk, self.attempts, self.on_lost = outbox, pk, attempts, on_lost
        self.lost = False
        self.renewals = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.pk}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        lease = self.outbox.lease_duration().total_seconds()
        every = lease / 3
        renewed = time.monotonic()
        try:
            while not self._stop.wait(every):
                try:
                    held: bool | None = self.outbox.renew(self.pk, attempts=self.attempts)
                except DatabaseError as exc:
                    logger.warning("Could not renew the lease of %s %s (%s)", self.outbox.model.__name__, self.pk,
                                   type(exc).__name__)
                    held = None
                if held:
                    renewed = time.monotonic()
                    self.renewals += 1
                    continue
                if held is False or time.monotonic() - renewed >= lease - every:
                    if self._stop.is_set():  # the attempt ended meanwhile: nothing to stop
                        return
                    self.lost = True
                    self.on_lost()
                    return
        finally:
            connections.close_all()  # this thread's own connections
