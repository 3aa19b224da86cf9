"""The beat scheduler: django-celery-beat's database scheduler, with the code-defined schedule
re-asserted at every start.

``CELERY_BEAT_SCHEDULE`` is the schedule the policy relies on (request expiry, training
enforcement, audit-chain sealing and verification, reconciliation, ...). A periodic task of that
schedule that was disabled or re-timed in the database is written back (enabled, as in code) when
beat starts, as the system actor, so the audit trail shows it; and every job is marked as expected
from now on, so one that does not run becomes late on the monitoring page.
"""

from __future__ import annotations

from auditlog.context import set_actor
from django_celery_beat.schedulers import DatabaseScheduler

from portal.schedule import beat_schedule

from ..people.identity import system_actor
from .jobs import expect_scheduled_jobs


class PortalScheduler(DatabaseScheduler):
    def setup_schedule(self):
        self.install_default_entries(self.schedule)
        code_defined = {name: {**entry, "enabled": True} for name, entry in beat_schedule().items()}
        with set_actor(system_actor()):
            self.update_from_dict(code_defined)
        expect_scheduled_jobs()
