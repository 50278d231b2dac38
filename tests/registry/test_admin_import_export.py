"""The admin's import and export of the clinical tables (django-import-export): a coordinator exports
the filtered rows and imports small corrections, previewed as a diff and confirmed, every row saved
through the services; nobody else may."""
import datetime
import io
import json

import openpyxl
import pytest
import tablib
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from registry import dictionary, services
from registry.models import PATIENT_ID_PATTERN, ExportLog, FollowUp, Metastasectomy, Patient, SecurityEvent
from registry.transfer.admin_import_export import UploadStorage
from registry.transfer.admin_resources import FORMATS
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date
FORMAT_INDEX = {fmt().get_extension(): str(i) for i, fmt in enumerate(FORMATS)}  # the forms' format choices
METASTASECTOMY_COLUMNS = [c.name for c in dictionary.columns("metastasectomies")]


@pytest.fixture
def root(db):
    return f.user("root", is_superuser=True)


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    return client


@pytest.fixture
def patients(root):
    """A MUC and an HD patient, each with a metastasectomy and a follow-up contact."""
    found = []
    for code in ("MUC", "HD"):
        patient = f.patient(code)
        for record in (f.metastasectomy(patient), f.follow_up(patient)):
            services.record_save(user=root, record=record)
        found.append(patient)
    return found


def url(model, action):
    return reverse(f"admin:registry_{model._meta.model_name}_{action}")


def export(client, model, extension, query=""):
    return client.post(f"{url(model, 'export')}{query}", {"format": FORMAT_INDEX[extension], "resource": "0"})


def read_back(response, extension):
    content = response.content
    return tablib.Dataset().load(content if extension in ("xlsx", "ods") else content.decode(), format=extension)


def csv_file(header, *rows, name="metastasectomies.csv"):
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode())


def xlsx_file(header, *rows, name="metastasectomies.xlsx"):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return SimpleUploadedFile(name, buffer.getvalue())


def preview(client, model, upload, reason="corrected from the operation note"):
    extension = upload.name.rsplit(".", 1)[1]
    return client.post(url(model, "import"), {"import_file": upload, "format": FORMAT_INDEX[extension],
                                              "resource": "0", "reason": reason})


def confirm(client, model, preview_response):
    return client.post(url(model, "process_import"), preview_response.context["confirm_form"].initial)


def metastasectomy_row(record, **changes):
    values = {c.name: getattr(record, c.attname) for c in dictionary.columns("metastasectomies")}
    values = {name: "" if v is None else v.isoformat() if isinstance(v, D) else v for name, v in values.items()}
    values.update(changes)
    return [values[name] for name in METASTASECTOMY_COLUMNS]


def lock(record, user):
    for status in ("complete", "verified", "locked"):
        record = services.record_status_set(user=user, record=record, status=status)
    return record


# --- export -------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension", ["xlsx", "csv", "json", "ods"])
def test_a_coordinator_exports_the_filtered_rows_with_the_dictionary_columns(admin_client, patients, extension):
    muc, _hd = patients
    response = export(admin_client, Metastasectomy, extension, "?patient__centre__code__exact=MUC")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Disposition"].endswith(f'.{extension}"')
    data = read_back(response, extension)
    assert data.headers == METASTASECTOMY_COLUMNS
    assert len(data) == 1
    row = dict(zip(data.headers, data[0]))
    assert row["patient_id"] == muc.pk and row["side"] == "right" and row["margin"] == "R0"
    assert str(row["surgery_date"])[:10] == "2015-04-01"
    log = ExportLog.objects.get()
    assert (log.username, log.scope, log.file_format, log.counts) == ("root", "MUC", extension, {"metastasectomies": 1})
    read = SecurityEvent.objects.filter(event=SecurityEvent.READ).latest("at")
    assert (read.patient_id, read.rows, read.what) == (muc.pk, 1, "admin:registry_metastasectomy_export")


