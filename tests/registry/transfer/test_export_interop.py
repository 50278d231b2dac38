"""The export's files for other systems: a REDCap project (data dictionary, instruments, repeating
instruments, flat records) and CDISC ODM 1.3.2, validated against the ODM schema with lxml."""
import csv
import datetime
import io
import re
import zipfile

import pytest
from lxml import etree
from redcap import Project

from registry import access, dictionary, services
from registry.api.redcap_project import FIELDS, FORMS, METADATA_COLUMNS, RENAMED
from registry.management.commands.generate_cohort import cohort_load
from registry.models import Metastasectomy, Patient, SystemicTherapy
from registry.transfer.exporting import dataset_export, odm, redcap_files
from registry.transfer.exporting.tables import shift_days
from tests.registry.transfer.test_import_support import centres, cohort, run

pytestmark = pytest.mark.django_db
NS = {"o": odm.NS}
LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# REDCap's text validation types (its "Text Validation Type" choices that this registry can use).
REDCAP_VALIDATIONS = {"", "date_ymd", "integer", "number", "number_1dp"}
REDCAP_FIELD_TYPES = {"text", "dropdown", "yesno"}


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(odm.SCHEMA)))


@pytest.fixture
def loaded(settings):
    """A 24-patient synthetic registry in two centres (MUC, HD), loaded by the system."""
    settings.EXPORT_SHIFT_KEY = "interop-test-key-" + "x" * 16
    centres()
    tables = cohort(24, seed=21)
    cohort_load(tables)
    return tables


@pytest.fixture
def changed(loaded, nurse):
    """A MUC metastasectomy changed by a nurse, with a reason and free text an XML file must escape."""
    record = Metastasectomy.objects.filter(patient__centre="MUC").order_by("pk").first()
    record.lesions_resected += 1
    record.diameter_source, record.missing_codes = None, {"diameter_source": "ND"}
    services.record_save(user=nurse, record=record, reason="count corrected after the pathology report")
    therapy = SystemicTherapy.objects.filter(patient__centre="MUC").order_by("pk").first()
    therapy.regimen, therapy.regimen_other = "other", "=<trial> & 'arm B'"
    services.record_save(user=nurse, record=therapy, reason="regimen named in the letter")
    return record, therapy


def export(tmp_path, *, user=access.SYSTEM, **options):
    path = tmp_path / "export.zip"
    with path.open("wb") as handle:
        dataset_export(user=user, out=handle, **options)
    return zipfile.ZipFile(path)


def read_csv(archive, member):
    return list(csv.DictReader(io.TextIOWrapper(archive.open(member), encoding="utf-8", newline="")))


def odm_of(archive):
    return etree.fromstring(archive.read("odm.xml"))


def item_groups(document):
    """[(patient_id, table, repeat key or None, {item name: value}, group element)] of the clinical data;
    the value of a null item is its missing-data code."""
    names = {item.get("OID"): item.get("Name") for item in document.iterfind(".//o:ItemDef", NS)}
    groups = []
    for subject in document.iterfind(".//o:SubjectData", NS):
        for group in subject.iterfind(".//o:ItemGroupData", NS):
            values = {names[item.get("ItemOID")]: item.get("Value") or item.findtext(".//o:FlagValue", namespaces=NS)
                      for item in group.iterfind("o:ItemData", NS)}
            groups.append((subject.get("SubjectKey"), group.get("ItemGroupOID")[3:], group.get("ItemGroupRepeatKey"),
                           values, group))
    return groups


def pycap_metadata(text):
    """The data dictionary as PyCap's export_metadata(format_type="df") reads REDCap's answer. REDCap
    reads an uploaded dictionary by column position: its header row becomes the API's column names."""
    project = Project("https://redcap.example.org/api/", "0" * 32)
    lines = text.splitlines(keepends=True)
    api_text = ",".join(METADATA_COLUMNS) + "\n" + "".join(lines[1:])
    project._call_api = lambda payload, return_type: api_text
    return project.export_metadata(format_type="df", df_kwargs={"index_col": "field_name", "dtype": str,
                                                                "keep_default_na": False})


# --- both -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("file_format", ["csv", "xlsx", "sav"])
def test_every_format_carries_the_redcap_files_and_the_odm_file(loaded, tmp_path, file_format):
    archive = export(tmp_path, file_format=file_format)

    assert {*redcap_files.FILES, odm.FILENAME} <= set(archive.namelist())
    readme = archive.read("README.txt").decode()
    assert all(name in readme for name in (*redcap_files.FILES, odm.FILENAME))


