"""Synthetic cohorts are reproducible, obey the data dictionary, and carry a known truth.

Pure pytest (no database): runs with `-p no:django` as well as under pytest-django.
"""
import datetime
import math
import re
from collections import Counter, defaultdict

import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from openpyxl import load_workbook

from registry.synthetic import (
    COLUMNS,
    DEFAULT_DATA_CUT,
    TABLES,
    CohortModel,
    LogHazardRatios,
    generate_cohort,
    write_workbook,
)

DAYS_PER_MONTH = 365.25 / 12
STUDY_WINDOW = (datetime.date(2009, 1, 1), datetime.date(2021, 12, 31))

# Column names and codes copied from ../shared/spec/data-dictionary.md (v1), not from the module.
DICTIONARY_COLUMNS = {
    "patients": "patient_id centre sex birth_year histology lung_mets_diagnosis_date "
                "extrapulmonary_disease_at_pm ecog",
    "primary_tumours": "patient_id diagnosis_date site size_mm depth grade surgery_date margin "
                       "radiotherapy radiotherapy_end_date local_recurrence_before_pm",
    "metastasectomies": "patient_id surgery_date side approach resection_type lesions_resected "
                        "max_lesion_diameter_mm diameter_source margin lymph_node_sampling "
                        "clavien_dindo hospital_stay_days",
    "systemic_therapies": "patient_id start_date end_date regimen regimen_other intent cycles "
                          "best_response",
    "follow_up": "patient_id event_date event recurrence_site cause_of_death",
}
CODES = {
    ("patients", "sex"): {"female", "male", "diverse"},
    ("patients", "histology"): {"LMS", "SyS", "UPS", "other"},
    ("primary_tumours", "site"): {"extremity", "trunk", "retroperitoneum", "uterus", "visceral",
                                  "head_neck", "other"},
    ("primary_tumours", "depth"): {"superficial", "deep"},
    ("primary_tumours", "grade"): {"G1", "G2", "G3", "GX"},
    ("primary_tumours", "margin"): {"R0", "R1", "R2", "RX"},
    ("primary_tumours", "radiotherapy"): {"none", "neoadjuvant", "adjuvant"},
    ("metastasectomies", "side"): {"left", "right", "bilateral"},
    ("metastasectomies", "approach"): {"vats", "thoracotomy", "robotic", "sternotomy",
                                       "conversion"},
    ("metastasectomies", "resection_type"): {"wedge", "segmentectomy", "lobectomy",
                                             "pneumonectomy", "combined"},
    ("metastasectomies", "diameter_source"): {"pathology", "ct"},
    ("metastasectomies", "margin"): {"R0", "R1", "R2"},
    ("metastasectomies", "clavien_dindo"): {"none", "I", "II", "IIIa", "IIIb", "IVa", "IVb", "V"},
    ("systemic_therapies", "regimen"): {
        "doxorubicin", "doxorubicin_ifosfamide", "doxorubicin_dacarbazine",
        "doxorubicin_trabectedin", "ifosfamide", "gemcitabine_docetaxel", "gemcitabine",
        "trabectedin", "pazopanib", "eribulin", "dacarbazine", "other"},
    ("systemic_therapies", "intent"): {"primary_neoadjuvant", "primary_adjuvant", "pm_neoadjuvant",
                                       "pm_adjuvant", "palliative"},
    ("systemic_therapies", "best_response"): {"CR", "PR", "SD", "PD", "NE"},
    ("follow_up", "event"): {"recurrence", "death", "contact"},
    ("follow_up", "recurrence_site"): {"lung", "local", "distant", "multiple"},
    ("follow_up", "cause_of_death"): {"sarcoma", "treatment", "other", "unknown"},
}
RANGES = {
    ("patients", "ecog"): (0, 4), ("primary_tumours", "size_mm"): (1, 500),
    ("metastasectomies", "lesions_resected"): (1, 100),
    ("metastasectomies", "max_lesion_diameter_mm"): (1, 200),
    ("metastasectomies", "hospital_stay_days"): (0, 365), ("systemic_therapies", "cycles"): (1, 50),
}
REQUIRED = {
    "patients": {"patient_id", "centre", "sex", "birth_year", "histology",
                 "lung_mets_diagnosis_date", "extrapulmonary_disease_at_pm"},
    "primary_tumours": {"patient_id", "diagnosis_date", "site"},
    "metastasectomies": {"patient_id", "surgery_date", "side", "approach", "resection_type",
                         "lesions_resected", "max_lesion_diameter_mm", "margin", "clavien_dindo"},
    "systemic_therapies": {"patient_id", "start_date", "regimen", "intent"},
    "follow_up": {"patient_id", "event_date", "event"},
}
DATE_COLUMNS = {"lung_mets_diagnosis_date", "diagnosis_date", "surgery_date",
                "radiotherapy_end_date", "start_date", "end_date", "event_date"}
