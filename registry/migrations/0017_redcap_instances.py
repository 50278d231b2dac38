"""Stable REDCap repeat instances: a number per repeating record (metastasectomies, systemic
therapies, follow-up), given at creation and never changed. The records already stored are
numbered 1, 2, … per patient in date order (the order the REDCap export numbered them by until
now, so their first numbers stay what clients have seen). Their audit rows stay as written: the
audit tables are append-only, so the column is empty in rows written before this migration."""

from django.db import migrations, models

# The date each repeating table was numbered by (registry.api.redcap before this migration).
DATES = {"metastasectomy": "surgery_date", "systemictherapy": "start_date", "followup": "event_date"}


def number_instances(apps, schema_editor):
    for name, date in DATES.items():
        model = apps.get_model("registry", name)
        rows = model.objects.order_by("patient_id", date, "id").values_list("id", "patient_id")
        numbered, last, number = [], None, 0
        for pk, patient_id in rows.iterator(chunk_size=2000):
            number = number + 1 if patient_id == last else 1
            last = patient_id
            numbered.append(model(id=pk, redcap_instance=number))
        # Only this column: the records' versions and update times stay (nothing clinical changed).
        model.objects.bulk_update(numbered, ["redcap_instance"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0016_missing_data_codes'),
    ]

    operations = [
        migrations.AddField(
            model_name='followup',
            name='redcap_instance',
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="The record's REDCap repeat instance; never changes.", null=True, verbose_name='REDCap instance'),
        ),
        migrations.AddField(
            model_name='historicalfollowup',
            name='redcap_instance',
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="The record's REDCap repeat instance; never changes.", null=True, verbose_name='REDCap instance'),
        ),
        migrations.AddField(
            model_name='historicalmetastasectomy',
            name='redcap_instance',
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="The record's REDCap repeat instance; never changes.", null=True, verbose_name='REDCap instance'),
        ),
        migrations.AddField(
            model_name='historicalsystemictherapy',
            name='redcap_instance',
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="The record's REDCap repeat instance; never changes.", null=True, verbose_name='REDCap instance'),
        ),
        migrations.AddField(
            model_name='metastasectomy',
            name='redcap_instance',
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="The record's REDCap repeat instance; never changes.", null=True, verbose_name='REDCap instance'),
        ),
        migrations.AddField(
            model_name='systemictherapy',
            name='redcap_instance',
            field=models.PositiveIntegerField(blank=True, editable=False, help_text="The record's REDCap repeat instance; never changes.", null=True, verbose_name='REDCap instance'),
        ),
        migrations.RunPython(number_instances, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='followup',
            constraint=models.UniqueConstraint(fields=('patient', 'redcap_instance'), name='follow_up_one_instance_number', violation_error_message='Another record of this patient has this instance number.'),
        ),
        migrations.AddConstraint(
            model_name='followup',
            constraint=models.CheckConstraint(condition=models.Q(('redcap_instance__isnull', False), ('redcap_instance__gte', 1)), name='follow_up_instance_numbered'),
        ),
        migrations.AddConstraint(
            model_name='metastasectomy',
            constraint=models.UniqueConstraint(fields=('patient', 'redcap_instance'), name='pm_one_instance_number', violation_error_message='Another record of this patient has this instance number.'),
        ),
        migrations.AddConstraint(
            model_name='metastasectomy',
            constraint=models.CheckConstraint(condition=models.Q(('redcap_instance__isnull', False), ('redcap_instance__gte', 1)), name='pm_instance_numbered'),
        ),
        migrations.AddConstraint(
            model_name='systemictherapy',
            constraint=models.UniqueConstraint(fields=('patient', 'redcap_instance'), name='therapy_one_instance_number', violation_error_message='Another record of this patient has this instance number.'),
        ),
        migrations.AddConstraint(
            model_name='systemictherapy',
            constraint=models.CheckConstraint(condition=models.Q(('redcap_instance__isnull', False), ('redcap_instance__gte', 1)), name='therapy_instance_numbered'),
        ),
    ]
