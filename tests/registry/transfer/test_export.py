"""Dataset export: round trip, Stata/SPSS labels, formula neutralisation, de-identification, logging."""
import csv
import datetime
import io
import re
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from hypothesis import given
from hypothesis import strategies as st

from registry import access, services
from registry.dictionary import TABLES
from registry.management.commands.generate_cohort import cohort_load
from registry.models import ExportLog, FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from registry.transfer.exporting import dataset_export
from registry.transfer.exporting.tables import shift_days
from registry.transfer.exporting.writers import WORKBOOK
from tests import factories as f
from tests import fuzzing
from tests.registry.transfer.test_import_support import centres, cohort, run, table_contents

pytestmark = pytest.mark.django_db
CLINICAL = (FollowUp, SystemicTherapy, Metastasectomy, PrimaryTumour, Patient)


@pytest.fixture
def loaded():
    """A 40-patient synthetic registry in two centres (MUC, HD)."""
    centres()
    tables = cohort(40, seed=21)
    cohort_load(tables)
    return tables


@pytest.fixture
def coordinator():
    centres()
    return f.user("coordinator", memberships=[("MUC", "coordinator")])


def export(tmp_path, *, user=access.SYSTEM, name="export.zip", **options):
    path = tmp_path / name
    with path.open("wb") as handle:
        dataset_export(user=user, out=handle, **options)
    return zipfile.ZipFile(path)


def read_csv(archive, member):
    return list(csv.DictReader(io.TextIOWrapper(archive.open(member), encoding="utf-8", newline="")))


def test_csv_export_imports_back_unchanged_and_restores_records_deleted_since(loaded, tmp_path):
    before = table_contents()
    data = open(export(tmp_path).filename, "rb").read()

    report = run(data, filename="export.zip")

    assert report.ok, report.errors[:5]
    assert report.totals() == {"created": 0, "updated": 0, "unchanged": report.rows} and not report.pseudonyms
    for model in CLINICAL[:-1]:  # every record but the patients themselves
        model.objects.all().delete()
    report = run(data, filename="export.zip")
    assert report.ok, report.errors[:5]
    assert table_contents() == before


def test_an_export_does_not_bring_deleted_patients_back(loaded, tmp_path):
    data = open(export(tmp_path).filename, "rb").read()
    Patient.objects.all().delete()

    report = run(data, filename="export.zip")

    assert not report.ok and not Patient.objects.exists()
    assert {e.column for e in report.errors} == {"patient_id"}
    assert all("was deleted from the registry" in e.message for e in report.errors if e.sheet == "patients.csv")


def test_archive_holds_tables_frame_dictionary_and_readme(loaded, tmp_path, coordinator):
    archive = export(tmp_path, user=coordinator)
    assert sorted(archive.namelist()) == sorted(
        [f"{t}.csv" for t in TABLES] + ["analysis_frame.csv", "data_dictionary.csv", "README.txt"])
    readme = archive.read("README.txt").decode()
    log = ExportLog.objects.get()
    assert f"Data version: {log.data_version}" in readme and "pooled" in readme
    assert (log.user, log.scope, log.file_format, log.deidentify) == (coordinator, "", "csv", "none")
    assert log.counts["patients"] == 40
    frame = read_csv(archive, "analysis_frame.csv")
    assert len(frame) == 40 and {"os_months", "dfs_event", "eligible"} <= set(frame[0])
    dictionary = read_csv(archive, "data_dictionary.csv")
    assert list(dictionary[0]) == ["variable", "table", "type", "label", "codes", "unit", "required", "rule",
                                   "missing_codes"]
    histology = next(r for r in dictionary if r["variable"] == "histology" and r["table"] == "patients")
    assert histology["codes"].startswith("LMS=leiomyosarcoma | SyS=synovial sarcoma")
    recurrence_site = next(r for r in dictionary if r["variable"] == "recurrence_site")
    assert recurrence_site["required"] == "conditional"