BOOL_COLUMNS = {"extrapulmonary_disease_at_pm", "local_recurrence_before_pm",
                "lymph_node_sampling"}
PSEUDONYM = re.compile(r"^[A-Z]{2,8}-[0-9A-HJKMNP-TV-Z]{6}$")
MAJOR_COMPLICATIONS = {"IIIa", "IIIb", "IVa", "IVb", "V"}


@pytest.fixture(scope="module")
def cohort():
    return generate_cohort(patients=2000, centres=6, seed=20240630)


@pytest.fixture(scope="module")
def records(cohort):
    """{patient_id: {table: [rows]}}"""
    by_patient = defaultdict(lambda: defaultdict(list))
    for table in TABLES:
        for row in cohort[table]:
            by_patient[row["patient_id"]][table].append(row)
    return by_patient


def analysis_frame(cohort):
    """One row per patient, derived from the records as ../shared/spec/endpoints.md says."""
    by_patient = defaultdict(lambda: defaultdict(list))
    for table in TABLES:
        for row in cohort[table]:
            by_patient[row["patient_id"]][table].append(row)
    rows = []
    for patient in cohort["patients"]:
        r = by_patient[patient["patient_id"]]
        index_pm = min(r["metastasectomies"], key=lambda pm: pm["surgery_date"])
        index = index_pm["surgery_date"]
        dates = [pm["surgery_date"] for pm in r["metastasectomies"]]
        dates += [event["event_date"] for event in r["follow_up"]]
        dates += [d for line in r["systemic_therapies"] for d in (line["start_date"],
                                                                   line["end_date"]) if d]
        last_known = max(dates)
        deaths = [e["event_date"] for e in r["follow_up"] if e["event"] == "death"]
        recurrences = sorted(e["event_date"] for e in r["follow_up"]
                             if e["event"] == "recurrence" and e["event_date"] >= index)
        dfs_end = min(recurrences[:1] + deaths, default=last_known)
        primary = r["primary_tumours"][0]
        lung = patient["lung_mets_diagnosis_date"]
        ends = [primary["surgery_date"], primary["radiotherapy_end_date"]]
        ends += [line["end_date"] for line in r["systemic_therapies"]]
        ends = [d for d in ends if d is not None and d <= lung]
        tfi_months = (lung - max(ends)).days / DAYS_PER_MONTH if ends else 0.0
        rows.append({
            "os_months": ((deaths[0] if deaths else last_known) - index).days / DAYS_PER_MONTH,
            "os_event": int(bool(deaths)),
            "dfs_months": (dfs_end - index).days / DAYS_PER_MONTH,
            "dfs_event": int(bool(recurrences or deaths)),
            "size_gt_2cm": int(index_pm["max_lesion_diameter_mm"] > 20),
            "multiple_lesions": int(index_pm["lesions_resected"] > 1),
            "tfi_gt_12m": int(tfi_months > 12),
            "histology_sys": int(patient["histology"] == "SyS"),
            "histology_ups": int(patient["histology"] == "UPS"),
            "eligible": (patient["histology"] in ("LMS", "SyS", "UPS")
                         and index_pm["margin"] == "R0"
                         and not patient["extrapulmonary_disease_at_pm"]
                         and STUDY_WINDOW[0] <= index <= STUDY_WINDOW[1]),
        })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study_cohort():
    # One fixed draw. A 95 % CI misses the truth in 1 of 20 draws, so any seed fails one of the
    # three CI checks below with ~14 % probability; over 100 seeds the z-scores of all ten
    # coefficients had mean 0 ± 0.13 and SD 0.88–1.09 (no bias). If a model change makes this
    # seed miss, check a few seeds before suspecting the model.
    frame = analysis_frame(generate_cohort(patients=5000, centres=8, seed=2))
    return frame[frame["eligible"]].drop(columns="eligible")


def test_same_seed_gives_identical_cohort():
    assert (generate_cohort(patients=300, centres=4, seed=11)
            == generate_cohort(patients=300, centres=4, seed=11))


def test_different_seed_gives_different_cohort():
    first = generate_cohort(patients=300, centres=4, seed=11)
    second = generate_cohort(patients=300, centres=4, seed=12)
    assert first["patients"] != second["patients"]
    assert first["follow_up"] != second["follow_up"]


