"""The Celery application: workers and beat load their configuration from Django settings."""

import os

from celery import Celery

from portal.observability import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every log line a worker writes while running a task carries the task's name and id.
connect_celery_signals()
