"""The registry's tables as the API shows them: the data dictionary's column names and codes.

Reads never go through serializers: a list is one ``.values()`` query whose rows are already keyed
by the dictionary's column names (`Table.rows`), so 10,000 patients cost no per-row Python objects.
Serializers only check the types of what a client sends (and describe both directions in the
OpenAPI schema); every rule beyond types is checked by registry.services, as for the web forms.
"""
import datetime
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from registry import access, codes
from registry.api.fields import StrictBooleanField, StrictCharField
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

BOOKKEEPING = ("version", "status", "created_at", "updated_at")
MISSING_CODES = "missing_codes"  # {column: UNK | ND | NA} of a record's optional columns


def column_of(field):
    """The dictionary's name of a model field: `centre` and `patient_id` are the FK columns."""
    return field.db_column or field.name


def dictionary_columns(model):
    """The dictionary's columns of a model, in table order (without id and bookkeeping)."""
    return [column_of(f) for f in model._meta.concrete_fields
            if f.name not in (*BOOKKEEPING, MISSING_CODES, "redcap_instance") and not (f.primary_key and f.name == "id")]


def missing_codes_field():
    return serializers.DictField(
        child=serializers.ChoiceField(choices=codes.MISSING_CODES), required=False,
        help_text=_("Why an optional column is empty, {column: code}: UNK (unknown), ND (not done), NA (not "
                    "applicable). That column is then null. Sending a value for a column drops its code."))


def reason_field():
    return StrictCharField(
        write_only=True, required=False, allow_blank=True, max_length=80,
        help_text=_("Why the record is changed: required when it is complete or verified, and kept in its "
                    "history."))


class RegistrySerializer(serializers.ModelSerializer):
    # Blank means unknown: optional values are null, never "" (the dictionary's convention).
    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.CharField: StrictCharField, models.TextField: StrictCharField,
                                models.BooleanField: StrictBooleanField}

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        kwargs.pop("allow_blank", None)
        return field_class, kwargs


class PatientSerializer(RegistrySerializer):
    """A patient (table `patients` of the data dictionary); the registry issues the pseudonym."""

    centre = StrictCharField(max_length=8, help_text=_("Code of the patient's centre, e.g. MUC."))
    missing_codes = missing_codes_field()
    reason = reason_field()

    class Meta:
        model = Patient
        fields = [*dictionary_columns(Patient), MISSING_CODES, *BOOKKEEPING, "reason"]
        read_only_fields = ["patient_id", *BOOKKEEPING]
        # The database's integer range is no bound here: the dictionary's is (1900 ... this year).
        extra_kwargs = {"birth_year": {"max_value": datetime.date.today().year}}
        validators = []


class ChildSerializer(RegistrySerializer):
    patient_id = StrictCharField(max_length=21, help_text=_("The patient's registry pseudonym."))
    missing_codes = missing_codes_field()
    reason = reason_field()

    class Meta:
        fields = ["id", "patient_id"]
        read_only_fields = ["id", *BOOKKEEPING]
        # Uniqueness (one primary tumour, one PM per date) is a cross-record rule of registry.rules.
        validators = []


def child_serializer(model):
    columns = [c for c in dictionary_columns(model) if c != "patient_id"]
    meta = type("Meta", (ChildSerializer.Meta,), {
        "model": model, "fields": ["id", "patient_id", *columns, MISSING_CODES, *BOOKKEEPING, "reason"]})
    table = model._meta.verbose_name
    doc = f"One {table} of a patient (a row of the data dictionary's table for {model._meta.verbose_name_plural})."
    return type(f"{model.__name__}Serializer", (ChildSerializer,), {"Meta": meta, "__module__": __name__, "__doc__": doc})


@dataclass(frozen=True)
class Table:
    """One table of the data dictionary as an API resource."""

    name: str          # the dictionary's table name
    url: str           # the URL segment under /api/v1/
    model: type
    serializer: type

    @property
    def is_patient(self):
        return self.model is Patient

    @property
    def pk(self):
        return "patient_id" if self.is_patient else "id"

    @property
    def columns(self):
        """The keys of every row the API returns, in order."""
        leading = [] if self.is_patient else ["id"]
        return [*leading, *dictionary_columns(self.model), MISSING_CODES, *BOOKKEEPING]

    @property
    def centre_lookup(self):
        return "centre" if self.is_patient else "patient__centre"

    def readable(self, user):
        """The records the user may read (registry.access decides)."""
        if self.is_patient:
            return access.patients_readable(user)
        return access.records_readable(user, self.model)

    def rows(self, queryset):
        """Rows keyed by the dictionary's column names; JSON rendering formats dates and numbers."""
        return queryset.order_by().values(*self.columns)

    def row(self, user, pk):
        return self.rows(self.readable(user).filter(pk=pk)).first()


TABLES = [
    Table("patients", "patients", Patient, PatientSerializer),
    Table("primary_tumours", "primary-tumours", PrimaryTumour, child_serializer(PrimaryTumour)),
    Table("metastasectomies", "metastasectomies", Metastasectomy, child_serializer(Metastasectomy)),
    Table("systemic_therapies", "systemic-therapies", SystemicTherapy, child_serializer(SystemicTherapy)),
    Table("follow_up", "follow-up", FollowUp, child_serializer(FollowUp)),
]


class StatusChangeSerializer(serializers.Serializer):
    """A move of a record through the data-management cycle."""

    status = serializers.ChoiceField(choices=codes.RECORD_STATUS,
                                     help_text=_("in_progress → complete (a nurse) → verified (a monitor or a "
                                                 "coordinator) → locked (a coordinator)."))
    reason = StrictCharField(required=False, allow_blank=True, max_length=80,
                                   help_text=_("Why: required for unlocking; kept in the record's history."))


class CentreSerializer(serializers.Serializer):
    code = StrictCharField(read_only=True)
    name = StrictCharField(read_only=True)
