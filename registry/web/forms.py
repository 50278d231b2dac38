"""The data-entry forms of the web application, one per clinical table.

Single-record rules (model validation) show at the field while the form is checked; the view then
saves through registry.services, which checks the cross-record rules (registry.rules) under the
patient's lock and puts a violation at its field. A form with errors also checks the cross-record
rules, so the nurse sees every problem at once.
"""
import secrets
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _

from registry import codes, services
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from registry.services.status import NEEDS_REASON, REASON_MAX_LENGTH
from registry.web.dates import TypedDateField


def reason_field():
    return forms.CharField(
        label=_("Reason for the change"), required=False, max_length=REASON_MAX_LENGTH,
        help_text=_("Required for a record that is complete or verified; kept in the record's history."))


class RuleCheckedModelForm(forms.ModelForm):
    """The admin's model form: it also checks the cross-record rules on the patient's merged case,
    a lock and the reason a change needs, so a problem is shown before the admin saves (through the
    services)."""

    reason = reason_field()

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        instance = self.instance
        if not isinstance(instance, Patient) and not getattr(instance, "patient_id", None):
            return
        try:
            services.record_check(record=instance, reason=self.cleaned_data.get("reason"))
        except ValidationError as error:
            self._update_errors(error)


UNITS = {"_mm": _("mm"), "_days": _("days")}
CODE_PREFIX = "missing_"  # the form field of an optional field's missing-data code: missing_<field>


class EntryForm(forms.ModelForm):
    # The version the nurse started editing from: saving refuses if the record moved on since.
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # A new record's form carries a token of its own: sent twice (a double click, the browser's
    # "resend"), it stores one record (services' idempotency key).
    submission = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    # Asked only when the record is complete or verified (services.status.NEEDS_REASON).
    reason = reason_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["version"].required = True
            self.fields["version"].initial = self.instance.version
            del self.fields["submission"]
        else:
            self.fields["submission"].initial = secrets.token_hex(16)
        if self.instance._state.adding or self.instance.status not in NEEDS_REASON:
            del self.fields["reason"]
        for name, field in list(self.fields.items()):
            if isinstance(field, forms.DateField):  # typed, one Tab stop, the same in every browser
                self.fields[name] = field = TypedDateField(
                    label=field.label, help_text=field.help_text, required=field.required, validators=field.validators)
            if isinstance(field, forms.DecimalField):
                field.widget.attrs["step"] = "0.1"
        for name, field in list(self.fields.items()):
            if isinstance(field, forms.NullBooleanField):  # one look for every choice: blank, yes, no
                self.fields[name] = yes_no_field(field.label, field.help_text, required=False)
        for name, field in self.fields.items():  # the unit stands beside the box, not twice
            unit = self.unit(name)
            if unit and field.label and str(field.label).endswith(f" ({unit})"):
                field.label = str(field.label)[:-len(unit) - 3]
        # Beside each optional field: why it is empty (unknown, not done, not applicable), if it is.
        self.code_fields = {}
        for name in self.Meta.fields:
            if name in self._meta.model.codable_fields():
                self.code_fields[name] = f"{CODE_PREFIX}{name}"
                self.fields[self.code_fields[name]] = missing_code_field(
                    self.fields[name].label, initial=self.instance.missing_code(name))

    def unit(self, name):
        return next((unit for suffix, unit in UNITS.items() if name.endswith(suffix)), "")

    def get_initial_for_field(self, field, field_name):
        """A stored whole number of a decimal field shows as one ("85", not "85.0")."""
        value = super().get_initial_for_field(field, field_name)
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return value.quantize(Decimal(1))
        return value

    def rows(self):
        """(bound field, unit, bound missing-data code field or None) for the template, hidden fields
        excluded; a code field stands beside its own field."""
        code_names = set(self.code_fields.values())
        return [(field, self.unit(field.name), self[self.code_fields[field.name]] if field.name in self.code_fields
                 else None) for field in self.visible_fields() if field.name not in code_names]

    def clean(self):
        cleaned = super().clean()
        for name, code_name in self.code_fields.items():
            code = cleaned.get(code_name)
            if code and cleaned.get(name) not in (None, ""):
                self.add_error(name, _("%(field)s has a value and is marked “%(meaning)s”: keep one of them.")
                               % {"field": self.fields[name].label, "meaning": dict(codes.MISSING_CODES)[code]})
        return cleaned

    def chosen_codes(self):
        """The record's missing-data codes as the form sets them (a field the form lacks keeps its own)."""
        kept = {name: code for name, code in (self.instance.missing_codes or {}).items() if name not in self.code_fields}
        chosen = {name: self.cleaned_data.get(code_name) for name, code_name in self.code_fields.items()}
        return {**kept, **{name: code for name, code in chosen.items() if code}}

    def add_service_error(self, error):
        """Show a ValidationError from the services at its field, or above the form."""
        by_field = error.error_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.error_list}
        for name, errors in by_field.items():
            self.add_error(name if name in self.fields else None, errors)

    def _post_clean(self):
        self.instance.missing_codes = self.chosen_codes()  # checked with the record's other values
        super()._post_clean()
        # A valid form is saved by the view through the services, which check the cross-record
        # rules under the patient's lock and put any violation at its field (add_service_error).
        # A form with errors is not saved: check the rules here too, so the nurse sees every
        # problem at once.
        if self.errors and (isinstance(self.instance, Patient) or self.instance.patient_id):
            try:
                services.record_check(record=self.instance, reason=self.cleaned_data.get("reason"))
            except ValidationError as error:
                self._update_errors(error)

    def _update_errors(self, errors):
        # A rule may name a column this form does not show (e.g. the patient's birth year while
        # entering a tumour): show it above the form. A message already shown is not repeated.
        if hasattr(errors, "error_dict"):
            shown = {}
            for name, field_errors in errors.error_dict.items():
                target = name if name in self.fields else NON_FIELD_ERRORS
                present = self._errors.get(target, []) if self._errors else []
                for message in ValidationError(field_errors).messages:
                    if message not in present and message not in shown.get(target, []):
                        shown.setdefault(target, []).append(message)
            if not shown:
                return
            errors = ValidationError(shown)
        super()._update_errors(errors)


