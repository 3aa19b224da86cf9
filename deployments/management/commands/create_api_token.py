"""Create an API token for a CI service account; the token is printed once.

A token acts as its owner, so nobody creates one for a person: people create their own on the
*My API tokens* page. The command refuses a person's username (``token_for_other_person``, recorded).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from compliance.errors import RuleViolation
from compliance.people.identity import system_actor
from deployments.api import tokens
from deployments.choices import TokenAction
from deployments.models import Environment, Service


def parse_expiry(value: str) -> datetime:
    """``30d``, ``12h``, ``90m`` from now, or an ISO 8601 date/time."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value and value[-1] in units and value[:-1].isdigit():
        return timezone.now() + timedelta(**{units[value[-1]]: int(value[:-1])})
    parsed = parse_datetime(value) or (parse_datetime(f"{value}T00:00:00") if len(value) == 10 else None)
    if parsed is None:
        raise CommandError(f"--expires {value!r}: use e.g. 90d, 12h or 2027-01-31T00:00:00Z")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = ("Create an API token for a CI service account (shown once). Scope it with "
            "--service/--environment/--action. People create their own tokens on the My API tokens page.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for (default: 'CLI token').")
        parser.add_argument("--service", action="append", default=[], help="Limit to this service (repeatable).")
        parser.add_argument("--environment", action="append", default=[],
                            help="Limit to this environment, as service/environment (repeatable).")
        parser.add_argument("--action", action="append", default=[], choices=TokenAction.values,
                            help="Allow only this action (repeatable); default: all the user may do.")
        parser.add_argument("--expires", default="", help="e.g. 90d, 12h, or an ISO date/time. Default: never.")
        parser.add_argument("--service-account", action="store_true",
                            help="Create the user as a CI service account if it does not exist.")

    def handle(self, *args, **options):
        user_model = get_user_model()
        user = user_model.objects.filter(username=options["username"]).first()
        if user is None:
            if not options["service_account"]:
                raise CommandError(f"No user {options['username']!r} (use --service-account to create a CI account).")
            user = user_model.objects.create(username=options["username"], is_service_account=True)
            user.set_unusable_password()
            user.save()
        services = []
        for name in options["service"]:
            service = Service.objects.filter(name=name).first()
            if service is None:
                raise CommandError(f"No service {name!r}.")
            services.append(service)
        environments = []
        for label in options["environment"]:
            service_name, _, env_name = label.partition("/")
            environment = Environment.objects.filter(service__name=service_name, name=env_name).first()
            if environment is None:
                raise CommandError(f"No environment {label!r} (use service/environment).")
            environments.append(environment)
        expires_at = parse_expiry(options["expires"]) if options["expires"] else None
        try:
            token, clear = tokens.create_api_token(
                actor=system_actor(), user=user, name=options["name"] or "CLI token", services=services,
                environments=environments, actions=options["action"], expires_at=expires_at,
            )
        except RuleViolation as exc:
            # A person's username is refused (and the refusal recorded) by the service.
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        self.stderr.write(f"Token {token.prefix} for {user.username} created; it is shown only once:")
        self.stdout.write(clear)
