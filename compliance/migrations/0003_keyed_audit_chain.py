"""The keyed audit chain: links carry their row digest, public hash and chain key id; write-time tags
and forged entries; the append-only triggers honour the maintenance switch only for the maintenance
role. A chain made before keys existed cannot be carried over (its links need no secret, which is the
weakness this fixes): such a database is refused with what to do."""

from django.db import migrations, models

from compliance.audit.db_triggers import replace_function


def refuse_an_unkeyed_chain(apps, schema_editor):
    if apps.get_model("compliance", "ChainLink").objects.exists():
        raise RuntimeError(
            "This database's audit chain was sealed without a key by an earlier version of the portal. "
            "Export an evidence bundle with that version if you need its evidence, then start from a new "
            "database (for `make run`: delete var/ and run it again)."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0002_training_defaults_and_append_only"),
    ]

    operations = [
        migrations.RunPython(refuse_an_unkeyed_chain, migrations.RunPython.noop),
        migrations.AddField(
            model_name="chainlink", name="row_digest", field=models.CharField(max_length=64), preserve_default=False,
        ),
        migrations.AddField(
            model_name="chainlink", name="public_hash", field=models.CharField(max_length=64), preserve_default=False,
        ),
        migrations.AddField(
            model_name="chainlink", name="key_id", field=models.CharField(max_length=16), preserve_default=False,
        ),
        migrations.CreateModel(
            name="ChainTag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("model_label", models.CharField(max_length=100)),
                ("object_id", models.BigIntegerField()),
                ("key_id", models.CharField(max_length=16)),
                ("tag", models.CharField(max_length=64)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("model_label", "object_id"), name="chaintag_one_per_entry"),
                ],
            },
        ),
        migrations.CreateModel(
            name="ForgedEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("model_label", models.CharField(max_length=100)),
                ("object_id", models.BigIntegerField()),
                ("detected_at", models.DateTimeField()),
                ("reason", models.TextField()),
                ("alerted_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name_plural": "forged entries",
                "ordering": ["-detected_at", "-id"],
                "constraints": [
                    models.UniqueConstraint(fields=("model_label", "object_id"), name="forgedentry_one_per_entry"),
                ],
            },
        ),
        migrations.RunPython(replace_function, migrations.RunPython.noop),
    ]