class YesNoField(forms.TypedChoiceField):
    """Yes/no as a choice list like every other (a blank first), never a checkbox: a checkbox would
    silently store "no" for "not entered yet". Takes true/false in any case, as the API does."""

    def __init__(self, **kwargs):
        super().__init__(choices=[("", "---------"), ("true", _("yes")), ("false", _("no"))],
                         coerce=lambda value: value == "true", empty_value=None, **kwargs)

    def to_python(self, value):
        return super().to_python(value.lower() if isinstance(value, str) else value)

    def prepare_value(self, value):
        return {True: "true", False: "false"}.get(value, value)


def missing_code_field(label, *, initial=None):
    """The choice of a missing-data code for an optional field: a labelled select beside it."""
    return forms.ChoiceField(
        label=_("%(field)s: empty because") % {"field": label}, required=False, initial=initial,
        choices=[("", "—"), *codes.MISSING_CODES])


def yes_no_field(label, help_text, *, required):
    return YesNoField(label=label, help_text=help_text, required=required)


class PatientForm(EntryForm):
    extrapulmonary_disease_at_pm = yes_no_field(
        _("Extrapulmonary disease at first PM"), Patient._meta.get_field("extrapulmonary_disease_at_pm").help_text,
        required=True)

    class Meta:
        model = Patient
        fields = ["sex", "birth_year", "histology", "lung_mets_diagnosis_date", "extrapulmonary_disease_at_pm", "ecog"]


class PrimaryTumourForm(EntryForm):
    class Meta:
        model = PrimaryTumour
        fields = ["diagnosis_date", "site", "size_mm", "depth", "grade", "surgery_date", "margin",
                  "radiotherapy", "radiotherapy_end_date", "local_recurrence_before_pm"]


class MetastasectomyForm(EntryForm):
    class Meta:
        model = Metastasectomy
        fields = ["surgery_date", "side", "approach", "resection_type", "lesions_resected",
                  "max_lesion_diameter_mm", "diameter_source", "margin", "lymph_node_sampling",
                  "clavien_dindo", "hospital_stay_days"]


class SystemicTherapyForm(EntryForm):
    class Meta:
        model = SystemicTherapy
        fields = ["start_date", "end_date", "regimen", "regimen_other", "intent", "cycles", "best_response"]


class FollowUpForm(EntryForm):
    class Meta:
        model = FollowUp
        fields = ["event_date", "event", "recurrence_site", "cause_of_death"]


# URL segment -> form of a patient's record type (the patient itself has its own views).
RECORD_FORMS = {
    "primary-tumour": PrimaryTumourForm,
    "metastasectomies": MetastasectomyForm,
    "systemic-therapies": SystemicTherapyForm,
    "follow-up": FollowUpForm,
}
