"""Forms shared by the admin and the data-entry pages."""
from django import forms
from django.core.exceptions import ValidationError

from registry import services


class RuleCheckedModelForm(forms.ModelForm):
    """A model form that also checks the cross-record rules on the patient's merged case,
    so a violation is shown next to the field before anything is saved."""

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        instance = self.instance
        if not isinstance(instance, services.Patient) and not getattr(instance, "patient_id", None):
            return
        try:
            services.record_check(record=instance)
        except ValidationError as error:
            self._update_errors(error)