def test_one_centres_export_holds_only_that_centre(loaded, tmp_path):
    archive = export(tmp_path, centre="HD")
    patients = read_csv(archive, "patients.csv")
    assert patients and {p["centre"] for p in patients} == {"HD"}
    assert {r["patient_id"][:3] for r in read_csv(archive, "follow_up.csv")} == {"HD-"}
    assert {r["centre"] for r in read_csv(archive, "analysis_frame.csv")} == {"HD"}
    assert ExportLog.objects.get().scope == "HD"


@pytest.mark.parametrize("file_format", ["dta", "sav"])
def test_stata_and_spss_files_carry_variable_and_value_labels(loaded, tmp_path, file_format):
    import pyreadstat

    archive = export(tmp_path, file_format=file_format)
    archive.extractall(tmp_path / "out")
    read = pyreadstat.read_dta if file_format == "dta" else pyreadstat.read_sav
    frame, meta = read(str(tmp_path / "out" / f"patients.{file_format}"))
    labels = dict(zip(meta.column_names, meta.column_labels))
    assert labels["birth_year"] == "year of birth"
    assert labels["extrapulmonary_disease_at_pm"] == "extrapulmonary disease at first PM"
    histology = meta.variable_value_labels["histology"]
    assert histology[1] == "LMS: leiomyosarcoma" and histology[4] == "other: other histology"
    assert meta.variable_value_labels["extrapulmonary_disease_at_pm"] == {0: "no", 1: "yes"}
    stored = Patient.objects.order_by("patient_id").first()
    first = frame.iloc[0]
    assert first["patient_id"] == stored.patient_id
    assert histology[int(first["histology"])].split(":")[0] == stored.histology
    assert first["lung_mets_diagnosis_date"] == stored.lung_mets_diagnosis_date

    pms, pm_meta = read(str(tmp_path / "out" / f"metastasectomies.{file_format}"))
    assert pm_meta.variable_value_labels["clavien_dindo"][4] == "IIIa"
    assert len(pms) == Metastasectomy.objects.count()
    analysis, frame_meta = read(str(tmp_path / "out" / f"analysis_frame.{file_format}"))
    assert len(analysis) == 40 and frame_meta.variable_value_labels["size_gt_2cm"] == {0: "no", 1: "yes"}


