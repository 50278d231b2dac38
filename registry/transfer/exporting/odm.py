"""The export's CDISC ODM 1.3.2 file, odm.xml: the dataset with its metadata for CDISC tools.

    ODM (FileType Snapshot: the current values)
      Study: GlobalVariables; BasicDefinitions (the units mm and days); MetaDataVersion:
        Protocol and one StudyEventDef (the registry), a FormDef per table, an ItemGroupDef per
        table (Repeating="Yes" for metastasectomies, systemic therapies and follow-up), an ItemDef
        per dictionary column (DataType text, integer, float or date; Length, SignificantDigits,
        unit, range checks; Alias "REDCap" where the REDCap field name differs), a CodeList per
        code list of registry/codes.py with its decodes in every language of the registry (yes/no
        columns: integer 1/0 with the code list YESNO, as in Stata, SPSS and REDCap).
      AdminData: a User per user in the audit records, named only by the user's id (USR.<id>;
        USR.SYSTEM for commands): user names stay in the registry's own audit trail, which only
        coordinators export; a Location per centre.
      ClinicalData: SubjectData per patient (SubjectKey: the pseudonym; SiteRef: the centre) >
        StudyEventData > FormData per table > ItemGroupData per record (ItemGroupRepeatKey: the
        record's own REDCap instance number, given when it was entered and never changed) > ItemData
        per known value; a value with a missing-data code (UNK, ND, NA) is an ItemData IsNull="Yes"
        flagged with its code (FlagValue of the code list MISSING_CODES).

Every ItemGroupData carries the AuditRecord of its record's current version, from the record's
django-simple-history rows: who (UserRef), where (LocationRef: the patient's centre), when
(DateTimeStamp), why (ReasonForChange: the source and the reason given) and which version
(SourceID "<table> <record> version <n>"). A Snapshot holds no earlier versions: every version,
before and after, is in the coordinators' audit export.

De-identified exports: dates as in the tables (shifted, or <name>_days integer items); a
shift-dates export moves the audit time stamps back by the patient's offset too, and an intervals
export has no audit records (their time stamps are calendar information).

The metadata are built with lxml's builder; the clinical data are written as they are read, a few
hundred subjects at a time, from text templates (Clinical says why), so memory stays flat.
tests/registry/transfer/test_export_interop.py validates the file against the ODM 1.3.2 schema
kept in schemas/odm-1.3.2/.
"""
import datetime
import itertools
from pathlib import Path

from django.conf import settings
from django.utils import timezone, translation
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from lxml import etree
from lxml.builder import ElementMaker

from registry import codes, dictionary
from registry.api.redcap_project import FORMS_BY_NAME, RENAMED
from registry.models import Patient
from registry.transfer.exporting.xlsx import ILLEGAL_XML

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SCHEMA = Path(__file__).resolve().parent / "schemas" / "odm-1.3.2" / "ODM1-3-2.xsd"
FILENAME = "odm.xml"
STUDY_OID = "SARCOMA-PM"
MDV_OID = "MDV.1"
EVENT_OID = "SE.REGISTRY"
SYSTEM_USER = "USR.SYSTEM"
REPEATING = {name for name, form in FORMS_BY_NAME.items() if form.repeating}
DATA_TYPES = {"text": "text", "code": "text", "int": "integer", "number": "float", "date": "date",
              "bool": "integer", "days": "integer"}
UNITS = {"mm": "MU.MM", "days": "MU.DAYS"}

E = ElementMaker(namespace=NS, nsmap={None: NS})


def _text(value):
    return ILLEGAL_XML.sub("", value)  # lxml escapes the rest


def _translated(element, texts):
    """`element` (an ElementMaker tag) holding a TranslatedText per language of `texts` {lang: text}."""
    return element(*[E.TranslatedText(text, {XML_LANG: lang}) for lang, text in texts.items()])


def _in_every_language(value):
    """{language: str(value)} for each language of the registry (value: a lazy translation)."""
    texts = {}
    for lang, _name in settings.LANGUAGES:
        with translation.override(lang):
            texts[lang] = _text(str(value))
    return texts


