"""``manage.py check_migration_history``: stop, with what to do, when the database was migrated by an
older version of the portal whose migrations this version no longer has (the migrations were
regenerated before the first release). ``make run`` calls it before ``migrate``."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from compliance.people.roles import own_app_labels


class Command(BaseCommand):
    help = "Refuse a database migrated by an older version of the portal, saying what to delete."

    def handle(self, *args, **options):
        ours = set(own_app_labels())
        loader = MigrationLoader(connection, ignore_no_migrations=True)
        unknown = sorted(f"{app}.{name}" for app, name in loader.applied_migrations
                         if app in ours and (app, name) not in loader.disk_migrations)
        if not unknown:
            return
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):
            what = f"Delete {database['NAME']} and run `make run` again (the demo data is recreated)."
        else:
            what = "Recreate the database (drop and create it), then run `manage.py migrate`."
        raise CommandError(
            "This database was made by an older version of the portal: it has migrations this version "
            f"no longer has ({', '.join(unknown[:5])}{', …' if len(unknown) > 5 else ''}). {what}"
        )