def test_the_export_of_every_patient_writes_codes_yes_no_and_missing_data_codes_as_the_dictionary(
        admin_client, patients, root):
    muc, hd = patients
    muc.ecog, muc.missing_codes = None, {"ecog": "UNK"}
    services.record_save(user=root, record=muc, reason="unknown")
    data = read_back(export(admin_client, Patient, "csv"), "csv")
    rows = {row["patient_id"]: row for row in data.dict}
    assert set(rows) == {muc.pk, hd.pk}
    assert rows[muc.pk]["ecog"] == "UNK" and rows[hd.pk]["ecog"] == "0"
    assert rows[muc.pk]["extrapulmonary_disease_at_pm"] == "no" and rows[muc.pk]["histology"] == "LMS"


# --- import: preview and confirmation ------------------------------------------------------------

@pytest.mark.parametrize("make_file", [csv_file, xlsx_file], ids=["csv", "xlsx"])
def test_a_correction_is_previewed_as_a_diff_and_written_through_the_services_when_confirmed(
        admin_client, patients, make_file):
    operation = Metastasectomy.objects.get(patient=patients[0])
    versions = operation.history.count()
    upload = make_file(METASTASECTOMY_COLUMNS, metastasectomy_row(operation, lesions_resected=3))
    shown = preview(admin_client, Metastasectomy, upload)
    page = shown.content.decode()
    assert shown.status_code == 200 and "confirm_form" in shown.context, page[-3000:]
    assert "<ins" in page and "Update" in page  # the diff of the changed cell
    assert Metastasectomy.objects.get(pk=operation.pk).lesions_resected == 1  # the preview wrote nothing
    assert operation.history.count() == versions
    read = SecurityEvent.objects.filter(event=SecurityEvent.READ).latest("at")  # it shows the stored values
    assert (read.patient_id, read.what) == (operation.patient_id, "admin:registry_metastasectomy_import")

    done = confirm(admin_client, Metastasectomy, shown)
    assert done.status_code == 302
    operation.refresh_from_db()
    assert (operation.lesions_resected, operation.version) == (3, 2)
    latest = operation.history.first()
    assert latest.history_user.username == "root"
    assert latest.history_change_reason == "admin import: corrected from the operation note"
    assert operation.history.count() == versions + 1


def test_an_unchanged_row_is_skipped_and_writes_no_new_version(admin_client, patients):
    operation = Metastasectomy.objects.get(patient=patients[0])
    exported = export(admin_client, Metastasectomy, "csv", "?patient__centre__code__exact=MUC").content
    shown = preview(admin_client, Metastasectomy, SimpleUploadedFile("metastasectomies.csv", exported))
    assert "Skipped" in shown.content.decode()
    assert confirm(admin_client, Metastasectomy, shown).status_code == 302
    assert Metastasectomy.objects.get(pk=operation.pk).version == operation.version


def test_a_reason_column_gives_a_row_its_own_reason(admin_client, patients):
    operation = Metastasectomy.objects.get(patient=patients[0])
    upload = csv_file([*METASTASECTOMY_COLUMNS, "reason"],
                      [*metastasectomy_row(operation, hospital_stay_days=6), "discharge letter"])
    assert confirm(admin_client, Metastasectomy, preview(admin_client, Metastasectomy, upload)).status_code == 302
    assert operation.history.first().history_change_reason == "admin import: discharge letter"


def test_a_missing_data_code_in_a_cell_is_kept_as_the_reason_the_value_is_empty(admin_client, patients):
    operation = Metastasectomy.objects.get(patient=patients[0])
    upload = csv_file(["patient_id", "surgery_date", "hospital_stay_days"], [operation.patient_id, "2015-04-01", "nd"])
    assert confirm(admin_client, Metastasectomy, preview(admin_client, Metastasectomy, upload)).status_code == 302
    operation.refresh_from_db()
    assert operation.hospital_stay_days is None and operation.missing_codes == {"hospital_stay_days": "ND"}