def _moment(value):
    return timezone.localtime(value).isoformat()


# --- metadata ---------------------------------------------------------------------------------

def _model_field(column):
    model = dictionary.TABLE_MODELS[column.table]
    return model._meta.get_field("centre" if column.name == "centre" else column.name)


def _code_list_names():
    """{codes of a list: its name in registry/codes.py} (HISTOLOGY, GRADE, ...)."""
    names = {}
    for name, value in vars(codes).items():
        if name.isupper() and isinstance(value, list) and all(isinstance(pair, tuple) for pair in value):
            names.setdefault(tuple(code for code, _label in value), name)
    return names


class Metadata:
    """The items of one export (the dictionary's columns as exported) and their code lists."""

    def __init__(self, deidentifier, centres):
        self.deidentifier, self.centres = deidentifier, centres
        self.tables = {}  # table: [(column, item OID, type)] without patient_id (the SubjectKey)
        self.code_lists = {}  # OID: (name, [(code, {lang: decode})], data type)
        self.list_names = list_names = _code_list_names()
        for table in dictionary.TABLES:
            items = []
            for column in dictionary.columns(table):
                if column.name == "patient_id" or not deidentifier.exported(table, column.name):
                    continue
                kind = "days" if column.type == "date" and deidentifier.mode == "intervals" else column.type
                items.append((column, f"IT.{table}.{deidentifier.name(column.name, column.type)}", kind))
                if column.name == "centre":
                    self.code_lists["CL.CENTRE"] = ("centre", [(code, {"en": name}) for code, name in centres.items()],
                                                    "text")
                elif column.type == "code":
                    key = list_names.get(column.code_values, f"{table}_{column.name}".upper())
                    self.code_lists.setdefault(f"CL.{key}", (key.lower(), [
                        (code, _in_every_language(label)) for code, label in _model_field(column).choices], "text"))
                elif column.type == "bool":
                    self.code_lists.setdefault("CL.YESNO", ("yesno", [
                        ("1", _in_every_language(_("yes"))), ("0", _in_every_language(_("no")))], "integer"))
            self.tables[table] = items
        self.code_lists["CL.MISSING_CODES"] = ("missing_codes", [(code, _in_every_language(label))
                                                                 for code, label in codes.MISSING_CODES], "text")

    def code_list_oid(self, column):
        if column.name == "centre":
            return "CL.CENTRE"
        if column.type == "bool":
            return "CL.YESNO"
        key = self.list_names.get(column.code_values, f"{column.table}_{column.name}".upper())
        return f"CL.{key}"

    def item_def(self, column, oid, kind):
        field = _model_field(column)
        children = []
        if field.help_text:
            children.append(_translated(E.Description, _in_every_language(field.help_text)))
        question = _in_every_language(field.verbose_name)
        if kind == "days":
            question = {lang: f"{text}: days from the index operation" for lang, text in question.items()}
        children.append(_translated(E.Question, {lang: capfirst(text) for lang, text in question.items()}))
        unit = "days" if kind == "days" else column.unit
        if unit in UNITS:
            children.append(E.MeasurementUnitRef(MeasurementUnitOID=UNITS[unit]))
        if kind in ("int", "number"):
            for comparator, bound in (("GE", column.low), ("LE", column.high)):
                if bound is not None:
                    children.append(E.RangeCheck(E.CheckValue(str(bound)), Comparator=comparator, SoftHard="Hard"))
        if kind in ("code", "bool"):
            children.append(E.CodeListRef(CodeListOID=self.code_list_oid(column)))
        redcap_name = RENAMED.get((column.table, column.name))
        if redcap_name:
            children.append(E.Alias(Context="REDCap", Name=self.deidentifier.name(redcap_name, column.type)))
        attributes = {"OID": oid, "Name": self.deidentifier.name(column.name, column.type), "DataType": DATA_TYPES[kind]}
        if kind in ("text", "code") and getattr(field, "max_length", None):
            attributes["Length"] = str(field.max_length)
        if kind == "number" and column.decimals is not None:
            attributes["SignificantDigits"] = str(column.decimals)
        return E.ItemDef(*children, attributes)

    def study(self, *, description):
        forms = [FORMS_BY_NAME[table] for table in dictionary.TABLES]
        mandatory = {"patients": "Yes"}
        event = E.StudyEventDef(
            *[E.FormRef(FormOID=f"F.{form.name}", Mandatory=mandatory.get(form.name, "No"), OrderNumber=str(n))
              for n, form in enumerate(forms, start=1)],
            OID=EVENT_OID, Name="Registry", Repeating="No", Type="Common")
        form_defs = [E.FormDef(E.ItemGroupRef(ItemGroupOID=f"IG.{form.name}", Mandatory="Yes"),
                               OID=f"F.{form.name}", Name=form.label, Repeating="No") for form in forms]
        group_defs = [E.ItemGroupDef(
            *[E.ItemRef(ItemOID=oid, Mandatory="Yes" if column.required else "No", OrderNumber=str(n))
              for n, (column, oid, _kind) in enumerate(self.tables[table], start=1)],
            OID=f"IG.{table}", Name=table, Repeating="Yes" if table in REPEATING else "No")
            for table in dictionary.TABLES]
        item_defs = [self.item_def(column, oid, kind) for table in dictionary.TABLES
                     for column, oid, kind in self.tables[table]]
        code_lists = [E.CodeList(*[E.CodeListItem(_translated(E.Decode, decodes), CodedValue=code)
                                   for code, decodes in items], OID=oid, Name=name, DataType=data_type)
                      for oid, (name, items, data_type) in self.code_lists.items()]
        units = [E.MeasurementUnit(_translated(E.Symbol, {"en": symbol}), OID=oid, Name=symbol)
                 for symbol, oid in UNITS.items()]
        return E.Study(
            E.GlobalVariables(E.StudyName("Sarcoma PM registry"), E.StudyDescription(description),
                              E.ProtocolName("Sarcoma PM registry")),
            E.BasicDefinitions(*units),
            E.MetaDataVersion(
                E.Protocol(E.StudyEventRef(StudyEventOID=EVENT_OID, Mandatory="Yes", OrderNumber="1")),
                event, *form_defs, *group_defs, *item_defs, *code_lists,
                OID=MDV_OID, Name="Sarcoma PM registry data dictionary"),
            OID=STUDY_OID)


