"""Extension points for the rest of the portal.

``request_transitioned`` is sent *inside* the transaction that changes a request's status, so a
receiver can write rows that must commit with the decision (the delivery outbox) and schedule
side effects with ``transaction.on_commit`` (notifications). Receivers must not raise for
reasons unrelated to the decision: an exception aborts the transition.
"""

from django.dispatch import Signal

# kwargs: request, old_status, new_status, actor
request_transitioned = Signal()
# kwargs: approval (an Approval just recorded, inside the transaction)
decision_recorded = Signal()
# kwargs: execution (an Execution just saved by services.report_execution, inside the transaction)
execution_recorded = Signal()
# kwargs: execution_id, reported_sha, actor — a report of a recorded CI run with another sha was
# refused (sent after the refused transaction rolled back)
execution_conflict_reported = Signal()
# kwargs: users (username → user), environments ("service/environment" → Environment) — the demo
# data was loaded (``manage.py load_demo_data``); integrations add their demo configuration
demo_data_loaded = Signal()