def test_a_row_breaking_a_rule_shows_its_column_and_message_in_the_preview_and_cannot_be_confirmed(
        admin_client, patients):
    event = FollowUp.objects.get(patient=patients[0])
    upload = csv_file(["patient_id", "event_date", "event", "recurrence_site", "cause_of_death"],
                      [event.patient_id, "2016-01-01", "contact", "", ""],
                      [event.patient_id, "2014-01-01", "contact", "", ""], name="follow_up.csv")
    shown = preview(admin_client, FollowUp, upload)
    page = shown.content.decode()
    assert shown.status_code == 200 and "confirm_form" not in shown.context
    assert "<strong>event_date</strong>: The event date 2014-01-01 is before the first metastasectomy" in page
    assert FollowUp.objects.count() == 2
    refused = SecurityEvent.objects.get(event=SecurityEvent.IMPORT_REFUSED)  # as every refused import
    assert refused.username == "root" and refused.detail.startswith("admin, follow_up: follow_up.csv, sha256 ")
    assert refused.detail.endswith(", 1 errors, dry run") and refused.rows == 2


def test_a_locked_record_is_refused_in_the_preview_with_the_lock_named(admin_client, patients, root):
    operation = lock(Metastasectomy.objects.get(patient=patients[0]), root)
    upload = csv_file(METASTASECTOMY_COLUMNS, metastasectomy_row(operation, lesions_resected=3))
    page = preview(admin_client, Metastasectomy, upload).content.decode()
    assert "is locked: it cannot be changed" in page
    assert Metastasectomy.objects.get(pk=operation.pk).lesions_resected == 1


def test_a_row_refused_at_the_confirmation_leaves_every_row_unwritten(admin_client, patients, root):
    first, second = (Metastasectomy.objects.get(patient=patient) for patient in patients)
    upload = xlsx_file(METASTASECTOMY_COLUMNS, metastasectomy_row(first, lesions_resected=2),
                       metastasectomy_row(second, lesions_resected=4))
    shown = preview(admin_client, Metastasectomy, upload)
    assert "confirm_form" in shown.context
    lock(second, root)  # locked by someone else between the preview and the confirmation
    done = confirm(admin_client, Metastasectomy, shown)
    assert done.status_code == 200
    page = done.content.decode()
    assert "Nothing was imported" in page and "is locked" in page
    assert SecurityEvent.objects.get(event=SecurityEvent.IMPORT_REFUSED).detail.endswith(", 1 errors")
    first.refresh_from_db()
    assert (first.lesions_resected, first.version) == (1, 1)
    assert first.history.count() == 1


def test_a_change_of_a_complete_record_without_a_reason_is_refused(admin_client, patients, root):
    operation = services.record_status_set(user=root, record=Metastasectomy.objects.get(patient=patients[0]),
                                           status="complete")
    upload = csv_file([*METASTASECTOMY_COLUMNS, "reason"], [*metastasectomy_row(operation, lesions_resected=2), ""])
    response = preview(admin_client, Metastasectomy, upload, reason="")
    assert "confirm_form" not in response.context and response.context["form"].errors["reason"]
    assert Metastasectomy.objects.get(pk=operation.pk).lesions_resected == 1


def test_a_new_patient_gets_a_registry_pseudonym_when_the_import_is_confirmed(admin_client, patients):
    header = [c.name for c in dictionary.columns("patients")] + ["local_id"]
    upload = csv_file(header, ["", "HD", "male", 1971, "UPS", "2019-01-01", "no", 1, "P17"], name="patients.csv")
    shown = preview(admin_client, Patient, upload, reason="patient missed at the bulk import")
    page = shown.content.decode()
    assert "issued on confirmation" in page and Patient.objects.count() == 2
    done = confirm(admin_client, Patient, shown)
    assert done.status_code == 302
    new = Patient.objects.exclude(pk__in=[p.pk for p in patients]).get()
    assert new.pk.startswith("HD-") and __import__("re").match(PATIENT_ID_PATTERN, new.pk)
    assert (new.sex, new.birth_year, new.extrapulmonary_disease_at_pm) == ("male", 1971, False)
    created = new.history.get()
    assert created.history_user.username == "root"
    assert created.history_change_reason == "admin import: patient missed at the bulk import"
    followed = admin_client.get(done["Location"]).content.decode()
    assert f"P17 → {new.pk}" in followed


def test_a_new_patient_confirmed_twice_is_added_once(admin_client, patients):
    header = [c.name for c in dictionary.columns("patients")]
    upload = csv_file(header, ["", "HD", "male", 1971, "UPS", "2019-01-01", "no", 1], name="patients.csv")
    shown = preview(admin_client, Patient, upload)
    assert confirm(admin_client, Patient, shown).status_code == 302
    assert confirm(admin_client, Patient, shown).status_code == 302  # the browser's "resend"
    assert Patient.objects.count() == 3