def admin_data(user_ids, centres, *, effective):
    # Nothing but the id: ODM's LoginName, DisplayName and FullName would name the registry's staff.
    users = [E.User(OID=SYSTEM_USER if user_id is None else f"USR.{user_id}")
             for user_id in sorted(user_ids, key=lambda u: (u is not None, u or 0))]
    locations = [E.Location(E.MetaDataVersionRef(StudyOID=STUDY_OID, MetaDataVersionOID=MDV_OID,
                                                 EffectiveDate=effective.isoformat()),
                            OID=f"LOC.{code}", Name=name, LocationType="Site") for code, name in centres.items()]
    return E.AdminData(*users, *locations, StudyOID=STUDY_OID)


# --- clinical data ----------------------------------------------------------------------------

def current_versions(table, patients):
    """{record key: (user id, time, change reason, version)} of the current version of every
    record of the patients in scope: its newest django-simple-history row."""
    model = dictionary.TABLE_MODELS[table]
    key = model._meta.pk.attname  # patient_id or id
    history = model.history.filter(patient_id__in=patients.values("pk")).order_by(key, "history_id")
    versions = {}
    for row in history.values_list(key, "history_user_id", "history_date", "history_change_reason", "version",
                                   "history_type").iterator(chunk_size=5000):
        if row[5] != "-":
            versions[row[0]] = row[1:5]
    return versions