def test_tables_and_columns_are_the_dictionarys(cohort):
    assert TABLES == ("patients", "primary_tumours", "metastasectomies", "systemic_therapies",
                      "follow_up")
    for table in TABLES:
        assert COLUMNS[table] == DICTIONARY_COLUMNS[table].split()
        assert all(list(row) == COLUMNS[table] for row in cohort[table])


def test_values_are_plain_python_types_and_required_values_present(cohort):
    for table in TABLES:
        for row in cohort[table]:
            for column, value in row.items():
                if value is None:
                    assert column not in REQUIRED[table], (table, column)
                elif column in DATE_COLUMNS:
                    assert type(value) is datetime.date
                elif column in BOOL_COLUMNS:
                    assert type(value) is bool
                else:
                    assert type(value) in (int, float, str), (table, column, value)


def test_codes_and_ranges_are_valid(cohort):
    for (table, column), codes in CODES.items():
        used = {row[column] for row in cohort[table]} - {None}
        assert used <= codes, (table, column, used - codes)
    for (table, column), (low, high) in RANGES.items():
        values = [row[column] for row in cohort[table] if row[column] is not None]
        assert values and low <= min(values) and max(values) <= high, (table, column)
    assert all(1900 <= p["birth_year"] <= DEFAULT_DATA_CUT.year for p in cohort["patients"])


def test_pseudonyms_are_unique_crockford_and_carry_the_centre(cohort):
    ids = [p["patient_id"] for p in cohort["patients"]]
    assert len(set(ids)) == len(ids)
    for patient in cohort["patients"]:
        assert PSEUDONYM.match(patient["patient_id"])
        assert patient["patient_id"].split("-")[0] == patient["centre"]
    assert {p["centre"] for p in cohort["patients"]} == {"MUC", "HD", "ESS", "BER", "HH", "FR"}
    for table in TABLES[1:]:
        assert {row["patient_id"] for row in cohort[table]} <= set(ids)


def test_explicit_centre_codes_are_used_and_bad_ones_refused():
    cohort = generate_cohort(patients=50, centres=["AB", "XYZ"], seed=1)
    assert {p["centre"] for p in cohort["patients"]} == {"AB", "XYZ"}
    with pytest.raises(ValueError):
        generate_cohort(patients=5, centres=["muc"], seed=1)
    with pytest.raises(ValueError):
        generate_cohort(patients=5, centres=0, seed=1)


def test_conditional_values_are_present_exactly_when_the_dictionary_requires(cohort):
    for primary in cohort["primary_tumours"]:
        given = primary["radiotherapy"] in ("neoadjuvant", "adjuvant")
        assert (primary["radiotherapy_end_date"] is not None) == given
    for line in cohort["systemic_therapies"]:
        assert (line["regimen_other"] is not None) == (line["regimen"] == "other")
        if line["regimen_other"] is not None:
            assert 0 < len(line["regimen_other"]) <= 100
    for event in cohort["follow_up"]:
        assert (event["recurrence_site"] is not None) == (event["event"] == "recurrence")
        if event["event"] != "death":
            assert event["cause_of_death"] is None


def test_chronology_rules_hold_for_every_patient(cohort, records):
    cut = DEFAULT_DATA_CUT
    assert len(records) == 2000
    for patient in cohort["patients"]:
        r = records[patient["patient_id"]]
        pid = patient["patient_id"]
        assert len(r["primary_tumours"]) == 1 and r["metastasectomies"], pid
        primary = r["primary_tumours"][0]
        pm_dates = [pm["surgery_date"] for pm in r["metastasectomies"]]
        index = min(pm_dates)
        assert len(set(pm_dates)) == len(pm_dates), pid
        assert patient["birth_year"] <= primary["diagnosis_date"].year, pid
        assert 25 <= index.year - patient["birth_year"] <= 80, pid
        if primary["surgery_date"]:
            assert primary["diagnosis_date"] <= primary["surgery_date"], pid
        if primary["radiotherapy_end_date"]:
            assert primary["radiotherapy_end_date"] >= primary["diagnosis_date"], pid
        assert patient["lung_mets_diagnosis_date"] <= index, pid
        assert all(event["event_date"] >= index for event in r["follow_up"]), pid
        for line in r["systemic_therapies"]:
            assert line["end_date"] is None or line["end_date"] >= line["start_date"], pid

        deaths = [e["event_date"] for e in r["follow_up"] if e["event"] == "death"]
        assert len(deaths) <= 1, pid
        every_date = [patient["lung_mets_diagnosis_date"], primary["diagnosis_date"],
                      primary["surgery_date"], primary["radiotherapy_end_date"], *pm_dates]
        every_date += [e["event_date"] for e in r["follow_up"]]
        every_date += [d for line in r["systemic_therapies"]
                       for d in (line["start_date"], line["end_date"])]
        every_date = [d for d in every_date if d is not None]
        assert max(every_date) <= cut, pid
        # The last known date is a follow-up event: the death, or a contact for the living.
        last_events = [e for e in r["follow_up"] if e["event_date"] == max(every_date)]
        assert {e["event"] for e in last_events} & ({"death"} if deaths else {"contact"}), pid