def test_an_export_with_its_redcap_and_odm_files_imports_back_without_a_word_about_them(loaded, tmp_path):
    data = open(export(tmp_path).filename, "rb").read()

    report = run(data, filename="export.zip")

    assert report.ok, report.errors[:5]
    assert not [w for w in report.warnings if "redcap" in str(w) or "odm" in str(w)]


# --- CDISC ODM ----------------------------------------------------------------------------------

@pytest.mark.parametrize("deidentify", ["none", "shift-dates", "intervals"])
def test_odm_file_validates_against_the_odm_1_3_2_schema(changed, tmp_path, schema, deidentify):
    document = odm_of(export(tmp_path, deidentify=deidentify))

    assert schema.validate(document), schema.error_log
    assert document.get("ODMVersion") == "1.3.2" and document.get("FileType") == "Snapshot"


def test_odm_holds_every_record_of_the_tables_with_its_values(changed, tmp_path):
    archive = export(tmp_path)
    groups = item_groups(odm_of(archive))

    for table in dictionary.TABLES:
        types = {c.name: c.type for c in dictionary.columns(table)}
        expected = sorted(
            (row["patient_id"], sorted((name, {"yes": "1", "no": "0"}[value] if types[name] == "bool" else value)
                                       for name, value in row.items() if value != "" and name != "patient_id"))
            for row in read_csv(archive, f"{table}.csv"))
        found = sorted((patient, sorted((name, value.replace("=", "'=", 1) if name == "regimen_other" else value)
                                        for name, value in values.items()))
                       for patient, group_table, _key, values, _group in groups if group_table == table)
        assert found == expected, table
    assert sorted({g[0] for g in groups}) == sorted(Patient.objects.values_list("pk", flat=True))


def test_odm_repeats_child_tables_with_the_redcap_exports_instance_numbers(changed, tmp_path):
    archive = export(tmp_path)
    groups = item_groups(odm_of(archive))
    records = read_csv(archive, redcap_files.RECORDS)
    dates = {"metastasectomies": "surgery_date", "systemic_therapies": "start_date", "follow_up": "event_date"}

    for table, date in dates.items():
        in_odm = {(patient, key): values[date] for patient, t, key, values, _g in groups if t == table}
        in_redcap = {(row["patient_id"], row["redcap_repeat_instance"]): row[date] for row in records
                     if row["redcap_repeat_instrument"] == table}
        assert in_odm == in_redcap and len(in_odm) == dictionary.TABLE_MODELS[table].objects.count()
    assert all(key is None for _p, t, key, _v, _g in groups if t in ("patients", "primary_tumours"))


def test_odm_references_resolve_and_codes_come_from_translated_code_lists(changed, tmp_path):
    document = odm_of(export(tmp_path))

    def oids(tag):
        return {element.get("OID") for element in document.iterfind(f".//o:{tag}", NS)}

    def refs(tag, attribute):
        return {element.get(attribute) for element in document.iterfind(f".//o:{tag}", NS)}

    assert refs("FormRef", "FormOID") == oids("FormDef") and refs("ItemGroupRef", "ItemGroupOID") == oids("ItemGroupDef")
    assert refs("ItemRef", "ItemOID") == oids("ItemDef") >= refs("ItemData", "ItemOID")
    assert refs("CodeListRef", "CodeListOID") | refs("FlagValue", "CodeListOID") == oids("CodeList")
    assert refs("UserRef", "UserOID") == oids("User") and refs("LocationRef", "LocationOID") <= oids("Location")
    assert refs("SiteRef", "LocationOID") == oids("Location") == {"LOC.HD", "LOC.MUC"}
    assert {g.get("Name") for g in document.iterfind(".//o:ItemGroupDef[@Repeating='Yes']", NS)} == {
        form.name for form in FORMS if form.repeating}
    expected_items = {f"IT.{c.table}.{c.name}" for t in dictionary.TABLES for c in dictionary.columns(t)
                      if c.name != "patient_id"}
    assert oids("ItemDef") == expected_items

    code_lists = {cl.get("OID"): {item.get("CodedValue"): {t.get(LANG): t.text for t in item.iterfind(".//o:TranslatedText", NS)}
                                  for item in cl.iterfind("o:CodeListItem", NS)}
                  for cl in document.iterfind(".//o:CodeList", NS)}
    list_of = {item.get("OID"): item.find("o:CodeListRef", NS).get("CodeListOID")
               for item in document.iterfind(".//o:ItemDef", NS) if item.find("o:CodeListRef", NS) is not None}
    for data in document.iterfind(".//o:ItemData", NS):
        if data.get("ItemOID") in list_of and data.get("IsNull") != "Yes":
            assert data.get("Value") in code_lists[list_of[data.get("ItemOID")]], data.get("ItemOID")
    histology = dict(dictionary.column("patients", "histology").codes)
    assert {code: texts["en"] for code, texts in code_lists["CL.HISTOLOGY"].items()} == histology
    assert code_lists["CL.HISTOLOGY"]["LMS"]["de"] == "Leiomyosarkom"
    assert code_lists["CL.YESNO"] == {"1": {"en": "yes", "de": "ja"}, "0": {"en": "no", "de": "nein"}}
    assert all(set(texts) == {"en", "de"} for oid, items in code_lists.items() if oid != "CL.CENTRE"
               for texts in items.values())