def test_a_confirmation_while_the_same_file_is_being_confirmed_imports_nothing(admin_client, patients):
    header = [c.name for c in dictionary.columns("patients")]
    upload = csv_file(header, ["", "HD", "male", 1971, "UPS", "2019-01-01", "no", 1], name="patients.csv")
    shown = preview(admin_client, Patient, upload)
    key = UploadStorage.CACHE_PREFIX + shown.context["confirm_form"].initial["import_file_name"]
    cache.add(f"{key}:confirmed", True)  # the first click's request, still running
    again = confirm(admin_client, Patient, shown)
    assert again.status_code == 302 and again["Location"] == url(Patient, "changelist")
    assert Patient.objects.count() == 2


def test_a_confirmation_whose_upload_is_no_longer_kept_imports_nothing(admin_client, patients):
    operation = Metastasectomy.objects.get(patient=patients[0])
    shown = preview(admin_client, Metastasectomy, csv_file(METASTASECTOMY_COLUMNS,
                                                           metastasectomy_row(operation, lesions_resected=3)))
    cache.clear()  # an hour later
    done = confirm(admin_client, Metastasectomy, shown)
    assert done.status_code == 302 and done["Location"] == url(Metastasectomy, "import")
    assert "no longer kept" in admin_client.get(done["Location"]).content.decode()
    assert Metastasectomy.objects.get(pk=operation.pk).lesions_resected == 1


def test_a_patient_id_that_is_not_in_the_registry_is_refused(admin_client, patients):
    header = [c.name for c in dictionary.columns("patients")]
    upload = csv_file(header, ["HD-ZZZZZZ", "HD", "male", 1971, "UPS", "2019-01-01", "no", 1], name="patients.csv")
    page = preview(admin_client, Patient, upload).content.decode()
    assert "There is no patient HD-ZZZZZZ in the registry" in page
    assert Patient.objects.count() == 2


def test_an_unknown_column_refuses_the_file_before_any_row(admin_client, patients):
    operation = Metastasectomy.objects.get(patient=patients[0])
    upload = csv_file([*METASTASECTOMY_COLUMNS, "surgeon"], [*metastasectomy_row(operation), "Dr. X"])
    response = preview(admin_client, Metastasectomy, upload)
    assert "Unknown columns: surgeon" in response.content.decode()
    assert "confirm_form" not in response.context


def test_a_file_of_more_rows_than_the_admin_takes_is_refused_before_any_row(admin_client, patients):
    event = FollowUp.objects.get(patient=patients[0])
    rows = [[event.patient_id, (D(2016, 1, 1) + datetime.timedelta(days=n)).isoformat(), "contact"] for n in range(1001)]
    response = preview(admin_client, FollowUp, csv_file(["patient_id", "event_date", "event"], *rows,
                                                         name="follow_up.csv"))
    assert "The file has 1001 rows: the admin takes at most 1000" in response.content.decode()
    assert "confirm_form" not in response.context and FollowUp.objects.count() == 2


def test_an_xlsx_export_of_patients_imports_back_with_one_change(admin_client, patients):
    book = openpyxl.load_workbook(io.BytesIO(export(admin_client, Patient, "xlsx").content))
    sheet = book.active
    header = [cell.value for cell in sheet[1]]
    assert header == [c.name for c in dictionary.columns("patients")]
    assert sheet.cell(2, header.index("lung_mets_diagnosis_date") + 1).is_date  # a real date in a spreadsheet
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 1).value == patients[1].pk)
    sheet.cell(row, header.index("ecog") + 1).value = 2
    buffer = io.BytesIO()
    book.save(buffer)
    shown = preview(admin_client, Patient, SimpleUploadedFile("patients.xlsx", buffer.getvalue()))
    assert (shown.context["result"].totals["update"], shown.context["result"].totals["skip"]) == (1, 1)
    assert confirm(admin_client, Patient, shown).status_code == 302
    assert [p.ecog for p in Patient.objects.order_by("centre")] == [2, 0]  # HD changed, MUC as it was


