"""The four-eyes backstop: a privileged grant made by a signed-in person takes effect only through an
approved access change.

The admin pages turn such grants into pending access changes (``access_changes``) before anything is
saved. This module catches whatever path was missed: when a person (the audit trail's actor) adds
someone to a watched role, sets the staff or superuser flag, or saves a watched object permission, and
the write is not the application of an approved access change, it is refused (recorded) and the
transaction rolls back.

Writes with no actor — migrations, ``manage.py`` commands such as ``load_demo_data`` and
``createsuperuser`` run by the operator who installs the portal, a Django shell, test fixtures — act
as the system and are still recorded as privilege changes (see ``privileges``); they are the
installation's bootstrap path and need shell access to the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger(__name__)

_applying: ContextVar[str] = ContextVar("portal_four_eyes_applying", default="")


@contextmanager
def applying(why: str) -> Iterator[None]:
    """Privileged writes inside this block are the effect of ``why`` (an approved access change)."""
    token = _applying.set(why or "approved access change")
    try:
        yield
    finally:
        _applying.reset(token)


def applying_now() -> str:
    return _applying.get()


def guard(*, privilege: str, subject=None, group: str = "", target: str = "") -> None:
    """Refuse (recorded) a privileged grant made by a person outside an approved access change."""
    from .privileges import current_actor, refuse

    if applying_now():
        return
    actor = current_actor()
    if actor is None:
        return  # the system (bootstrap path), still recorded as a privilege change
    # The refusal row is written in the caller's transaction, which this refusal rolls back: the log
    # line is what survives when the caller does not catch it.
    logger.warning("Refused: %s granted %s to %s outside an approved access change", actor.username, privilege,
                   getattr(subject, "username", None) or f"group {group}")
    refuse(
        actor=actor, subject=subject, group=group, target=target, privilege=privilege, code="four_eyes_required",
        message=f"Granting {privilege} needs a second administrator: request it as an access change "
        "(the admin does so when you save) and another administrator approves it.",
    )
