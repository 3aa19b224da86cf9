"""The one retry rule of the portal's background deliveries (decisions to CI, notifications, inbound
webhook processing): capped exponential backoff with jitter, a ``Retry-After`` the other side sent
as a floor. Each caller brings its own policy from settings (base, cap, attempts)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    cap_seconds: float
    retry_after_cap_seconds: float | None = None

    def backoff_seconds(self, attempts: int, retry_after: float | None = None) -> float:
        """The wait before the next attempt after ``attempts`` failed ones: half to all of the capped
        exponential step (jitter spreads retries), never less than ``retry_after`` (itself capped)."""
        step = min(self.cap_seconds, self.base_seconds * (2 ** max(0, attempts - 1)))
        delay = random.uniform(step / 2, step)
        if retry_after is not None:
            cap = self.retry_after_cap_seconds if self.retry_after_cap_seconds is not None else self.cap_seconds
            delay = max(delay, min(float(retry_after), cap))
        return delay

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