def test_odm_flags_a_value_with_a_missing_data_code_as_a_null_item_with_its_code(changed, tmp_path):
    record, _therapy = changed
    document = odm_of(export(tmp_path))

    group = next(g for p, t, _key, values, g in item_groups(document) if p == record.patient_id
                 and t == "metastasectomies" and values["surgery_date"] == record.surgery_date.isoformat())
    item = group.find("o:ItemData[@ItemOID='IT.metastasectomies.diameter_source']", NS)
    assert item.get("IsNull") == "Yes" and item.get("Value") is None
    flag = item.find("o:Annotation/o:Flag/o:FlagValue", NS)
    assert (flag.get("CodeListOID"), flag.text) == ("CL.MISSING_CODES", "ND")
    decodes = {item.get("CodedValue"): item.findtext("o:Decode/o:TranslatedText", namespaces=NS)
               for item in document.iterfind(".//o:CodeList[@OID='CL.MISSING_CODES']/o:CodeListItem", NS)}
    assert decodes == {"UNK": "Unknown", "ND": "Not done", "NA": "Not applicable"}


def test_odm_item_defs_carry_types_units_ranges_and_redcap_names(loaded, tmp_path):
    document = odm_of(export(tmp_path))
    items = {item.get("OID"): item for item in document.iterfind(".//o:ItemDef", NS)}

    size = items["IT.primary_tumours.size_mm"]
    assert (size.get("DataType"), size.get("SignificantDigits")) == ("float", "1")
    assert size.find("o:MeasurementUnitRef", NS).get("MeasurementUnitOID") == "MU.MM"
    assert {(r.get("Comparator"), r.findtext("o:CheckValue", namespaces=NS))
            for r in size.iterfind("o:RangeCheck", NS)} == {("GE", "1"), ("LE", "500")}
    assert items["IT.metastasectomies.surgery_date"].get("DataType") == "date"
    assert items["IT.metastasectomies.lesions_resected"].get("DataType") == "integer"
    assert items["IT.systemic_therapies.regimen_other"].get("DataType") == "text"
    assert items["IT.primary_tumours.margin"].find("o:Alias", NS).attrib == {"Context": "REDCap", "Name": "primary_margin"}
    question = {t.get(LANG): t.text for t in items["IT.patients.birth_year"].iterfind("o:Question/o:TranslatedText", NS)}
    assert question == {"en": "Year of birth", "de": "Geburtsjahr"}


def test_odm_audit_record_names_who_by_id_when_and_why_of_the_current_version(changed, tmp_path, nurse, coordinator):
    record, _therapy = changed
    archive = export(tmp_path, user=coordinator)
    document = odm_of(archive)

    group = next(g for p, t, _key, values, g in item_groups(document)
                 if t == "metastasectomies" and values["surgery_date"] == record.surgery_date.isoformat()
                 and p == record.patient_id)
    audit = group.find("o:AuditRecord", NS)
    latest = record.history.latest("history_id")
    assert audit.find("o:UserRef", NS).get("UserOID") == f"USR.{nurse.pk}"
    assert audit.find("o:LocationRef", NS).get("LocationOID") == "LOC.MUC"
    assert datetime.datetime.fromisoformat(audit.findtext("o:DateTimeStamp", namespaces=NS)) == latest.history_date
    assert "count corrected after the pathology report" in audit.findtext("o:ReasonForChange", namespaces=NS)
    assert audit.findtext("o:SourceID", namespaces=NS) == f"metastasectomies {record.pk} version 2"
    users = {user.get("OID"): user for user in document.iterfind(".//o:AdminData/o:User", NS)}
    assert set(users) == {"USR.SYSTEM", f"USR.{nurse.pk}"} and not any(len(user) for user in users.values())
    assert b"nurse" not in archive.read("odm.xml")  # user names stay in the registry's audit trail


