"""API tokens fail closed and act only as their owner.

1. ``scoped_services`` / ``scoped_environments``: set for every existing token that has scope rows, or
   whose audit trail shows scope rows were ever added (a scope that already cascaded away with a
   deleted service or environment must not keep meaning "everything").
2. Tokens of a person created by someone else (an administrator, a script) are revoked: a token acts
   only as its owner, and only the owner may create it. Tokens of service accounts are kept.
"""

import json

from django.db import migrations, models
from django.db.models import F
from django.utils import timezone


def _audited_scope_kinds(apps, token_ids):
    """{token id: {"services", "environments"}} from the auditlog M2M entries of API tokens."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("auditlog", "LogEntry")
    content_type = ContentType.objects.filter(app_label="deployments", model="apitoken").first()
    found = {}
    if content_type is None:
        return found
    for object_pk, changes in LogEntry.objects.filter(content_type=content_type).values_list("object_pk", "changes"):
        if isinstance(changes, str):
            try:
                changes = json.loads(changes or "{}")
            except ValueError:
                continue
        if not isinstance(changes, dict) or not str(object_pk).isdigit() or int(object_pk) not in token_ids:
            continue
        for kind in ("services", "environments"):
            if kind in changes:
                found.setdefault(int(object_pk), set()).add(kind)
    return found


def close_scopes_and_revoke_foreign_tokens(apps, schema_editor):
    ApiToken = apps.get_model("deployments", "ApiToken")
    token_ids = set(ApiToken.objects.values_list("pk", flat=True))
    if not token_ids:
        return
    scoped_services = set(ApiToken.services.through.objects.values_list("apitoken_id", flat=True))
    scoped_environments = set(ApiToken.environments.through.objects.values_list("apitoken_id", flat=True))
    for token_id, kinds in _audited_scope_kinds(apps, token_ids).items():
        if "services" in kinds:
            scoped_services.add(token_id)
        if "environments" in kinds:
            scoped_environments.add(token_id)
    ApiToken.objects.filter(pk__in=scoped_services).update(scoped_services=True)
    ApiToken.objects.filter(pk__in=scoped_environments).update(scoped_environments=True)
    foreign = ApiToken.objects.filter(user__is_service_account=False, revoked_at__isnull=True).exclude(
        created_by=F("user")
    )
    foreign.update(revoked_at=timezone.now())


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0012_gate_identity_and_check_provenance'),
        ('auditlog', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='apitoken',
            name='scoped_environments',
            field=models.BooleanField(default=False, editable=False, help_text='Narrowed to environments at creation: an empty list then matches none.'),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='scoped_services',
            field=models.BooleanField(default=False, editable=False, help_text='Narrowed to services at creation: an empty list then matches none.'),
        ),
        migrations.AlterField(
            model_name='refusal',
            name='action',
            field=models.CharField(choices=[('submit', 'Submit a request'), ('approve', 'Approve'), ('reject', 'Reject'), ('cancel', 'Cancel'), ('record_checks', 'Record checks'), ('execute', 'Report an execution'), ('create_token', 'Create an API token'), ('revoke_token', 'Revoke an API token'), ('use_token', 'Use an API token'), ('read_report', 'Read a report')], max_length=16),
        ),
        migrations.RunPython(close_scopes_and_revoke_foreign_tokens, migrations.RunPython.noop),
    ]
