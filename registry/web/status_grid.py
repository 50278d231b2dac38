"""The form-status grid of the patient list: for each patient, one status icon per form (the
patient, the primary tumour, the metastasectomies, the systemic therapies, the follow-up), as a
REDCap record status dashboard shows it. A form of several records shows the least advanced of
their statuses (one metastasectomy in progress makes the form in progress); a form without a
record shows a dash. Each icon has its words beside it for screen readers and as its tooltip.
"""
from django.db.models import Count, IntegerField, Value
from django.utils.translation import gettext_lazy as _

from registry.codes import RECORD_STATUS, values
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

FORMS = [(Patient, _("Patient")), (PrimaryTumour, _("Primary tumour")), (Metastasectomy, _("Metastasectomies")),
         (SystemicTherapy, _("Systemic therapies")), (FollowUp, _("Follow-up"))]
ORDER = values(RECORD_STATUS)
LABELS = dict(RECORD_STATUS)
NONE_ENTERED = _("none entered")


def form_statuses(patients):
    """Sets `form_statuses` on each patient: [{"name", "code", "label"}] in FORMS order (one query
    for every patient given: the child tables' statuses, grouped, in a UNION ALL)."""
    ids = [patient.pk for patient in patients]
    found = {}
    if ids:
        grouped = [model.objects.filter(patient_id__in=ids).values_list("patient_id", "status")
                   .annotate(form=Value(index, output_field=IntegerField()), n=Count("pk")).order_by()
                   for index, (model, _name) in enumerate(FORMS) if model is not Patient]
        for patient_id, status, form, _n in grouped[0].union(*grouped[1:], all=True):
            found.setdefault((patient_id, form), set()).add(status)
    for patient in patients:
        found[(patient.pk, 0)] = {patient.status}
        patient.form_statuses = []
        for index, (_model, name) in enumerate(FORMS):
            statuses = found.get((patient.pk, index))
            code = min(statuses, key=ORDER.index) if statuses else ""
            patient.form_statuses.append({"name": name, "code": code, "label": LABELS.get(code, NONE_ENTERED)})
    return patients
