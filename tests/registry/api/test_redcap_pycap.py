"""A statistician's PyCap script, unchanged, against the registry served on a live HTTP server:
the records it exports are the registry's data."""
import csv
import datetime
import io

import pandas as pd
import pytest
from redcap import Project, RedcapError
from redcap import request as redcap_request

from registry import services
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import factories as f
from tests.registry.api.test_api_helpers import fresh_throttles, redcap_token_for  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)  # the live server reads committed data only


@pytest.fixture
def registry(nurse, other_nurse):
    """Two MUC cases (one with a repeat PM, a recurrence and a death) and one BER case."""
    cases = []
    for extra in (False, True):
        patient = f.patient("MUC", ecog=None if extra else 1)
        records = [f.primary_tumour(patient, radiotherapy="adjuvant", radiotherapy_end_date=datetime.date(2012, 9, 1)),
                   f.metastasectomy(patient), f.systemic_therapy(patient), f.follow_up(patient)]
        if extra:
            records += [f.metastasectomy(patient, surgery_date=datetime.date(2016, 6, 1), lymph_node_sampling=True),
                        f.follow_up(patient, event_date=datetime.date(2016, 3, 1), event="recurrence",
                                    recurrence_site="lung"),
                        f.follow_up(patient, event_date=datetime.date(2018, 2, 1), event="death",
                                    cause_of_death="sarcoma")]
        for record in records:
            services.record_save(user=nurse, record=record)
        cases.append(patient)
    berlin = f.patient("BER")
    services.record_save(user=other_nurse, record=f.metastasectomy(berlin))
    return cases


@pytest.fixture
def project(live_server, nurse):
    yield Project(f"{live_server.url}/redcap/api/", redcap_token_for(nurse))
    # PyCap keeps one requests session for the process: close its keep-alive connection, so the
    # live server's request thread ends now and not in the middle of the interpreter's exit.
    redcap_request._session.close()


SKIPPED = ("id", "patient", "version", "status", "created_at", "updated_at", "missing_codes", "redcap_instance")
RENAMED = {"surgery_date": "primary_surgery_date", "margin": "primary_margin"}  # primary tumour only


def expected_flat_rows(patients):
    """The registry's records in REDCap's flat layout, built from the ORM (not from the endpoint)."""
    def text(value):
        if value is None:
            return ""
        if isinstance(value, bool):
            return "1" if value else "0"
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    rows = []
    for patient in sorted(patients, key=lambda p: p.pk):
        tumour = PrimaryTumour.objects.get(patient=patient)
        base = {"patient_id": patient.pk, "redcap_repeat_instrument": "", "redcap_repeat_instance": "",
                "centre": patient.centre_id, "sex": patient.sex, "birth_year": text(patient.birth_year),
                "histology": patient.histology, "lung_mets_diagnosis_date": text(patient.lung_mets_diagnosis_date),
                "extrapulmonary_disease_at_pm": text(patient.extrapulmonary_disease_at_pm), "ecog": text(patient.ecog)}
        for field in PrimaryTumour._meta.concrete_fields:
            if field.name not in SKIPPED:
                base[RENAMED.get(field.name, field.name)] = text(getattr(tumour, field.name))
        rows.append(base)
        for model, name in ((Metastasectomy, "metastasectomies"), (SystemicTherapy, "systemic_therapies"),
                            (FollowUp, "follow_up")):
            # Instances in the order the records were entered (their own numbers), not by date.
            for record in model.objects.filter(patient=patient).order_by("redcap_instance"):
                row = {"patient_id": patient.pk, "redcap_repeat_instrument": name,
                       "redcap_repeat_instance": str(record.redcap_instance), f"{name}_id": str(record.pk)}
                for field in model._meta.concrete_fields:
                    if field.name not in SKIPPED:
                        row[field.name] = text(getattr(record, field.name))
                rows.append(row)
    return rows


def test_pycap_exports_records_equal_to_the_registry(project, registry):
    assert project.export_project_info()["is_longitudinal"] == 0
    assert project.is_longitudinal is False  # PyCap asked formEventMapping and got REDCap's error
    assert project.def_field == "patient_id"
    assert str(project.export_version()) == "14.5.0"
    records = project.export_records()
    expected = expected_flat_rows(registry)
    assert len(records) == len(expected) == 4 + 7
    for got, want in zip(records, expected):
        assert {key: got[key] for key in want} == want  # the other centre's case is absent
    assert all(row["patient_id"].startswith("MUC-") for row in records)
    assert records[0]["patients_complete"] == "2"


def test_pycap_metadata_and_field_names(project, registry):
    metadata = project.export_metadata()
    assert metadata[0]["field_name"] == "patient_id"
    assert set(project.forms) == {"patients", "primary_tumours", "metastasectomies", "systemic_therapies",
                                  "follow_up"}
    assert "patient_id" in [row["original_field_name"] for row in project.export_field_names()]
    subset = project.export_records(fields=["sex", "event"], records=[registry[1].pk])
    assert {row["event"] for row in subset if row["redcap_repeat_instrument"] == "follow_up"} == {
        "contact", "recurrence", "death"}
    with pytest.raises(RedcapError):
        project.export_records(fields=["no_such_field"])