def test_out_of_cohort_patients_come_in_the_configured_proportions(cohort, records):
    n = len(cohort["patients"])
    index_pm = {pid: min(r["metastasectomies"], key=lambda pm: pm["surgery_date"])
                for pid, r in records.items()}
    shares = {
        "other histology": sum(p["histology"] == "other" for p in cohort["patients"]) / n,
        "index margin R1/R2": sum(pm["margin"] != "R0" for pm in index_pm.values()) / n,
        "extrapulmonary": sum(p["extrapulmonary_disease_at_pm"] for p in cohort["patients"]) / n,
        "index before 2009": sum(pm["surgery_date"] < STUDY_WINDOW[0]
                                 for pm in index_pm.values()) / n,
    }
    expected = {"other histology": 0.05, "index margin R1/R2": 0.05, "extrapulmonary": 0.06,
                "index before 2009": 0.05}
    for reason, share in shares.items():
        assert share == pytest.approx(expected[reason], abs=0.02), reason  # ± 4 standard errors


def test_covariates_and_complications_have_the_described_distribution(cohort, records):
    index_pm = [min(r["metastasectomies"], key=lambda pm: pm["surgery_date"])
                for r in records.values()]
    n = len(index_pm)
    assert sum(pm["max_lesion_diameter_mm"] > 20 for pm in index_pm) / n == pytest.approx(
        0.40, abs=0.04)
    assert sum(pm["lesions_resected"] == 1 for pm in index_pm) / n == pytest.approx(0.55, abs=0.04)
    assert 0.02 <= sum(pm["clavien_dindo"] in MAJOR_COMPLICATIONS for pm in index_pm) / n <= 0.05
    frame = analysis_frame(cohort)
    assert frame["tfi_gt_12m"].mean() == pytest.approx(0.50, abs=0.05)
    synchronous = [(p["lung_mets_diagnosis_date"] - records[p["patient_id"]]["primary_tumours"][0][
        "diagnosis_date"]).days / DAYS_PER_MONTH <= 3 for p in cohort["patients"]]
    assert sum(synchronous) / n == pytest.approx(0.15, abs=0.03)
    repeat = sum(len(r["metastasectomies"]) > 1 for r in records.values()) / n
    assert 0.05 < repeat < 0.35
    ecog_blank = sum(p["ecog"] is None for p in cohort["patients"]) / n
    assert ecog_blank == pytest.approx(0.25, abs=0.04)


def test_peri_pm_systemic_therapy_in_about_thirty_percent(cohort, records):
    def peri_pm(r):
        index = min(pm["surgery_date"] for pm in r["metastasectomies"])
        return any(
            (line["intent"] == "pm_neoadjuvant"
             and 0 <= (index - line["start_date"]).days <= 365.25 / 2)
            or (line["intent"] == "pm_adjuvant"
                and 0 <= (line["start_date"] - index).days <= 365.25 / 2)
            for line in r["systemic_therapies"])
    share = sum(peri_pm(r) for r in records.values()) / len(records)
    assert share == pytest.approx(0.30, abs=0.05)


def test_cox_recovers_the_generating_log_hazard_ratios(study_cohort):
    model = CohortModel()
    covariates = ["size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology_sys",
                  "histology_ups"]
    for endpoint, truth, checked in (("dfs", model.dfs_log_hr, ["size_gt_2cm"]),
                                     ("os", model.os_log_hr, ["size_gt_2cm", "tfi_gt_12m"])):
        cox = CoxPHFitter().fit(study_cohort[[f"{endpoint}_months", f"{endpoint}_event",
                                              *covariates]],
                                duration_col=f"{endpoint}_months", event_col=f"{endpoint}_event")
        summary = cox.summary
        for covariate in covariates:
            true = getattr(truth, covariate)
            low, high = summary.loc[covariate, ["coef lower 95%", "coef upper 95%"]]
            if covariate in checked:
                assert low <= true <= high, (endpoint, covariate, low, true, high)
            se = summary.loc[covariate, "se(coef)"]
            assert abs(summary.loc[covariate, "coef"] - true) < 3 * se, (endpoint, covariate)


