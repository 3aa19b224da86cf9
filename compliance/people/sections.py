"""Sections other layers add to a person's admin page, e.g. the per-environment access the deployment
gate grants (registered from ``AppConfig.ready()``; compliance itself names no such layer)."""

from __future__ import annotations

from collections.abc import Callable

_sections: dict[str, tuple[str, Callable[[object], str]]] = {}


def register_person_section(key: str, title: str, render: Callable[[object], str]) -> None:
    """``render(user)`` returns HTML built from an auto-escaping template."""
    _sections[key] = (title, render)


def person_sections(user) -> list[tuple[str, str]]:
    return [(title, render(user)) for title, render in _sections.values()]
