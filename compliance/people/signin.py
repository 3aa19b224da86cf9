"""Sign-in throttling: django-axes' database handler with a limit per lockout parameter.

``AXES_LOCKOUT_PARAMETERS`` holds two throttles: ``["username", "ip_address"]`` (one person's
password guessed from one address, ``AXES_FAILURE_LIMIT``) and ``"ip_address"`` alone (password
spraying: many usernames from one address, ``PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT``). Axes compares
the largest failure count of all parameters with a single limit, so this handler reports the
failures of each parameter scaled to the username limit: an address is locked out once it reaches
its own limit, a username-and-address once it reaches its own, whichever comes first.

A successful sign-in clears only the signing-in person's counter (the parameters that include the
username), never the address's: otherwise an attacker holding one valid account could reset the
spraying throttle by signing in between guesses.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit, get_lockout_parameters
from django.conf import settings
from django.db.models import Sum


def _is_address_only(parameter) -> bool:
    names = [parameter] if isinstance(parameter, str) else list(parameter)
    return "username" not in names


class PortalAxesHandler(AxesDatabaseHandler):
    def _parameter_limits(self, request, credentials) -> list[int]:
        person_limit = get_failure_limit(request, credentials)
        address_limit = settings.PORTAL_LOGIN_ADDRESS_FAILURE_LIMIT
        return [
            address_limit if _is_address_only(parameter) else person_limit
            for parameter in get_lockout_parameters(request, credentials)
        ]

    def get_failures(self, request, credentials: dict | None = None) -> int:
        """Failures in units of the username limit: ``>= AXES_FAILURE_LIMIT`` exactly when one
        parameter reached its own limit (floor keeps a count below its limit below the threshold)."""
        person_limit = get_failure_limit(request, credentials)
        attempts_list = self.get_user_attempts(request, credentials)
        limits = self._parameter_limits(request, credentials)
        scaled = [0]
        for attempts, limit in zip(attempts_list, limits, strict=False):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            scaled.append(failures * person_limit // limit)
        return max(scaled)

    def reset_user_attempts(self, request, credentials: dict | None = None) -> int:
        """Clear the counters that name this person; the address's spraying counter stays."""
        parameters = get_lockout_parameters(request, credentials)
        count = 0
        for attempts, parameter in zip(self.filter_user_attempts(request, credentials), parameters, strict=False):
            if _is_address_only(parameter):
                continue
            deleted, _ = attempts.delete()
            count += deleted
        return count