def _records(table, patients, columns, deidentifier):
    """Rows of one table by patient: patient_id, the dictionary columns as listed, the record's
    missing-data codes (as JSON text: dictionary.missing_codes_text), its REDCap instance number
    (None for a table that does not repeat) and its key; a repeating table's records in the order
    of their instance numbers."""
    model = dictionary.TABLE_MODELS[table]
    repeating = table in REPEATING
    lookups = ["patient_id", *[c.attname for c, _oid, _k in columns], dictionary.missing_codes_text()]
    if model is Patient:
        queryset = patients.order_by("patient_id")
    else:
        order = ["patient_id", "redcap_instance"] if repeating else ["patient_id", "pk"]
        queryset = model.objects.filter(patient__in=patients.values("pk")).order_by(*order)
    instance = "redcap_instance" if repeating else "pk"  # the slot of an instance number, unread
    rows = queryset.values_list(*lookups, instance, "pk").iterator(chunk_size=2000)
    convert = deidentifier.converter(["text", *[c.type for c, _oid, _k in columns], "codes", "int", "int"])
    return map(convert, rows) if convert is not None else rows


# Text and attribute values: characters XML cannot hold are dropped; line breaks and tabs in an
# attribute are written as character references, which a parser would otherwise turn into spaces.
ATTRIBUTE_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\n", "&#10;"),
                     ("\r", "&#13;"), ("\t", "&#9;"))
NEEDS_ESCAPE = frozenset("&<>\"\n\r\t")


def escape(text):
    """`text` as an XML attribute value or element content."""
    text = ILLEGAL_XML.sub("", text)
    if NEEDS_ESCAPE.isdisjoint(text):
        return text
    for character, reference in ATTRIBUTE_ESCAPES:
        text = text.replace(character, reference)
    return text


def _formatter(kind):
    """A known value → the text of an ItemData Value."""
    if kind == "bool":
        return lambda value: "1" if value else "0"
    if kind == "date":
        return datetime.date.isoformat
    if kind == "text":
        return escape
    return str  # codes (the code lists' own, checked by the database), numbers, days


class Clinical:
    """The ClinicalData's SubjectData, one per patient of the export, as XML text.

    Written as text from templates rather than built as elements: lxml spends ~2 µs per element
    here (~800,000 ItemData for 10,000 patients), formatting ~0.2 µs, and the values are escaped
    the same way lxml does (the tests validate the result against the schema). The tables are read
    in patient order, each once, side by side.
    """

    def __init__(self, metadata, patients, deidentifier):
        self.metadata, self.deidentifier = metadata, deidentifier
        self.with_audit = deidentifier.mode != "intervals"
        self.versions = {table: current_versions(table, patients) for table in dictionary.TABLES} \
            if self.with_audit else {}
        self.user_ids = {version[0] for versions in self.versions.values() for version in versions.values()}
        self.items = {table: [(f'        <ItemData ItemOID="{oid}" Value="', _formatter(kind), column.name)
                              for column, oid, kind in metadata.tables[table]] for table in dictionary.TABLES}
        self.readers = {table: itertools.groupby(_records(table, patients, metadata.tables[table], deidentifier),
                                                 key=lambda row: row[0])
                        for table in dictionary.TABLES}
        self.pending = {table: next(reader, None) for table, reader in self.readers.items() if table != "patients"}
        self._moments = {}

    def _rows_of(self, table, patient_id):
        pending = self.pending[table]
        if pending is None or pending[0] != patient_id:
            return ()
        rows = list(pending[1])
        self.pending[table] = next(self.readers[table], None)
        return rows

    def _moment(self, patient_id, moment):
        moment = self.deidentifier.date(patient_id, moment)
        text = self._moments.get(moment)
        if text is None:  # a bulk import writes one time stamp for all its records
            text = self._moments[moment] = _moment(moment)
        return text

    def _audit(self, table, key, patient_id, centre):
        version = self.versions[table].get(key)
        if version is None:  # a record with no history row (loaded from a fixture)
            return ""
        user_id, moment, reason, number = version
        reason = f"<ReasonForChange>{escape(reason)}</ReasonForChange>" if reason else ""
        # Centre codes, pseudonyms and record ids are letters, digits and '-' (database constraints).
        return (f'        <AuditRecord><UserRef UserOID="{SYSTEM_USER if user_id is None else f"USR.{user_id}"}"/>'
                f'<LocationRef LocationOID="LOC.{centre}"/>'
                f"<DateTimeStamp>{self._moment(patient_id, moment)}</DateTimeStamp>{reason}"
                f"<SourceID>{table} {key} version {number}</SourceID></AuditRecord>\n")

    def _subject(self, patient_id, patient, centre):
        parts = [f'<SubjectData SubjectKey="{patient_id}">\n  <SiteRef LocationOID="LOC.{centre}"/>\n'
                 f'  <StudyEventData StudyEventOID="{EVENT_OID}">\n']
        for table in dictionary.TABLES:
            rows = [patient] if table == "patients" else self._rows_of(table, patient_id)
            if not rows:
                continue
            parts.append(f'    <FormData FormOID="F.{table}">\n')
            repeating, items = table in REPEATING, self.items[table]
            for row in rows:
                key = f' ItemGroupRepeatKey="{row[-2]}"' if repeating else ""
                parts.append(f'      <ItemGroupData ItemGroupOID="IG.{table}"{key}>\n')
                if self.with_audit:
                    parts.append(self._audit(table, row[-1], patient_id, centre))
                codes = dictionary.missing_codes_of(row[-3])
                for (prefix, formatted, column), value in zip(items, row[1:-3]):
                    if value is not None:
                        parts.append(f'{prefix}{formatted(value)}"/>\n')
                    elif column in codes:
                        parts.append(MISSING_ITEM.format(prefix=prefix[:-len(' Value="')], code=codes[column]))
                parts.append("      </ItemGroupData>\n")
            parts.append("    </FormData>\n")
        parts.append("  </StudyEventData>\n</SubjectData>\n")
        return "".join(parts)

    def chunks(self, size=500):
        """The SubjectData of every patient, in pseudonym order, as UTF-8 in chunks of `size` patients."""
        centre_at = 1 + next(i for i, (column, _oid, _kind) in enumerate(self.metadata.tables["patients"])
                             if column.name == "centre")
        chunk = []
        for patient_id, rows in self.readers["patients"]:
            (patient,) = rows
            chunk.append(self._subject(patient_id, patient, patient[centre_at]))
            if len(chunk) == size:
                yield "".join(chunk).encode()
                chunk = []
        yield "".join(chunk).encode()


