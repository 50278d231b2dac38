"""Missing-data codes: unknown (UNK), not done (ND) and not applicable (NA) are answers, distinct from
a blank; only optional fields take one, never beside a value. The record keeps them, the forms set
them, the pages show them, the completeness checks count them as answered and the dictionary lists
them. (Import and export: tests/registry/transfer/test_missing_codes_transfer.py; API and REDCap:
tests/registry/api/test_missing_codes_api.py; analysis: tests/analysis/test_missing_codes_analysis.py.)
"""
import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from registry import dictionary, services
from registry.models import FollowUp, Patient, PrimaryTumour, SystemicTherapy
from registry.web import quality
from tests import factories as f
from tests.registry.web.test_web_entry import form_values

pytestmark = pytest.mark.django_db
D = datetime.date


# --- the record ------------------------------------------------------------------------------------

def test_an_optional_field_takes_a_code_in_place_of_its_value(nurse, case):
    case.ecog, case.missing_codes = None, {"ecog": "UNK"}
    services.record_save(user=nurse, record=case)
    stored = Patient.objects.get()
    assert stored.ecog is None and stored.missing_code("ecog") == "UNK" and stored.version == 2
    assert stored.history.latest().missing_codes == {"ecog": "UNK"}  # audited like any value


def test_a_code_beside_a_value_is_refused_naming_the_field(nurse, case):
    case.missing_codes = {"ecog": "UNK"}  # ecog is 0
    with pytest.raises(ValidationError) as refused:
        services.record_save(user=nurse, record=case)
    assert refused.value.message_dict == {"ecog": ["ECOG has a value and is marked “Unknown” (UNK): keep one of them."]}
    assert Patient.objects.get().missing_codes == {}


@pytest.mark.parametrize("codes, field, words", [
    ({"birth_year": "UNK"}, "birth_year", "Year of birth is required"),
    ({"ecog": "MISSING"}, "ecog", "MISSING is not a missing-data code of ECOG: use UNK, ND, NA."),
    ({"no_such_column": "NA"}, "missing_codes", "There is no column no_such_column."),
])
def test_only_the_listed_codes_of_optional_fields_are_accepted(nurse, case, codes, field, words):
    case.ecog, case.missing_codes = None, codes
    with pytest.raises(ValidationError) as refused:
        services.record_save(user=nurse, record=case)
    assert words in " ".join(refused.value.message_dict[field])


def test_a_radiotherapy_given_with_its_end_unknown_is_complete_with_the_code(nurse):
    patient = f.patient()
    tumour = f.primary_tumour(patient, radiotherapy="adjuvant", radiotherapy_end_date=None)
    with pytest.raises(ValidationError, match="Enter the end date of the radiotherapy"):
        services.record_save(user=nurse, record=tumour)
    tumour.missing_codes = {"radiotherapy_end_date": "UNK"}
    services.record_save(user=nurse, record=tumour)
    assert PrimaryTumour.objects.get().missing_codes == {"radiotherapy_end_date": "UNK"}


def test_the_database_takes_a_code_for_a_conditional_value_and_nothing_else(nurse):
    patient = f.patient()
    coded = f.primary_tumour(patient, radiotherapy="adjuvant", radiotherapy_end_date=None,
                             missing_codes={"radiotherapy_end_date": "UNK"})
    coded.save()  # the constraint, without the model's validation
    bare = f.systemic_therapy(patient, regimen="other", regimen_other=None)
    with transaction.atomic(), pytest.raises(IntegrityError):
        bare.save()
    bare.missing_codes = {"regimen_other": "UNK"}
    bare.save()
    assert SystemicTherapy.objects.get().missing_code("regimen_other") == "UNK"


def test_no_code_stands_in_for_the_site_of_a_recurrence(nurse, case):
    event = f.follow_up(case, event_date=D(2016, 6, 1), event="recurrence", missing_codes={"recurrence_site": "UNK"})
    with pytest.raises(ValidationError, match="The site of a recurrence is required"):
        services.record_save(user=nurse, record=event)
    contact = f.follow_up(case, event_date=D(2016, 6, 1), missing_codes={"recurrence_site": "NA", "cause_of_death": "NA"})
    services.record_save(user=nurse, record=contact)
    assert FollowUp.objects.get(event_date=D(2016, 6, 1)).missing_codes == {"recurrence_site": "NA",
                                                                            "cause_of_death": "NA"}


def test_whole_cases_are_written_in_bulk_with_their_codes(nurse):
    """cases_create's COPY path (PostgreSQL; an executemany on SQLite) writes the codes and their audit rows."""
    from registry.cases import Case

    patient = Patient(patient_id="MUC-BULK01", centre=f.centre("MUC"), **f.patient_values(ecog=None),
                      missing_codes={"ecog": "ND"})
    tumour = f.primary_tumour(patient, grade=None, missing_codes={"grade": "UNK"})
    services.cases_create(user=nurse, cases=[Case(patient=patient, primary_tumour=tumour)])
    assert Patient.objects.get().missing_codes == {"ecog": "ND"}
    assert PrimaryTumour.objects.get().missing_codes == {"grade": "UNK"}
    assert PrimaryTumour.history.get().missing_codes == {"grade": "UNK"}


# --- the dictionary ----------------------------------------------------------------------------------

