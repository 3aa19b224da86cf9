"""Tests that need a real service skip locally when it is absent and fail under REQUIRE_SERVICES=1."""

from __future__ import annotations

import os
import shutil
import socket
import time
from urllib.parse import urlsplit

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def missing(reason: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1: this test must run)", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        missing("needs PostgreSQL: set DATABASE_URL=postgres://...")


def redis_url() -> str | None:
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return url
    except OSError:
        return None


def require_redis() -> str:
    url = redis_url()
    if url is None:
        missing("needs Redis as the Celery broker: set CELERY_BROKER_URL=redis://...")
    return url


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        missing("needs Debian's chromium package for browser tests")
    return path


def wait_for(predicate, timeout=20.0):
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False): work done by a real worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
