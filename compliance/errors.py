"""The one exception every refused action raises, whatever layer refuses it."""

from __future__ import annotations

from typing import Any


class RuleViolation(Exception):
    """An action refused by a rule of the policy.

    ``code`` is stable and machine-readable (``self_approval``); ``message`` names the rule in
    words a person understands; ``details`` carries what the caller needs to fix it.
    """

    status_code = 409

    def __init__(
        self, code: str, message: str, *, details: dict[str, Any] | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.message