def test_a_json_export_imports_back_unchanged(admin_client, patients):
    exported = export(admin_client, FollowUp, "json").content
    assert len(json.loads(exported)) == 2
    shown = preview(admin_client, FollowUp, SimpleUploadedFile("follow_up.json", exported))
    assert shown.context["result"].totals["skip"] == 2, shown.content.decode()[-2000:]


def test_an_ods_export_imports_back_with_a_change(admin_client, patients):
    data = read_back(export(admin_client, Metastasectomy, "ods", "?patient__centre__code__exact=HD"), "ods")
    data[0] = tuple(2 if name == "lesions_resected" else value for name, value in zip(data.headers, data[0]))
    upload = SimpleUploadedFile("metastasectomies.ods", data.export("ods"))
    assert confirm(admin_client, Metastasectomy, preview(admin_client, Metastasectomy, upload)).status_code == 302
    operation = Metastasectomy.objects.get(patient=patients[1])  # the same record, changed
    assert (operation.lesions_resected, operation.version) == (2, 2)


def test_a_row_whose_keys_name_no_record_adds_one(admin_client, patients):
    event = FollowUp.objects.get(patient=patients[1])
    upload = csv_file(["patient_id", "event_date", "event"], [event.patient_id, "2016-02-01", "contact"],
                      name="follow_up.csv")
    shown = preview(admin_client, FollowUp, upload)
    assert shown.context["result"].totals["new"] == 1
    assert confirm(admin_client, FollowUp, shown).status_code == 302
    assert sorted(FollowUp.objects.filter(patient=patients[1]).values_list("event_date", flat=True)) == [
        D(2016, 1, 1), D(2016, 2, 1)]


# --- who may ------------------------------------------------------------------------------------

def staff(username, role, *perms):
    user = f.user(username, memberships=[("MUC", role)])
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    return user


ALL_PERMS = ("view_metastasectomy", "add_metastasectomy", "change_metastasectomy", "delete_metastasectomy")


def test_a_staff_nurse_may_neither_import_nor_export(client, patients):
    client.force_login(staff("anna", "nurse", *ALL_PERMS))
    changelist = client.get(url(Metastasectomy, "changelist"))
    assert changelist.status_code == 200
    assert url(Metastasectomy, "import") not in changelist.content.decode()
    assert url(Metastasectomy, "export") not in changelist.content.decode()
    operation = Metastasectomy.objects.get(patient=patients[0])
    upload = csv_file(METASTASECTOMY_COLUMNS, metastasectomy_row(operation, lesions_resected=3))
    assert client.get(url(Metastasectomy, "import")).status_code == 403
    assert preview(client, Metastasectomy, upload).status_code == 403
    assert client.post(url(Metastasectomy, "process_import"), {"import_file_name": "x"}).status_code == 403
    assert export(client, Metastasectomy, "csv").status_code == 403
    assert Metastasectomy.objects.get(pk=operation.pk).lesions_resected == 1
    assert not ExportLog.objects.exists()


def test_a_staff_coordinator_with_the_admin_permissions_imports_and_exports(client, patients):
    client.force_login(staff("lead", "coordinator", *ALL_PERMS))
    changelist = client.get(url(Metastasectomy, "changelist")).content.decode()
    assert url(Metastasectomy, "import") in changelist and url(Metastasectomy, "export") in changelist
    operation = Metastasectomy.objects.get(patient=patients[1])  # another centre's: a coordinator's
    upload = csv_file(METASTASECTOMY_COLUMNS, metastasectomy_row(operation, lesions_resected=3))
    assert confirm(client, Metastasectomy, preview(client, Metastasectomy, upload)).status_code == 302
    assert Metastasectomy.objects.get(pk=operation.pk).history.first().history_user.username == "lead"
    assert len(read_back(export(client, Metastasectomy, "csv"), "csv")) == 2


def test_a_staff_coordinator_without_the_change_permission_may_export_but_not_import(client, patients):
    client.force_login(staff("viewer", "coordinator", "view_metastasectomy"))
    assert client.get(url(Metastasectomy, "import")).status_code == 403
    assert export(client, Metastasectomy, "csv").status_code == 200