def test_formulas_are_neutralised_and_negative_numbers_stay_numbers(tmp_path):
    centres()
    patient = f.patient("MUC", suffix="FORMULA", lung_mets_diagnosis_date=datetime.date(2015, 3, 1))
    f.primary_tumour(patient, diagnosis_date=datetime.date(2015, 6, 1), surgery_date=datetime.date(2015, 7, 1)).save()
    f.metastasectomy(patient, surgery_date=datetime.date(2015, 8, 1)).save()
    for start, text in ((datetime.date(2015, 9, 1), '=HYPERLINK("http://x","click")'),
                        (datetime.date(2015, 10, 1), "-1+2"), (datetime.date(2015, 11, 1), "@SUM(A1)")):
        f.systemic_therapy(patient, start_date=start, end_date=None, regimen="other", regimen_other=text).save()

    archive = export(tmp_path)
    others = [r["regimen_other"] for r in read_csv(archive, "systemic_therapies.csv")]
    assert others == ["'=HYPERLINK(\"http://x\",\"click\")", "'-1+2", "'@SUM(A1)"]
    [frame] = read_csv(archive, "analysis_frame.csv")
    assert float(frame["dfi_months"]) < 0 and frame["dfi_months"].startswith("-")  # lung mets found first

    import openpyxl
    book = export(tmp_path, name="x.zip", file_format="xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(book.read(WORKBOOK)), read_only=True)["systemic_therapies"]
    # In the workbook the text stays as recorded: an inline string is never a formula.
    assert [row[4] for row in sheet.iter_rows(min_row=2, values_only=True)] == [o[1:] for o in others]
    frame_sheet = openpyxl.load_workbook(io.BytesIO(book.read("analysis_frame.xlsx")), read_only=True).active
    header, values = list(frame_sheet.iter_rows(values_only=True))
    dfi = dict(zip(header, values))["dfi_months"]
    assert isinstance(dfi, float) and dfi < 0

    # Re-importing the neutralised text gives back what was stored.
    SystemicTherapy.objects.all().delete()
    assert run(open(archive.filename, "rb").read(), filename="export.zip").ok
    assert sorted(SystemicTherapy.objects.values_list("regimen_other", flat=True)) == sorted(
        ['=HYPERLINK("http://x","click")', "-1+2", "@SUM(A1)"])


def test_shift_dates_moves_each_patients_dates_by_one_stable_secret_offset(loaded, tmp_path):
    first = export(tmp_path, name="a.zip", deidentify="shift-dates")
    second = export(tmp_path, name="b.zip", deidentify="shift-dates")
    assert read_csv(first, "follow_up.csv") == read_csv(second, "follow_up.csv")

    offsets = set()
    stored = Metastasectomy.objects.order_by("patient_id", "surgery_date")
    exported = read_csv(first, "metastasectomies.csv")  # the export's order: patient, date
    assert len(exported) == len(stored)
    for row, pm in zip(exported, stored):
        assert row["patient_id"] == pm.patient_id
        delta = (datetime.date.fromisoformat(row["surgery_date"]) - pm.surgery_date).days
        assert delta == shift_days(pm.patient_id) and delta != 0
        offsets.add(delta)
    assert len(offsets) > 5 and all(-180 <= d <= 180 for d in offsets)

    # Intervals within a patient are preserved: lung metastases → first PM.
    shifted_patients = {r["patient_id"]: r for r in read_csv(first, "patients.csv")}
    for patient in Patient.objects.all()[:10]:
        index = Metastasectomy.objects.filter(patient=patient).order_by("surgery_date").first().surgery_date
        row = shifted_patients[patient.patient_id]
        frame_index = next(r["index_date"] for r in read_csv(first, "analysis_frame.csv")
                           if r["patient_id"] == patient.patient_id)
        assert (datetime.date.fromisoformat(frame_index) - datetime.date.fromisoformat(row["lung_mets_diagnosis_date"])
                == index - patient.lung_mets_diagnosis_date)
    assert ExportLog.objects.filter(deidentify="shift-dates").count() == 2


def test_intervals_replace_dates_by_days_from_the_index_operation(loaded, tmp_path):
    archive = export(tmp_path, deidentify="intervals")
    pms = read_csv(archive, "metastasectomies.csv")
    assert "surgery_date" not in pms[0] and "surgery_date_days" in pms[0]
    by_patient = {}
    for row in pms:
        by_patient.setdefault(row["patient_id"], []).append(int(row["surgery_date_days"]))
    assert all(min(days) == 0 for days in by_patient.values())
    for row in read_csv(archive, "patients.csv")[:10]:
        patient = Patient.objects.get(pk=row["patient_id"])
        index = Metastasectomy.objects.filter(patient=patient).order_by("surgery_date").first().surgery_date
        assert int(row["lung_mets_diagnosis_date_days"]) == (patient.lung_mets_diagnosis_date - index).days
    frame = read_csv(archive, "analysis_frame.csv")
    assert "index_date" not in frame[0] and {r["index_date_days"] for r in frame} == {"0"}
    variables = {(r["table"], r["variable"]): r for r in read_csv(archive, "data_dictionary.csv")}
    assert variables[("follow_up", "event_date_days")]["unit"] == "days from the index operation"
    assert "days from the patient's index operation" in archive.read("README.txt").decode()


def test_xlsx_export_has_real_dates(loaded, tmp_path):
    import openpyxl

    archive = export(tmp_path, file_format="xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(archive.read(WORKBOOK)), read_only=True)["follow_up"]
    header, first = list(sheet.iter_rows(max_row=2, values_only=True))
    assert header[:3] == ("patient_id", "event_date", "event")
    assert isinstance(first[1], datetime.datetime)


def test_command_writes_the_archive_and_refuses_a_nurse(loaded, tmp_path):
    out = io.StringIO()
    call_command("export_registry", file_format="csv", out=str(tmp_path / "pooled.zip"), centre="muc", stdout=out)
    assert "Wrote" in out.getvalue()
    assert {r["centre"] for r in read_csv(zipfile.ZipFile(tmp_path / "pooled.zip"), "patients.csv")} == {"MUC"}
    f.user("nurse", memberships=[("MUC", "nurse")])
    with pytest.raises(CommandError, match="may not export"):
        call_command("export_registry", out=str(tmp_path / "n.zip"), user="nurse", stdout=io.StringIO())
    assert not (tmp_path / "n.zip").exists()
    with pytest.raises(CommandError, match="no centre"):
        call_command("export_registry", out=str(tmp_path / "x.zip"), centre="XYZ", stdout=io.StringIO())


def test_the_date_shift_has_its_own_key_so_rotating_the_secret_key_keeps_every_offset(settings):
    ids = [f"MUC-{n:06d}" for n in range(20)]
    before = [shift_days(pid) for pid in ids]
    settings.SECRET_KEY = "a-rotated-secret-key"
    assert [shift_days(pid) for pid in ids] == before
    settings.EXPORT_SHIFT_KEY = "another-export-shift-key"
    assert [shift_days(pid) for pid in ids] != before


def test_without_a_shift_key_the_shift_is_refused_not_guessed(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.EXPORT_SHIFT_KEY = None
    with pytest.raises(ImproperlyConfigured, match="EXPORT_SHIFT_KEY"):
        shift_days("MUC-000001")


YEAR = re.compile(r"(?<!\d)(19|20)\d\d(?!\d)")


def exported_tables(archive):
    return {name.removesuffix(".csv"): read_csv(archive, name) for name in archive.namelist()
            if name.endswith(".csv") and name != "data_dictionary.csv"}


@fuzzing.fuzz(4)
@given(seed=st.integers(0, 10_000))
def test_an_intervals_export_gives_no_calendar_year_to_recover(tmp_path_factory, seed):
    """The attack that worked: birth_year + age_at_pm = the index year, for every patient; and the
    exclusion reason named the study period's dates. No column, cell or dictionary row may carry a
    calendar year or a date now."""
    with transaction.atomic():
        centres()
        cohort_load(cohort(15, seed=seed))
        archive = export(tmp_path_factory.mktemp("x"), deidentify="intervals")
        transaction.set_rollback(True)
    tables = exported_tables(archive)
    assert all("birth_year" not in rows[0] for rows in tables.values() if rows)
    for table, rows in tables.items():
        for row in rows:
            for column, value in row.items():
                if column not in ("patient_id", "centre"):
                    assert not YEAR.search(value) or column.endswith("_days") and value.lstrip("-").isdigit(), \
                        (table, column, value)
                    assert not re.fullmatch(r"\d{4}-\d\d-\d\d", value), (table, column, value)
    dictionary_rows = read_csv(archive, "data_dictionary.csv")
    assert not [r for r in dictionary_rows if r["variable"] == "birth_year"]


@fuzzing.fuzz(4)
@given(seed=st.integers(0, 10_000))
def test_a_shift_dates_export_never_lies_after_the_export_day(tmp_path_factory, seed):
    """A date moved forward past the export day told the offset's sign and a bound (and the
    registry's own import refused the file)."""
    today = datetime.date.today()
    with transaction.atomic():
        centres()
        cohort_load(cohort(15, seed=seed))
        for patient in Patient.objects.exclude(follow_ups__event="death").filter(metastasectomies__isnull=False).distinct():
            services.record_save(user=access.SYSTEM, record=FollowUp(patient=patient, event="contact", event_date=today))
        archive = export(tmp_path_factory.mktemp("x"), deidentify="shift-dates")
        transaction.set_rollback(True)
    today = today.isoformat()
    for table, rows in exported_tables(archive).items():
        for row in rows:
            for column, value in row.items():
                if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
                    assert value <= today, (table, column, value)


def test_every_offset_moves_dates_back_by_one_to_180_days():
    offsets = {shift_days(f"MUC-{n:06d}") for n in range(2000)}
    assert min(offsets) == -180 and max(offsets) == -1