def test_pycap_data_frames(project, registry):
    records = project.export_records(format_type="df")
    assert records.index.name == "patient_id"
    assert sorted(set(records.index)) == sorted(p.pk for p in registry)
    pms = records[records["redcap_repeat_instrument"] == "metastasectomies"]
    assert list(pms["max_lesion_diameter_mm"]) == [15.0, 15.0, 15.0]
    deaths = records[records["event"] == "death"]
    assert list(deaths["cause_of_death"]) == ["sarcoma"]
    base = records[records["redcap_repeat_instrument"].isna()]
    assert list(base["birth_year"]) == [1960, 1960]
    assert pd.isna(base.loc[registry[1].pk, "ecog"])  # blank stays unknown, not 0
    metadata = project.export_metadata(format_type="df")
    assert metadata.index.name == "field_name" and metadata.loc["event", "form_name"] == "follow_up"
    assert Patient.objects.count() == 3  # exporting wrote nothing


# --- a round trip: a centre's local REDCap project pushes its changes ------------------------

def key_of(row):
    return row["patient_id"], row["redcap_repeat_instrument"], row["redcap_repeat_instance"]


def test_pycap_export_change_import_export_shows_the_change(project, registry):
    before = project.export_records()
    changed = {key_of(row): dict(row) for row in before}
    second_pm = changed[(registry[1].pk, "metastasectomies", "2")]
    second_pm.update(side="bilateral", hospital_stay_days="7")
    changed[(registry[0].pk, "", "")]["ecog"] = "2"
    assert project.import_records(list(changed.values())) == {"count": 2}
    after = project.export_records()
    assert after == list(changed.values())  # the changes, and nothing else
    pm = Metastasectomy.objects.get(pk=second_pm["metastasectomies_id"])
    assert (pm.side, pm.hospital_stay_days, pm.redcap_instance) == ("bilateral", 7, 2)
    assert pm.history.latest().history_change_reason == "redcap"


def test_pycap_import_of_a_refused_record_gives_redcaps_error_and_writes_nothing(project, registry):
    before = project.export_records()
    rows = [dict(row) for row in before]
    death = next(row for row in rows if row["event"] == "death")
    recurrence = next(row for row in rows if row["event"] == "recurrence")
    recurrence["event_date"] = "2019-01-01"  # after the death
    death["cause_of_death"] = "other"
    with pytest.raises(RedcapError) as refused:
        project.import_records([death, recurrence])
    [line] = list(csv.reader(io.StringIO(refused.value.args[0]["error"])))
    assert line[:3] == [registry[1].pk, "event_date", "2019-01-01"]
    assert "death" in line[3]
    assert project.export_records() == before  # the valid change of the death was not written either
    assert FollowUp.objects.get(patient=registry[1], event="death").cause_of_death == "sarcoma"


def test_pycap_round_trip_of_a_data_frame(project, registry):
    frame = project.export_records(format_type="df")
    is_second_pm = (frame["redcap_repeat_instrument"] == "metastasectomies") & (frame["redcap_repeat_instance"] == 2)
    frame.loc[is_second_pm, "max_lesion_diameter_mm"] = 21.5
    assert project.import_records(frame, import_format="df") == {"count": 2}
    pd.testing.assert_frame_equal(project.export_records(format_type="df"), frame)


def test_pycap_new_patients_get_registry_ids_and_a_reason_goes_in_the_query_string(live_server, project, registry,
                                                                                  nurse):
    new = [{"patient_id": "local-1", "centre": "MUC", "sex": "male", "birth_year": "1971", "histology": "SyS",
            "lung_mets_diagnosis_date": "2019-05-01", "extrapulmonary_disease_at_pm": "0"}]
    [pair] = project.import_records(new, force_auto_number=True, return_content="auto_ids")
    pid, local = pair.split(",")
    assert local == "local-1" and Patient.objects.get(pk=pid).histology == "SyS"

    services.record_status_set(user=nurse, record=registry[0], status="complete")
    base = {"patient_id": registry[0].pk, "ecog": "3"}
    with pytest.raises(RedcapError, match="give a reason"):
        project.import_records([base])
    with_reason = Project(f"{live_server.url}/redcap/api/", project.token, params={"reason": "ECOG rechecked"})
    assert with_reason.import_records([base]) == {"count": 1}
    assert Patient.objects.get(pk=registry[0].pk).history.latest().history_change_reason == "redcap: ECOG rechecked"


def test_pycap_data_access_groups_log_and_date_range(project, registry):
    assert project.export_dags() == [{"data_access_group_name": "Centre MUC", "unique_group_name": "muc",
                                      "data_access_group_id": 10047}]
    records = project.export_records(export_data_access_groups=True)
    assert {row["redcap_data_access_group"] for row in records} == {"muc"}
    log = project.export_logging()
    assert {row["record"] for row in log} == {p.pk for p in registry}
    assert project.export_logging(log_type="record_add", record=registry[0].pk)[0]["action"] == \
        f"Created Record {registry[0].pk}"
    tomorrow = datetime.datetime.now() + datetime.timedelta(days=1)
    assert project.export_records(date_begin=tomorrow) == []
    assert len(project.export_records(date_end=tomorrow)) == len(records)
