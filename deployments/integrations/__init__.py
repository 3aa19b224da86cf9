"""Where CI/SCM integrations plug into the gate.

Each integration is a Django app under ``deployments/integrations/<name>/`` that registers, from its
own ``AppConfig.ready()``, everything it contributes: its decision provider (``deployments.delivery.providers``),
its webhook routes and reconciliation source (here), its periodic jobs (``portal.schedule``), its
signal receivers, admin, models, tasks and setup checks. The core never imports an integration: it
only reads these registries, so removing an integration from ``INSTALLED_APPS`` (``PORTAL_INTEGRATIONS``)
leaves a working portal. See docs/architecture.md, "Add an integration".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import URLPattern, path

__all__ = [
    "ReconciliationSource",
    "register_reconciliation_source",
    "register_webhook",
    "reconciliation_sources",
    "unregister_reconciliation_source",
    "webhook_urlpatterns",
]

_webhooks: dict[str, URLPattern] = {}


def register_webhook(route: str, view: Callable, *, name: str) -> None:
    """Serve ``view`` at ``/webhooks/<route>`` (URL name ``name``), e.g. ``register_webhook("github/", …)``."""
    _webhooks[name] = path(route, view, name=name)


def webhook_urlpatterns() -> list[URLPattern]:
    """The routes integrations registered (read by the project's urls once the apps are ready)."""
    return list(_webhooks.values())


@dataclass(frozen=True)
class ReconciliationSource:
    """A CI system's side of reconciliation: ``run()`` compares what the CI system deployed with the
    portal's executions and returns ``{"configured": bool, "recorded": int, ...}``; an exception
    counts as a failed run of this source (the others and the local re-scan still run)."""

    name: str
    label: str
    run: Callable[[], dict]


_sources: dict[str, ReconciliationSource] = {}


def register_reconciliation_source(source: ReconciliationSource) -> ReconciliationSource:
    _sources[source.name] = source
    return source


def unregister_reconciliation_source(name: str) -> None:
    _sources.pop(name, None)


def reconciliation_sources() -> list[ReconciliationSource]:
    return list(_sources.values())
