"""Publishing background work to the broker without ever holding up the caller.

Work is published after the commit that makes it (a decision's delivery, its notifications, an audit
seal). When the broker is down or hung, Celery's default publish retries its connection and waits on
sockets without a limit: seconds added to every decision. ``publish`` makes one attempt on its own
connection, with a short connect and socket timeout (``PORTAL_ENQUEUE_TIMEOUT_SECONDS``) and no
retry, and returns False on failure: the row stays in its table and the periodic sweeper (which runs
when the broker is back) enqueues it again. Nothing is lost, nothing waits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def publish_options() -> dict[str, Any]:
    """How the one-shot publish connection is opened: no retry, short timeouts (broker transport
    options merged over the configured ones)."""
    timeout = settings.PORTAL_ENQUEUE_TIMEOUT_SECONDS
    transport = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    transport.update(
        max_retries=0,  # kombu: one connection attempt, no reconnect loop
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry_on_timeout=False,
    )
    return {"connect_timeout": timeout, "transport_options": transport}


def publish(task, args: Sequence[Any] = (), *, countdown: float | None = None, what: str = "") -> bool:
    """Publish ``task`` (a task or a signature) once, fast; False when the broker did not take it.

    Never raises for a broker problem: callers keep the work in their table for the sweeper.
    """
    from portal.celery import app

    try:
        if app.conf.task_always_eager:  # tests and the embedded default run tasks inline
            task.apply_async(tuple(args), countdown=countdown)
            return True
        options = publish_options()
        with app.connection_for_write(
            connect_timeout=options["connect_timeout"], transport_options=options["transport_options"]
        ) as connection:
            task.apply_async(tuple(args), countdown=countdown, connection=connection, retry=False)
        return True
    except Exception as exc:  # noqa: BLE001 - the broker being down must not fail the caller
        logger.warning(
            "Could not publish %s (%s); the sweeper will enqueue it",
            what or _name(task),
            type(exc).__name__,
            exc_info=app.conf.task_always_eager,
        )
        return False


def publish_on_commit(task, args: Sequence[Any] = (), *, countdown: float | None = None, what: str = "") -> None:
    """``publish`` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: publish(task, args, countdown=countdown, what=what))


def _name(task) -> str:
    return getattr(task, "name", None) or getattr(task, "task", None) or repr(task)
