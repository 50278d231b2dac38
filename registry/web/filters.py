"""The patient list's search, filters and sort order."""
from django import forms
from django.db.models import F
from django.utils.translation import gettext_lazy as _

from registry import codes
from registry.web import quality


class PatientFilterForm(forms.Form):
    """Search, filters and sort order of the patient list (GET parameters)."""

    SORTS = {
        "patient_id": ("patient_id",),
        "-updated_at": ("-updated_at", "patient_id"),
        "index_date": (F("index_date").asc(nulls_last=True), "patient_id"),
        "histology": ("histology", "patient_id"),
        "centre": ("centre", "patient_id"),
    }

    q = forms.CharField(label=_("Patient ID"), required=False, max_length=21)
    centre = forms.ChoiceField(label=_("Centre"), required=False)
    histology = forms.ChoiceField(label=_("Histology"), required=False,
                                  choices=[("", _("all"))] + codes.HISTOLOGY)
    completeness = forms.ChoiceField(label=_("Completeness"), required=False, choices=[
        ("", _("all")), ("incomplete", _("incomplete")), ("complete", _("complete"))])
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=[
        ("patient_id", _("patient ID")), ("-updated_at", _("last changed")),
        ("index_date", _("date of first metastasectomy")), ("histology", _("histology")), ("centre", _("centre"))])

    def __init__(self, *args, centres, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["centre"].choices = [("", _("all my centres"))] + [(c.code, str(c)) for c in centres]

    def apply(self, patients):
        """Filter and order patients annotated by quality.with_completeness."""
        data = self.cleaned_data
        if data["q"]:
            patients = patients.filter(patient_id__icontains=data["q"].strip())
        if data["centre"]:
            patients = patients.filter(centre=data["centre"])
        if data["histology"]:
            patients = patients.filter(histology=data["histology"])
        if data["completeness"] == "incomplete":
            patients = quality.only_incomplete(patients)
        elif data["completeness"] == "complete":
            patients = quality.only_complete(patients)
        return patients.order_by(*self.SORTS[data["sort"] or "patient_id"])