def test_the_dictionary_lists_the_codes_of_every_optional_column_and_none_for_a_required_one():
    rows = {(row["table"], row["variable"]): row for row in dictionary.as_rows()}
    assert rows[("patients", "ecog")]["missing_codes"] == "UNK=Unknown | ND=Not done | NA=Not applicable"
    assert rows[("systemic_therapies", "end_date")]["missing_codes"].startswith("UNK=Unknown")
    assert rows[("patients", "birth_year")]["missing_codes"] == ""
    assert rows[("patients", "patient_id")]["missing_codes"] == ""
    assert "missing_codes" not in {row["variable"] for row in rows.values()}  # no column of its own
    optional = {(c.table, c.name) for cols in dictionary.COLUMNS.values() for c in cols if not c.required}
    coded = {(c.table, c.name) for cols in dictionary.COLUMNS.values() for c in cols if c.missing_codes}
    assert coded == optional


# --- the forms -----------------------------------------------------------------------------------------

def test_the_form_offers_a_labelled_code_choice_beside_each_optional_field_only(client, nurse, case):
    client.force_login(nurse)
    html = client.get(reverse("patient_edit", args=[case.pk])).content.decode()
    assert ('<label for="id_missing_ecog"><span class="visually-hidden">ECOG: </span>empty because</label>'
            in html)
    assert '<option value="UNK">Unknown</option>' in html and '<option value="NA">Not applicable</option>' in html
    assert "id_missing_birth_year" not in html and "id_missing_sex" not in html


def test_a_nurse_marks_a_value_unknown_and_the_patient_page_and_history_say_so(client, nurse, case):
    client.force_login(nurse)
    url = reverse("patient_edit", args=[case.pk])
    response = client.post(url, {**form_values(client.get(url)), "ecog": "", "missing_ecog": "UNK"})
    assert response.status_code == 302
    assert Patient.objects.get().missing_codes == {"ecog": "UNK"}
    page = client.get(reverse("patient_detail", args=[case.pk]))
    assert ("ECOG", "Unknown") in [(str(name), value) for name, value in page.context["patient_details"]]
    history = client.get(reverse("patient_history", args=[case.pk])).context["entries"]
    assert ("ECOG", "0", "Unknown") in history[0]["changes"]
    assert client.get(url).context["form"]["missing_ecog"].value() == "UNK"  # the form shows the stored code


def test_a_value_and_a_code_together_are_refused_at_the_field_and_nothing_is_saved(client, nurse, case):
    client.force_login(nurse)
    tumour = PrimaryTumour.objects.get()
    url = reverse("record_edit", args=[case.pk, "primary-tumour", tumour.pk])
    response = client.post(url, {**form_values(client.get(url)), "grade": "G2", "missing_grade": "ND"})
    assert response.status_code == 200
    assert response.context["form"].errors["grade"] == ["Grade has a value and is marked “Not done”: keep one of them."]
    assert PrimaryTumour.objects.get().grade == "G3" and PrimaryTumour.objects.get().version == 1


def test_a_value_entered_later_replaces_the_code(client, nurse, case):
    client.force_login(nurse)
    tumour = PrimaryTumour.objects.get()
    url = reverse("record_edit", args=[case.pk, "primary-tumour", tumour.pk])
    client.post(url, {**form_values(client.get(url)), "size_mm": "", "missing_size_mm": "UNK"})
    assert PrimaryTumour.objects.get().missing_codes == {"size_mm": "UNK"}
    client.post(url, {**form_values(client.get(url)), "size_mm": "75", "missing_size_mm": ""})
    stored = PrimaryTumour.objects.get()
    assert stored.size_mm == 75 and stored.missing_codes == {} and stored.version == 3


def test_a_new_patient_is_created_with_its_code(client, nurse):
    f.centre("MUC")
    client.force_login(nurse)
    response = client.post(reverse("patient_new", args=["MUC"]), {
        "sex": "male", "birth_year": "1970", "histology": "SyS", "lung_mets_diagnosis_date": "2018-02-01",
        "extrapulmonary_disease_at_pm": "false", "ecog": "", "missing_ecog": "ND"})
    assert response.status_code == 302
    assert Patient.objects.get().missing_codes == {"ecog": "ND"}


def test_a_therapy_form_takes_an_unknown_end_date(client, nurse, case):
    client.force_login(nurse)
    url = reverse("record_add", args=[case.pk, "systemic-therapies"])
    response = client.post(url, {**form_values(client.get(url)), "start_date": "2015-09-01", "regimen": "gemcitabine",
                                 "intent": "palliative", "end_date": "", "missing_end_date": "UNK"})
    assert response.status_code == 302
    assert SystemicTherapy.objects.get(start_date=D(2015, 9, 1)).missing_codes == {"end_date": "UNK"}


# --- completeness ------------------------------------------------------------------------------------

def test_a_code_counts_as_answered_in_the_completeness_checks(client, nurse, coordinator):
    blank, coded, valued = (f.patient("MUC", ecog=None), f.patient("MUC", ecog=None), f.patient("MUC", ecog=1))
    coded.missing_codes = {"ecog": "NA"}
    services.record_save(user=nurse, record=coded)
    for patient, grade, codes in ((blank, None, {}), (coded, None, {"grade": "UNK"}), (valued, "G1", {})):
        services.record_save(user=nurse, record=f.primary_tumour(patient, grade=grade, missing_codes=codes))
    annotated = {p.pk: {gap.code for gap in quality.gaps(p)}
                 for p in quality.with_completeness(Patient.objects.all())}
    assert {"ecog_blank", "grade_blank"} <= annotated[blank.pk]
    assert not {"ecog_blank", "grade_blank"} & annotated[coded.pk]
    assert not {"ecog_blank", "grade_blank"} & annotated[valued.pk]
    client.force_login(coordinator)
    counts = {gap.code: count for gap, count in client.get(reverse("data_quality", args=["MUC"])).context["counts"]}
    assert counts["ecog_blank"] == 1 and counts["grade_blank"] == 1
