"""Request ids and structured logs: one JSON object per line in production, plain text in `make run`.

- ``RequestIdMiddleware`` gives every request an id: the proxy's ``X-Request-ID`` when it is trusted
  (``PORTAL_TRUST_REQUEST_ID``) and a plain token of 8-128 characters, else a new one; it is returned
  in the ``X-Request-ID`` response header and logged once per request with the actor, status and time.
- ``log_context(...)`` binds fields (``deployment_request_id``, ``delivery_id``, ...) to every log line
  written inside it, in the web process and in Celery tasks (the task name and id are bound too).
- ``JsonLineFormatter`` writes each record as one JSON line and drops any field whose name looks like a
  secret (token, secret, password, authorization, cookie, key), whatever the caller passed.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.json import JsonFormatter

__all__ = ["JsonLineFormatter", "LogContextFilter", "RequestIdMiddleware", "current_request_id", "log_context"]

request_logger = logging.getLogger("portal.request")

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{8,128}$")
SECRET_FIELD = re.compile(r"(token|secret|password|passwd|authorization|cookie|api_?key|private|signature)", re.I)

_context: ContextVar[dict | None] = ContextVar("portal_log_context", default=None)
_request: ContextVar[object | None] = ContextVar("portal_log_request", default=None)


def current_request_id() -> str | None:
    return (_context.get() or {}).get("request_id")


@contextmanager
def log_context(**fields) -> Iterator[None]:
    """Every log line written inside carries these fields (nested contexts add to the outer one)."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _actor_of(request) -> str | None:
    """The signed-in person or API token's user, if authentication already ran (never triggers a query)."""
    if request is None:
        return None
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.get_username()


class LogContextFilter(logging.Filter):
    """Copies the bound fields (and the request's actor) onto each record; ``request_id`` is always set."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if not hasattr(record, "actor"):
            actor = _actor_of(_request.get())
            if actor:
                record.actor = actor
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


class JsonLineFormatter(JsonFormatter):
    """``{"time", "level", "logger", "message", ...bound and extra fields}`` on one line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s %(process)d", *args, **kwargs)

    def process_log_record(self, log_record: dict) -> dict:
        if log_record.get("request_id") == "-":
            del log_record["request_id"]
        for key in [k for k in log_record if SECRET_FIELD.search(k)]:
            del log_record[key]
        return super().process_log_record(log_record)


class RequestIdMiddleware:
    """Give each request an id, return it in ``X-Request-ID``, log the request once when it ends."""

    def __init__(self, get_response):
        self.get_response = get_response

    def _request_id(self, request) -> str:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        if settings.PORTAL_TRUST_REQUEST_ID and VALID_REQUEST_ID.match(incoming):
            return incoming
        return uuid.uuid4().hex

    def __call__(self, request):
        request_id = self._request_id(request)
        request.request_id = request_id
        started = time.monotonic()
        context = _context.set({**(_context.get() or {}), "request_id": request_id})
        bound = _request.set(request)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            if not request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):  # static files: not logged
                # The path only: query strings may carry search terms people typed.
                request_logger.info(
                    "%s %s %s", request.method, request.path, response.status_code,
                    extra={"method": request.method, "path": request.path, "status": response.status_code,
                           "duration_ms": round((time.monotonic() - started) * 1000, 1)},
                )
            return response
        finally:
            _request.reset(bound)
            _context.reset(context)


def _bind_task(task_id=None, task=None, **kwargs) -> None:
    _context.set({"task": getattr(task, "name", None), "task_id": task_id})


def _unbind_task(**kwargs) -> None:
    _context.set(None)


def connect_celery_signals() -> None:
    """Bind the task's name and id to every log line a worker writes while running it."""
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_bind_task, dispatch_uid="portal.observability.bind_task", weak=False)
    task_postrun.connect(_unbind_task, dispatch_uid="portal.observability.unbind_task", weak=False)