def test_shift_dates_odm_moves_dates_and_audit_times_back_by_the_patients_offset(changed, tmp_path):
    record, _therapy = changed
    document = odm_of(export(tmp_path, deidentify="shift-dates"))
    offset = datetime.timedelta(days=shift_days(record.patient_id))

    group = next(g for p, t, key, _v, g in item_groups(document)
                 if t == "metastasectomies" and p == record.patient_id and key == "1")
    first = Metastasectomy.objects.filter(patient=record.patient).order_by("surgery_date", "pk").first()
    dates = {d.get("ItemOID"): d.get("Value") for d in group.iterfind("o:ItemData", NS)}
    assert dates["IT.metastasectomies.surgery_date"] == (first.surgery_date + offset).isoformat()
    stamp = datetime.datetime.fromisoformat(group.findtext("o:AuditRecord/o:DateTimeStamp", namespaces=NS))
    assert stamp == first.history.latest("history_id").history_date + offset


def test_intervals_odm_has_days_items_no_birth_year_and_no_audit_records(changed, tmp_path):
    document = odm_of(export(tmp_path, deidentify="intervals"))
    items = {item.get("Name"): item for item in document.iterfind(".//o:ItemDef", NS)}

    assert items["surgery_date_days"].get("DataType") == "integer"
    assert items["surgery_date_days"].find("o:MeasurementUnitRef", NS).get("MeasurementUnitOID") == "MU.DAYS"
    assert "birth_year" not in items and "surgery_date" not in items
    assert not document.findall(".//o:AuditRecord", NS) and not document.findall(".//o:User", NS)
    index_days = {values["surgery_date_days"] for _p, t, key, values, _g in item_groups(document)
                  if t == "metastasectomies" and key == "1"}
    assert index_days == {"0"}


# --- REDCap -------------------------------------------------------------------------------------

def test_redcap_dictionary_loads_with_pycaps_metadata_reader_and_every_field_is_a_dictionary_column(loaded, tmp_path):
    archive = export(tmp_path)
    text = archive.read(redcap_files.DICTIONARY).decode()

    assert next(csv.reader(io.StringIO(text))) == redcap_files.DICTIONARY_HEADER and len(METADATA_COLUMNS) == 18
    metadata = pycap_metadata(text)
    assert list(metadata.columns) == METADATA_COLUMNS[1:] and metadata.index[0] == "patient_id"
    columns = set()
    for name, field in metadata.iterrows():
        table, column = re.search(r"registry column: (\w+)\.(\w+)", field["field_annotation"]).groups()
        if column == "id":  # a repeating record's registry ID, <instrument>_id
            assert name == f"{table}_id" and field["text_validation_type_or_show_slider_number"] == "integer"
        else:
            assert dictionary.column(table, column).name == column and name == RENAMED.get((table, column), column)
        assert field["form_name"] == table
        columns.add((table, column))
    assert columns == {("patients", "patient_id")} | {(c.table, c.name) for t in dictionary.TABLES
                                                      for c in dictionary.columns(t) if c.name != "patient_id"} | {
        (form.name, "id") for form in FORMS if form.repeating}
    assert set(metadata["field_type"]) <= REDCAP_FIELD_TYPES
    assert set(metadata["text_validation_type_or_show_slider_number"]) <= REDCAP_VALIDATIONS


def test_redcap_choices_are_the_code_lists_and_validations_follow_the_dictionary(loaded, tmp_path):
    metadata = pycap_metadata(export(tmp_path, centre="HD").read(redcap_files.DICTIONARY).decode())

    for field in FIELDS[1:]:
        if field.is_registry_id:
            continue
        column = dictionary.column(field.form.name, field.column)
        row = metadata.loc[field.name]
        choices = [tuple(choice.split(", ", 1)) for choice in row["select_choices_or_calculations"].split(" | ")
                   if choice]
        validation = row["text_validation_type_or_show_slider_number"]
        if column.name == "centre":
            assert row["field_type"] == "dropdown" and choices == [("HD", "Centre HD")]
        elif column.type == "code":
            assert row["field_type"] == "dropdown" and choices == list(column.codes), field.name
        elif column.type == "bool":
            assert row["field_type"] == "yesno" and not choices
        else:
            assert row["field_type"] == "text" and not choices
            assert validation == {"date": "date_ymd", "int": "integer", "number": "number_1dp", "text": ""}[column.type]
        if column.type in ("int", "number"):
            bounds = tuple("" if bound is None else str(bound) for bound in (column.low, column.high))
            assert (row["text_validation_min"], row["text_validation_max"]) == bounds, field.name
        assert row["required_field"] == ("y" if column.required else "")