# An item with a missing-data code (UNK, ND, NA) instead of a value: a null item flagged with its
# code from the code list MISSING_CODES, so that an answer "unknown" is told from a value never entered.
MISSING_ITEM = ('{prefix} IsNull="Yes"><Annotation SeqNum="1"><Flag>'
                '<FlagValue CodeListOID="CL.MISSING_CODES">{code}</FlagValue></Flag></Annotation></ItemData>\n')
SUBJECTS = "subjects"  # where the SubjectData go: a comment in the ClinicalData element


def write_odm(archive, *, patients, centres, deidentifier, created, file_oid, description, single_site=False):
    """Add odm.xml to the export's archive: the metadata, the users and centres, and the clinical
    data of `patients` (the export's scope), de-identified as the export's tables."""
    metadata = Metadata(deidentifier, centres)
    clinical = Clinical(metadata, patients, deidentifier)
    attributes = {"FileType": "Snapshot", "Granularity": "SingleSite" if single_site else "All",
                  "FileOID": file_oid, "CreationDateTime": _moment(created), "AsOfDateTime": _moment(created),
                  "ODMVersion": "1.3.2", "Originator": "Sarcoma PM registry", "SourceSystem": "Sarcoma PM registry",
                  "Description": description}
    document = E.ODM(
        metadata.study(description=description),
        admin_data(clinical.user_ids, centres, effective=timezone.localdate(created)),
        E.ClinicalData(etree.Comment(SUBJECTS), StudyOID=STUDY_OID, MetaDataVersionOID=MDV_OID),
        attributes)
    head, tail = etree.tostring(document, xml_declaration=True, encoding="UTF-8", pretty_print=True).split(
        f"<!--{SUBJECTS}-->".encode())
    with archive.open(FILENAME, "w", force_zip64=True) as member:
        member.write(head.rstrip() + b"\n")
        for chunk in clinical.chunks():
            member.write(chunk)
        member.write(tail.lstrip(b"\n"))
