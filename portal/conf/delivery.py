"""Settings of outbound attempts and of the decision-delivery lease (docs/reliability.md).

* ``PORTAL_HTTP_TIMEOUT``: seconds per socket operation of an outbound call.
* ``PORTAL_HTTP_DEADLINE``: seconds, total, for one outbound attempt (connect + send + the whole
  answer; ``portal/deadline.py``).
* ``PORTAL_DELIVERY_LEASE_SECONDS``: how long a claimed delivery is held without news from its
  worker. A running attempt renews the lease every third of it (``portal.outbox.Heartbeat``), so an
  attempt may run as long as its deadline while a worker that died leaves its row claimable again
  after one lease; an attempt that cannot renew stops before its lease ends, so two attempts at one
  delivery never overlap.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from portal.envvars import _read

__all__ = [
    "PORTAL_HTTP_TIMEOUT",
    "PORTAL_HTTP_DEADLINE",
    "PORTAL_DELIVERY_LEASE_SECONDS",
    "PORTAL_DELIVERY_LEASE_MINIMUM_SECONDS",
]

PORTAL_HTTP_TIMEOUT = _read("PORTAL_HTTP_TIMEOUT", float, 10.0)
PORTAL_HTTP_DEADLINE = _read("PORTAL_HTTP_DEADLINE", float, 15.0)
PORTAL_DELIVERY_LEASE_SECONDS = _read("PORTAL_DELIVERY_LEASE_SECONDS", float, 10.0)
# Renewed every third of the lease: below this the renewals would be a constant database load.
PORTAL_DELIVERY_LEASE_MINIMUM_SECONDS = 3.0

if PORTAL_HTTP_TIMEOUT <= 0:
    raise ImproperlyConfigured("PORTAL_HTTP_TIMEOUT must be a positive number of seconds.")
if PORTAL_HTTP_DEADLINE <= 0:
    raise ImproperlyConfigured("PORTAL_HTTP_DEADLINE must be a positive number of seconds.")
if PORTAL_DELIVERY_LEASE_SECONDS < PORTAL_DELIVERY_LEASE_MINIMUM_SECONDS:
    raise ImproperlyConfigured(
        f"PORTAL_DELIVERY_LEASE_SECONDS ({PORTAL_DELIVERY_LEASE_SECONDS:g}) must be at least "
        f"{PORTAL_DELIVERY_LEASE_MINIMUM_SECONDS:g} seconds (a running attempt renews it every third)."
    )