def test_redcap_records_hold_every_record_of_the_tables_in_flat_format(changed, tmp_path):
    archive = export(tmp_path)
    records = read_csv(archive, redcap_files.RECORDS)
    fields = {field.name: field for field in FIELDS}

    completes = {f"{form.name}_complete" for form in FORMS}
    assert list(records[0])[:3] == ["patient_id", "redcap_repeat_instrument", "redcap_repeat_instance"]
    assert set(records[0]) - {"redcap_repeat_instrument", "redcap_repeat_instance"} - completes == set(fields)
    declared = {row["form_name"] for row in read_csv(archive, redcap_files.REPEATING)}
    assert declared == {form.name for form in FORMS if form.repeating}
    assert {row["redcap_repeat_instrument"] for row in records} == declared | {""}
    assert [row["instrument_name"] for row in read_csv(archive, redcap_files.INSTRUMENTS)] == [f.name for f in FORMS]
    for table in dictionary.TABLES:
        form = "" if table in ("patients", "primary_tumours") else table
        names = {c.name: RENAMED.get((table, c.name), c.name) for c in dictionary.columns(table)}
        types = {c.name: c.type for c in dictionary.columns(table)}
        expected = sorted(tuple(({"yes": "1", "no": "0"}[row[c]] if types[c] == "bool" and row[c] else row[c])
                                for c in names) for row in read_csv(archive, f"{table}.csv"))
        # A patient's row holds its primary tumour when it has one (its diagnosis date is required).
        rows = [record for record in records if record["redcap_repeat_instrument"] == form
                and (table != "primary_tumours" or record["diagnosis_date"])]
        found = sorted(tuple(record[names[c]] for c in names) for record in rows)
        assert found == expected, table


def test_intervals_redcap_files_have_days_fields_without_birth_year_and_keep_negative_days_numbers(loaded, tmp_path):
    archive = export(tmp_path, deidentify="intervals")
    metadata = pycap_metadata(archive.read(redcap_files.DICTIONARY).decode())
    records = read_csv(archive, redcap_files.RECORDS)

    assert "birth_year" not in metadata.index and "lung_mets_diagnosis_date" not in metadata.index
    assert metadata.loc["surgery_date_days", "text_validation_type_or_show_slider_number"] == "integer"
    assert set(records[0]) - {"redcap_repeat_instrument", "redcap_repeat_instance"} <= set(metadata.index) | {
        f"{form.name}_complete" for form in FORMS}
    days = [row["lung_mets_diagnosis_date_days"] for row in records if row["lung_mets_diagnosis_date_days"]]
    assert days and all(int(value) <= 0 for value in days)  # diagnosed before the first metastasectomy


def test_redcap_records_neutralise_formula_text_only_in_free_text_fields(changed, tmp_path):
    _record, therapy = changed
    archive = export(tmp_path)
    records = read_csv(archive, redcap_files.RECORDS)

    named = {row["regimen_other"] for row in records if row["regimen_other"]}
    assert "'=<trial> & 'arm B'" in named and not any(value.startswith("=") for value in named)
    in_odm = {values.get("regimen_other") for _p, t, _k, values, _g in item_groups(odm_of(archive))
              if t == "systemic_therapies"}
    assert therapy.regimen_other in in_odm  # an XML value is never run: it stays as recorded


def test_redcap_records_read_in_batches_are_the_records_read_at_once(changed, tmp_path, monkeypatch):
    at_once = export(tmp_path).read(redcap_files.RECORDS)
    monkeypatch.setattr(redcap_files, "BATCH", 5)

    in_batches = export(tmp_path).read(redcap_files.RECORDS)

    assert in_batches == at_once and at_once.count(b"\n") > 24


def test_an_export_of_a_freeze_goes_without_the_redcap_and_odm_files_and_says_why(loaded, tmp_path):
    freeze = services.freeze_create(user=access.SYSTEM, name="interim-2026")

    archive = export(tmp_path, freeze=freeze)

    assert {f"{table}.csv" for table in dictionary.TABLES} <= set(archive.namelist())
    assert not {*redcap_files.FILES, odm.FILENAME} & set(archive.namelist())
    assert "not in the export of a freeze" in archive.read("README.txt").decode()