def test_kaplan_meier_medians_are_near_the_studys(study_cohort):
    dfs = KaplanMeierFitter().fit(study_cohort["dfs_months"], study_cohort["dfs_event"])
    os_ = KaplanMeierFitter().fit(study_cohort["os_months"], study_cohort["os_event"])
    assert 6 <= dfs.median_survival_time_ <= 9
    assert 48 <= os_.median_survival_time_ <= 70


def test_model_refuses_a_non_positive_recurrence_rate():
    default = CohortModel()
    too_deadly = LogHazardRatios(**{**vars(default.os_log_hr), "size_gt_2cm": math.log(50)})
    with pytest.raises(ValueError, match="recurrence rate"):
        CohortModel(os_log_hr=too_deadly)


def test_an_earlier_data_cut_bounds_every_date():
    cut = datetime.date(2015, 12, 31)
    cohort = generate_cohort(patients=300, centres=3, seed=5, data_cut=cut)
    for table in TABLES:
        for row in cohort[table]:
            for column in DATE_COLUMNS & set(row):
                assert row[column] is None or row[column] <= cut


def test_workbook_round_trip(tmp_path):
    cohort = generate_cohort(patients=50, centres=3, seed=3)
    path = tmp_path / "cohort.xlsx"
    write_workbook(cohort, path)
    workbook = load_workbook(path)
    assert workbook.sheetnames == list(TABLES)
    columns = {table: ["local_id", *COLUMNS[table][1:]] for table in TABLES}  # new patients: local keys
    for table in TABLES:
        sheet = workbook[table]
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == columns[table]
        assert len(rows) == 1 + len(cohort[table])
    patients = workbook["patients"]
    first = dict(zip(columns["patients"], next(patients.iter_rows(min_row=2, max_row=2))))
    expected = cohort["patients"][0]
    assert first["local_id"].value == "P1"
    assert first["lung_mets_diagnosis_date"].is_date
    assert first["lung_mets_diagnosis_date"].number_format == "yyyy-mm-dd"
    assert first["lung_mets_diagnosis_date"].value.date() == expected["lung_mets_diagnosis_date"]
    assert first["extrapulmonary_disease_at_pm"].value == (
        "yes" if expected["extrapulmonary_disease_at_pm"] else "no")
    blanks = Counter(row["ecog"] is None for row in cohort["patients"])[True]
    assert sum(cell.value is None for (cell,) in patients.iter_rows(
        min_row=2, min_col=COLUMNS["patients"].index("ecog") + 1,
        max_col=COLUMNS["patients"].index("ecog") + 1)) == blanks


def test_a_workbook_names_new_patients_by_local_keys_and_their_records_by_the_same(tmp_path):
    cohort = generate_cohort(patients=30, centres=3, seed=4)
    path = tmp_path / "cohort.xlsx"
    write_workbook(cohort, path)
    workbook = load_workbook(path, read_only=True)
    local = {row[0]: row for row in workbook["patients"].iter_rows(min_row=2, values_only=True)}
    assert list(local) == [f"P{n}" for n in range(1, 31)]
    keys = {row["patient_id"]: f"P{n}" for n, row in enumerate(cohort["patients"], start=1)}
    for table in TABLES[1:]:
        assert [row[0] for row in workbook[table].iter_rows(min_row=2, values_only=True)] == [
            keys[row["patient_id"]] for row in cohort[table]]


def test_a_workbook_with_pseudonyms_names_the_generated_patients(tmp_path):
    cohort = generate_cohort(patients=5, centres=2, seed=4)
    path = tmp_path / "cohort.xlsx"
    write_workbook(cohort, path, pseudonyms=True)
    header, *rows = load_workbook(path, read_only=True)["follow_up"].iter_rows(values_only=True)
    assert list(header) == COLUMNS["follow_up"]
    assert [row[0] for row in rows] == [row["patient_id"] for row in cohort["follow_up"]]


def test_no_two_therapies_share_patient_start_date_and_regimen():
    """The import's key of a therapy; seed 22 drew such a pair before it was prevented."""
    cohort = generate_cohort(patients=2200, centres=4, seed=22)
    keys = [(row["patient_id"], row["start_date"], row["regimen"]) for row in cohort["systemic_therapies"]]
    assert len(keys) == len(set(keys))
