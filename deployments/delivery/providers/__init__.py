"""The registry of decision providers: one module per CI system behind ``base.DecisionProvider``.

Providers register themselves in ``DeploymentsConfig.ready()`` (or at import of their module);
the outbox asks every registered provider whether it targets a request when a decision commits.
"""

from __future__ import annotations

from deployments.delivery.providers.base import DecisionProvider, DeliveryOutcome

__all__ = ["DecisionProvider", "DeliveryOutcome", "all_providers", "get", "register", "unregister"]

_registry: dict[str, DecisionProvider] = {}


def register(provider: DecisionProvider) -> DecisionProvider:
    """Add (or replace) the provider registered under ``provider.name``."""
    if not provider.name:
        raise ValueError("A decision provider needs a name.")
    _registry[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    _registry.pop(name, None)


def get(name: str) -> DecisionProvider:
    """The provider registered as ``name``; ``KeyError`` if none is."""
    return _registry[name]


def all_providers() -> list[DecisionProvider]:
    return list(_registry.values())
