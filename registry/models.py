"""The registry's tables, one model per table of ../shared/spec/data-dictionary.md.

Field names are the dictionary's column names. Rules about one record live here (field
validators, clean(), database constraints); rules across records live in registry/rules.py.
"""
import datetime
import functools
import uuid

from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from registry import codes
from registry.codes import values

PATIENT_ID_PATTERN = r"^[A-Z]{2,8}-[A-Z0-9]{2,12}$"
CENTRE_CODE_PATTERN = r"^[A-Z]{2,8}$"


def in_codes(field, choices, *, nullable=False):
    """A CheckConstraint condition: the column holds one of the dictionary's codes."""
    condition = Q(**{f"{field}__in": values(choices)})
    return condition | Q(**{f"{field}__isnull": True}) if nullable else condition


def in_range(field, low, high):
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": low, f"{field}__lte": high})


class Centre(models.Model):
    code = models.CharField(
        _("code"), max_length=8, primary_key=True,
        validators=[RegexValidator(CENTRE_CODE_PATTERN, _("Use 2 to 8 capital letters, e.g. MUC."))],
    )
    name = models.CharField(_("name"), max_length=200, unique=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("centre")
        verbose_name_plural = _("centres")
        constraints = [models.CheckConstraint(condition=Q(code__regex=CENTRE_CODE_PATTERN), name="centre_code_format")]

    def __str__(self):
        return f"{self.code} – {self.name}"


class MembershipManager(models.Manager):
    def get_by_natural_key(self, username, centre):
        return self.get(user__username=username, centre_id=centre)


class Membership(models.Model):
    """A user's role at a centre; its natural key (user name, centre) lets fixtures/demo.json be
    loaded again without duplicating it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    centre = models.ForeignKey(Centre, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=12, choices=codes.ROLE)
    history = HistoricalRecords()  # who gave whom which role at which centre, and when

    objects = MembershipManager()

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "centre"], name="one_membership_per_user_and_centre"),
            models.CheckConstraint(condition=in_codes("role", codes.ROLE), name="membership_role_code"),
        ]

    def __str__(self):
        return f"{self.user} – {self.centre_id} ({self.role})"

    def natural_key(self):
        return (self.user.username, self.centre_id)

    natural_key.dependencies = ["auth.user", "registry.centre"]


class ClinicalRecord(models.Model):
    """Common bookkeeping: a version for optimistic concurrency, timestamps for the API and the
    record's place in the data-management cycle (changed only by registry.services.status)."""

    version = models.PositiveIntegerField(default=1, editable=False)
    status = models.CharField(_("status"), max_length=12, choices=codes.RECORD_STATUS, default="in_progress",
                              editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    # Why an optional value is absent ({column: "UNK" | "ND" | "NA"}, codes.MISSING_CODES): unknown, not
    # done and not applicable are answers, a blank is not. One column rather than one per field: every
    # write path (forms, import, API, bulk COPY) and the audit trail carry it as they carry the record.
    missing_codes = models.JSONField(
        _("missing-data codes"), default=dict, blank=True,
        help_text=_("Why an optional value is absent: {column: UNK, ND or NA}; that column is then empty."))

    class Meta:
        abstract = True

    @classmethod
    def codable_fields(cls):
        """The names of the fields that may take a missing-data code: the optional ones."""
        return codable_fields(cls)

    def missing_code(self, name):
        """The missing-data code of a field (None without one)."""
        return (self.missing_codes or {}).get(name)

    def clean_fields(self, exclude=None):
        """Field validation, and the missing-data codes: only optional fields of this record, only the
        codes of codes.MISSING_CODES, and the field itself empty (a value and a code contradict)."""
        errors = {}
        try:
            super().clean_fields(exclude)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        for name, messages in missing_code_errors(self, exclude or ()).items():
            errors.setdefault(name, []).extend(messages)
        if errors:
            raise ValidationError(errors)

    def full_clean(self, exclude=None, validate_unique=True, validate_constraints=False):
        """Model validation without the database constraints: each CHECK repeats a field validator
        or clean() rule, and each unique constraint a cross-record rule (registry.rules), which say
        the problem in words; checking them here would cost a query each and show a second message.
        The database still enforces them all when the record is saved."""
        super().full_clean(exclude, validate_unique, validate_constraints)


@functools.cache
def codable_fields(model):
    """The optional fields of a clinical model (nullable, editable, not a key): those that take a
    missing-data code."""
    return tuple(f.name for f in model._meta.concrete_fields
                 if f.null and f.editable and not f.is_relation and not f.primary_key)


def missing_code_errors(record, exclude=()):
    """{field: [message]} for each missing-data code of `record` that is not allowed."""
    codes_given = record.missing_codes
    if not codes_given:
        return {}
    if not isinstance(codes_given, dict):
        return {"missing_codes": [_("Missing-data codes are given as {column: code}.")]}
    allowed, known, errors = codable_fields(type(record)), values(codes.MISSING_CODES), {}
    for name, code in codes_given.items():
        if name in exclude:
            continue
        try:
            field = type(record)._meta.get_field(name)
        except FieldDoesNotExist:
            errors.setdefault("missing_codes", []).append(
                _("There is no column %(column)s.") % {"column": name})
            continue
        label = capfirst(field.verbose_name)
        if name not in allowed:
            errors.setdefault(name, []).append(
                _("%(field)s is required: it takes a value, not a missing-data code (%(code)s).")
                % {"field": label, "code": code})
        elif code not in known:
            errors.setdefault(name, []).append(
                _("%(code)s is not a missing-data code of %(field)s: use %(codes)s.")
                % {"code": code, "field": label, "codes": ", ".join(known)})
        elif getattr(record, field.attname) not in (None, ""):
            errors.setdefault(name, []).append(
                _("%(field)s has a value and is marked “%(meaning)s” (%(code)s): keep one of them.")
                % {"field": label, "meaning": dict(codes.MISSING_CODES)[code], "code": code})
    return errors


def not_in_future(value):
    if value and value > datetime.date.today():
        raise ValidationError(_("The date %(date)s is in the future."), params={"date": value.isoformat()})


def current_year_or_earlier(value):
    if value is not None and value > datetime.date.today().year:
        raise ValidationError(_("The year %(year)s is in the future."), params={"year": value})


def past_date(label, help_text="", *, blank=False):
    return models.DateField(label, help_text=help_text, null=blank, blank=blank, validators=[not_in_future])


def code_field(label, choices, help_text="", *, blank=False):
    length = max(len(code) for code in values(choices))
    return models.CharField(label, max_length=length, choices=choices, help_text=help_text, null=blank, blank=blank)


def bounded_int(label, low, high, help_text="", *, blank=False):
    return models.PositiveSmallIntegerField(
        label, help_text=help_text, null=blank, blank=blank,
        validators=[MinValueValidator(low), MaxValueValidator(high)],
    )


def bounded_number(label, low, high, help_text="", *, blank=False):
    return models.DecimalField(
        label, max_digits=5, decimal_places=1, help_text=help_text, null=blank, blank=blank,
        validators=[MinValueValidator(low), MaxValueValidator(high)],
    )


def instance_number():
    """A repeating record's REDCap repeat instance (registry.api.redcap): 1, 2, … per patient and
    table in the order the records were entered, given by registry.services when a record is
    created and never changed, so a client that merges on (record, instrument, instance) meets the
    same record again. Nullable only because the audit tables' rows from before it existed cannot be
    filled (they are append-only); a CHECK keeps the records' own column filled."""
    return models.PositiveIntegerField(_("REDCap instance"), null=True, blank=True, editable=False,
                                       help_text=_("The record's REDCap repeat instance; never changes."))


def instance_constraints(prefix):
    return [
        models.UniqueConstraint(fields=["patient", "redcap_instance"], name=f"{prefix}_one_instance_number",
                                violation_error_message=_("Another record of this patient has this instance number.")),
        models.CheckConstraint(condition=Q(redcap_instance__isnull=False) & Q(redcap_instance__gte=1),
                               name=f"{prefix}_instance_numbered"),
    ]


class Patient(ClinicalRecord):
    patient_id = models.CharField(
        _("patient ID"), max_length=21, primary_key=True, editable=False,
        validators=[RegexValidator(PATIENT_ID_PATTERN, _("A patient ID looks like MUC-7K3QZ9."))],
        help_text=_("Registry pseudonym; issued by the registry, never changed."),
    )
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="patients", db_column="centre",
                               verbose_name=_("centre"))
    sex = code_field(_("sex"), codes.SEX)
    birth_year = models.PositiveSmallIntegerField(
        _("year of birth"), validators=[MinValueValidator(1900), current_year_or_earlier],
        help_text=_("Year only; the full date of birth is never stored."),
    )
    histology = code_field(_("histology"), codes.HISTOLOGY)
    lung_mets_diagnosis_date = past_date(
        _("diagnosis of lung metastases"), _("First radiological diagnosis of lung metastases."))
    extrapulmonary_disease_at_pm = models.BooleanField(
        _("extrapulmonary disease at first PM"),
        help_text=_("Metastases outside the lung at the time of the first metastasectomy."))
    ecog = bounded_int(_("ECOG"), 0, 4, _("ECOG performance status (0–4) at the first metastasectomy."), blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient_id"]
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        # Given to a user (a study statistician) by a coordinator in the admin, which logs it.
        permissions = [("analyse_every_centre", _("May read the analysis frame of every centre, row by row"))]
        constraints = [
            models.CheckConstraint(condition=Q(patient_id__regex=PATIENT_ID_PATTERN), name="patient_id_format"),
            models.CheckConstraint(condition=in_codes("sex", codes.SEX), name="patient_sex_code"),
            models.CheckConstraint(condition=in_codes("histology", codes.HISTOLOGY), name="patient_histology_code"),
            models.CheckConstraint(condition=Q(birth_year__gte=1900), name="patient_birth_year_from_1900"),
            models.CheckConstraint(condition=in_range("ecog", 0, 4), name="patient_ecog_range"),
        ]

    def __str__(self):
        return self.patient_id

    def clean(self):
        if self.patient_id and self.centre_id and not self.patient_id.startswith(f"{self.centre_id}-"):
            raise ValidationError({"centre": _("The patient ID %(id)s does not belong to centre %(centre)s.")
                                   % {"id": self.patient_id, "centre": self.centre_id}})


class PrimaryTumour(ClinicalRecord):
    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="primary_tumour",
                                   db_column="patient_id", verbose_name=_("patient"))
    diagnosis_date = past_date(_("diagnosis date"), _("Histological diagnosis of the primary tumour."))
    site = code_field(_("site"), codes.PRIMARY_SITE)
    size_mm = bounded_number(_("size (mm)"), 1, 500, _("Largest diameter of the primary, 1–500 mm."), blank=True)
    depth = code_field(_("depth"), codes.DEPTH, blank=True)
    grade = code_field(_("grade"), codes.GRADE, _("FNCLCC grade."), blank=True)
    surgery_date = past_date(_("surgery date"), _("Resection of the primary; not before the diagnosis."), blank=True)
    margin = code_field(_("margin"), codes.PRIMARY_MARGIN, blank=True)
    radiotherapy = code_field(_("radiotherapy"), codes.RADIOTHERAPY, blank=True)
    radiotherapy_end_date = past_date(
        _("end of radiotherapy"), _("Required when radiotherapy was given; not before the diagnosis."), blank=True)
    local_recurrence_before_pm = models.BooleanField(_("local recurrence before PM"), null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = _("primary tumour")
        verbose_name_plural = _("primary tumours")
        constraints = [
            models.CheckConstraint(condition=in_codes("site", codes.PRIMARY_SITE), name="primary_site_code"),
            models.CheckConstraint(condition=in_range("size_mm", 1, 500), name="primary_size_range"),
            models.CheckConstraint(condition=in_codes("depth", codes.DEPTH, nullable=True), name="primary_depth_code"),
            models.CheckConstraint(condition=in_codes("grade", codes.GRADE, nullable=True), name="primary_grade_code"),
            models.CheckConstraint(condition=in_codes("margin", codes.PRIMARY_MARGIN, nullable=True),
                                   name="primary_margin_code"),
            models.CheckConstraint(condition=in_codes("radiotherapy", codes.RADIOTHERAPY, nullable=True),
                                   name="primary_radiotherapy_code"),
            models.CheckConstraint(condition=Q(surgery_date__isnull=True) | Q(surgery_date__gte=models.F("diagnosis_date")),
                                   name="primary_surgery_not_before_diagnosis"),
            models.CheckConstraint(
                condition=Q(radiotherapy_end_date__isnull=True) | Q(radiotherapy_end_date__gte=models.F("diagnosis_date")),
                name="primary_radiotherapy_not_before_diagnosis"),
            models.CheckConstraint(
                condition=Q(radiotherapy_end_date__isnull=False) | Q(radiotherapy__isnull=True) | Q(radiotherapy="none")
                | Q(missing_codes__has_key="radiotherapy_end_date"),  # given, its end unknown (UNK)
                name="primary_radiotherapy_end_date_required"),
        ]

    def __str__(self):
        return _("primary tumour of %(patient)s") % {"patient": self.patient_id}

    def clean(self):
        errors = {}
        if self.surgery_date and self.diagnosis_date and self.surgery_date < self.diagnosis_date:
            errors["surgery_date"] = _("The surgery date is before the diagnosis date (%(date)s).") % {
                "date": self.diagnosis_date.isoformat()}
        if (self.radiotherapy in ("neoadjuvant", "adjuvant") and not self.radiotherapy_end_date
                and not self.missing_code("radiotherapy_end_date")):
            errors["radiotherapy_end_date"] = _("Enter the end date of the radiotherapy.")
        if self.radiotherapy == "none" and self.radiotherapy_end_date:
            errors["radiotherapy_end_date"] = _("No radiotherapy was given: leave its end date empty, or choose "
                                                "when it was given.")
        if self.radiotherapy_end_date and self.diagnosis_date and self.radiotherapy_end_date < self.diagnosis_date:
            errors["radiotherapy_end_date"] = _("The end of radiotherapy is before the diagnosis date (%(date)s).") % {
                "date": self.diagnosis_date.isoformat()}
        if errors:
            raise ValidationError(errors)


class Metastasectomy(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="metastasectomies",
                                db_column="patient_id", verbose_name=_("patient"))
    surgery_date = past_date(_("surgery date"), _("Date of the pulmonary metastasectomy."))
    side = code_field(_("side"), codes.SIDE)
    approach = code_field(_("approach"), codes.APPROACH)
    resection_type = code_field(_("resection type"), codes.RESECTION_TYPE)
    lesions_resected = bounded_int(_("lesions resected"), 1, 100, _("Metastases confirmed by pathology, 1–100."))
    max_lesion_diameter_mm = bounded_number(
        _("largest lesion (mm)"), 1, 200, _("Diameter of the largest resected metastasis, 1–200 mm."))
    diameter_source = code_field(_("diameter source"), codes.DIAMETER_SOURCE, blank=True)
    margin = code_field(_("margin"), codes.PM_MARGIN)
    lymph_node_sampling = models.BooleanField(_("lymph node sampling"), null=True, blank=True)
    clavien_dindo = code_field(_("Clavien-Dindo"), codes.CLAVIEN_DINDO,
                               _("Highest postoperative complication (Clavien-Dindo)."))
    hospital_stay_days = bounded_int(_("hospital stay (days)"), 0, 365, _("0–365 days."), blank=True)
    redcap_instance = instance_number()

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient_id", "surgery_date"]
        verbose_name = _("metastasectomy")
        verbose_name_plural = _("metastasectomies")
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "surgery_date"], name="one_metastasectomy_per_patient_and_date",
                violation_error_message=_("Another metastasectomy of this patient has the same surgery date.")),
            models.CheckConstraint(condition=in_codes("side", codes.SIDE), name="pm_side_code"),
            models.CheckConstraint(condition=in_codes("approach", codes.APPROACH), name="pm_approach_code"),
            models.CheckConstraint(condition=in_codes("resection_type", codes.RESECTION_TYPE), name="pm_resection_code"),
            models.CheckConstraint(condition=Q(lesions_resected__gte=1, lesions_resected__lte=100),
                                   name="pm_lesions_range"),
            models.CheckConstraint(condition=Q(max_lesion_diameter_mm__gte=1, max_lesion_diameter_mm__lte=200),
                                   name="pm_diameter_range"),
            models.CheckConstraint(condition=in_codes("diameter_source", codes.DIAMETER_SOURCE, nullable=True),
                                   name="pm_diameter_source_code"),
            models.CheckConstraint(condition=in_codes("margin", codes.PM_MARGIN), name="pm_margin_code"),
            models.CheckConstraint(condition=in_codes("clavien_dindo", codes.CLAVIEN_DINDO), name="pm_clavien_dindo_code"),
            models.CheckConstraint(condition=in_range("hospital_stay_days", 0, 365), name="pm_hospital_stay_range"),
            *instance_constraints("pm"),
        ]

    def __str__(self):
        return _("metastasectomy of %(patient)s on %(date)s") % {
            "patient": self.patient_id, "date": self.surgery_date}


class SystemicTherapy(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="systemic_therapies",
                                db_column="patient_id", verbose_name=_("patient"))
    start_date = past_date(_("start date"))
    end_date = past_date(_("end date"), _("Leave blank while the therapy is ongoing."), blank=True)
    regimen = code_field(_("regimen"), codes.REGIMEN)
    regimen_other = models.CharField(_("other regimen"), max_length=100, blank=True, null=True,
                                     help_text=_("Required when the regimen is 'other'; at most 100 characters."))
    intent = code_field(_("intent"), codes.INTENT)
    cycles = bounded_int(_("cycles"), 1, 50, _("1–50."), blank=True)
    best_response = code_field(_("best response"), codes.RESPONSE, _("RECIST."), blank=True)
    redcap_instance = instance_number()

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient_id", "start_date"]
        verbose_name = _("systemic therapy")
        verbose_name_plural = _("systemic therapies")
        constraints = [
            models.CheckConstraint(condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                                   name="therapy_end_not_before_start"),
            models.CheckConstraint(condition=in_codes("regimen", codes.REGIMEN), name="therapy_regimen_code"),
            models.CheckConstraint(condition=~Q(regimen="other") | (Q(regimen_other__isnull=False) & ~Q(regimen_other=""))
                                   | Q(missing_codes__has_key="regimen_other"),
                                   name="therapy_other_regimen_named"),
            models.CheckConstraint(condition=in_codes("intent", codes.INTENT), name="therapy_intent_code"),
            models.CheckConstraint(condition=in_range("cycles", 1, 50), name="therapy_cycles_range"),
            models.CheckConstraint(condition=in_codes("best_response", codes.RESPONSE, nullable=True),
                                   name="therapy_response_code"),
            *instance_constraints("therapy"),
        ]

    def __str__(self):
        return _("%(regimen)s of %(patient)s from %(date)s") % {
            "regimen": self.get_regimen_display(), "patient": self.patient_id, "date": self.start_date}

    def clean(self):
        errors = {}
        if self.end_date and self.start_date and self.end_date < self.start_date:
            errors["end_date"] = _("The end date is before the start date (%(date)s).") % {
                "date": self.start_date.isoformat()}
        if self.regimen == "other" and not (self.regimen_other or "").strip() and not self.missing_code("regimen_other"):
            errors["regimen_other"] = _("Name the regimen when you choose 'other'.")
        if errors:
            raise ValidationError(errors)


class FollowUp(ClinicalRecord):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="follow_ups",
                                db_column="patient_id", verbose_name=_("patient"))
    event_date = past_date(_("event date"), _("Not before the first metastasectomy; nothing after a death."))
    event = code_field(_("event"), codes.EVENT)
    recurrence_site = code_field(_("recurrence site"), codes.RECURRENCE_SITE, _("Required for a recurrence."),
                                 blank=True)
    cause_of_death = code_field(_("cause of death"), codes.CAUSE_OF_DEATH, _("Only for a death."), blank=True)
    redcap_instance = instance_number()

    history = HistoricalRecords()

    class Meta:
        ordering = ["patient_id", "event_date"]
        verbose_name = _("follow-up event")
        verbose_name_plural = _("follow-up events")
        constraints = [
            models.UniqueConstraint(fields=["patient"], condition=Q(event="death"), name="one_death_per_patient",
                                    violation_error_message=_("The patient already has a death recorded.")),
            models.CheckConstraint(condition=in_codes("event", codes.EVENT), name="follow_up_event_code"),
            models.CheckConstraint(
                # NULL IN (...) is unknown, which a CHECK lets through: say "not null" explicitly.
                condition=(Q(event="recurrence", recurrence_site__isnull=False)
                           & Q(recurrence_site__in=values(codes.RECURRENCE_SITE)))
                | (~Q(event="recurrence") & Q(recurrence_site__isnull=True)),
                name="follow_up_recurrence_site_for_recurrence"),
            models.CheckConstraint(
                condition=Q(cause_of_death__isnull=True)
                | (Q(event="death") & Q(cause_of_death__in=values(codes.CAUSE_OF_DEATH))),
                name="follow_up_cause_only_for_death"),
            *instance_constraints("follow_up"),
        ]

    def __str__(self):
        return _("%(event)s of %(patient)s on %(date)s") % {
            "event": self.get_event_display(), "patient": self.patient_id, "date": self.event_date}

    def clean(self):
        errors = {}
        # No missing-data code stands in for the site of a recurrence: the competing-risks analysis
        # tells a recurrence from a death without one by its site (analysis/sections.py).
        if self.event == "recurrence" and not self.recurrence_site:
            errors["recurrence_site"] = (_("The site of a recurrence is required: choose it instead of a missing-data "
                                           "code.") if self.missing_code("recurrence_site")
                                         else _("Choose the site of the recurrence."))
        if self.event != "recurrence" and self.recurrence_site:
            errors["recurrence_site"] = _("A recurrence site belongs only to a recurrence.")
        if self.event != "death" and self.cause_of_death:
            errors["cause_of_death"] = _("A cause of death belongs only to a death.")
        if errors:
            raise ValidationError(errors)


CLINICAL_MODELS = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)


class DataVersion(models.Model):
    """How often a centre's clinical data have changed. registry.services adds one in the same
    transaction as every write, so a reader that sees the counter sees exactly the data it counts;
    the dashboard cache, its poll and the exports name their data by it (registry.selectors)."""

    centre = models.OneToOneField(Centre, on_delete=models.CASCADE, primary_key=True, related_name="+",
                                  db_column="centre")
    counter = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = _("data version")
        verbose_name_plural = _("data versions")

    def __str__(self):
        return f"{self.centre_id}: {self.counter}"


class Submission(models.Model):
    """A create request seen before: its key (a form's hidden token, an API client's
    Idempotency-Key) and the record it created, so a double submit stores one record."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)
    table = models.CharField(max_length=40)
    record_pk = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_submission_per_user_and_key")]


class ImportRun(models.Model):
    """One successful bulk import: who, when, which file (name and sha256) and what it changed.

    `counts` is {table: {"created": n, "updated": n, "unchanged": n}}. Refused files and dry runs
    write nothing, so they leave no row here; a refused file is a SecurityEvent (import-refused).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("user"))
    username = models.CharField(_("username"), max_length=150, blank=True,
                                help_text=_("Kept when the account is deleted; empty for the system."))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    file_name = models.CharField(_("file name"), max_length=255)
    sha256 = models.CharField(_("SHA-256"), max_length=64, db_index=True)
    file_size = models.PositiveBigIntegerField(_("file size (bytes)"))
    rows = models.PositiveIntegerField(_("data rows"))
    counts = models.JSONField(_("counts"), default=dict)
    warnings = models.JSONField(_("warnings"), default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self):
        return f"{self.file_name} ({self.started_at:%Y-%m-%d %H:%M}, {self.username or 'system'})"


class ExportLog(models.Model):
    """One dataset export: who, when, what scope and options, from which data version."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("user"))
    username = models.CharField(_("username"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    scope = models.CharField(_("scope"), max_length=8, help_text=_("A centre code, or empty for the pooled dataset."),
                             blank=True)
    file_format = models.CharField(_("format"), max_length=4)
    deidentify = models.CharField(_("de-identification"), max_length=12)
    data_version = models.CharField(_("data version"), max_length=12)
    freeze = models.CharField(_("freeze"), max_length=80, blank=True,
                              help_text=_("The data freeze exported, or empty for the live data."))
    counts = models.JSONField(_("rows per table"), default=dict)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")

    def __str__(self):
        return f"{self.scope or 'pooled'} {self.file_format} ({self.created_at:%Y-%m-%d %H:%M}, {self.username or 'system'})"


class SecurityEvent(models.Model):
    """The audit trail of requests and accounts, one row per event: two-factor sign-in events, API
    tokens created or revoked, every read of patient-level data, every refused request (401, 403,
    429, a lookup of another centre's patient), invalid API tokens, refused imports and sign-in
    unlocks. Written by registry.security.audit, one INSERT per request.

    One table rather than one per kind: every row answers the same who, when and from where, and
    the security log and the audit export read one place. Elsewhere: password sign-ins, sign-outs
    and failed sign-ins are kept by django-axes (AccessLog, AccessFailureLog); dataset exports by
    ExportLog; written imports by ImportRun; clinical changes by django-simple-history."""

    TWO_FACTOR_ENABLED = "2fa-enabled"
    TWO_FACTOR_REMOVED = "2fa-removed"
    TWO_FACTOR_PASSED = "2fa-passed"
    TWO_FACTOR_FAILED = "2fa-failed"
    TOKEN_CREATED = "token-created"
    TOKEN_REVOKED = "token-revoked"
    READ = "read"
    DENIED = "denied"
    THROTTLED = "throttled"
    TOKEN_INVALID = "token-invalid"
    IMPORT_REFUSED = "import-refused"
    UNLOCKED = "unlocked"
    SIGNATURE_REFUSED = "sign-refused"
    EVENTS = [
        (TWO_FACTOR_ENABLED, _("two-factor sign-in set up")),
        (TWO_FACTOR_REMOVED, _("two-factor sign-in removed")),
        (TWO_FACTOR_PASSED, _("two-factor code accepted")),
        (TWO_FACTOR_FAILED, _("two-factor code refused")),
        (TOKEN_CREATED, _("API token created")),
        (TOKEN_REVOKED, _("API token revoked")),
        (READ, _("read patient data")),
        (DENIED, _("request refused")),
        (THROTTLED, _("too many requests")),
        (TOKEN_INVALID, _("invalid API token")),
        (IMPORT_REFUSED, _("import refused")),
        (UNLOCKED, _("sign-in unlocked")),
        (SIGNATURE_REFUSED, _("signature refused (wrong password or code)")),
    ]
    # Events that a coordinator should look at (highlighted in the security log).
    ALERTS = (TWO_FACTOR_FAILED, DENIED, THROTTLED, TOKEN_INVALID, IMPORT_REFUSED, SIGNATURE_REFUSED)

    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("user"))
    username = models.CharField(_("username"), max_length=150)
    event = models.CharField(_("event"), max_length=16, choices=EVENTS)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    detail = models.CharField(_("detail"), max_length=200, blank=True)
    what = models.CharField(_("page or endpoint"), max_length=100, blank=True,
                            help_text=_("The URL name of the page or API endpoint, or the command."))
    centres = models.TextField(_("centres"), blank=True,
                               help_text=_("The centres whose data were read, space-separated; * for every centre."))
    patient_id = models.CharField(_("patient"), max_length=21, blank=True, db_index=True,
                                  help_text=_("The pseudonym, when the event concerns one patient."))
    rows = models.PositiveIntegerField(_("rows"), null=True, blank=True,
                                       help_text=_("Rows of patient-level data sent (records, or patients)."))
    status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = _("security event")
        verbose_name_plural = _("security events")
        indexes = [models.Index(fields=["username", "at"], name="securityevent_username_at")]

    def __str__(self):
        return f"{self.username} {self.event} ({self.at:%Y-%m-%d %H:%M})"


class Job(models.Model):
    """An import or an export that runs on the job queue (registry/transfer/jobs.py).

    The page of a job is shown only to the user who submitted it; its id is random. `payload` holds
    the uploaded file until the job has run; `result` the export archive, until JOB_RESULT_HOURS
    after the end. `report` is the import's counts; its errors, warnings and pseudonym mapping, which
    may quote the file's local keys, are held in the cache only (registry.transfer.jobs).
    """

    IMPORT, EXPORT = "import", "export"
    KINDS = [(IMPORT, _("import")), (EXPORT, _("export"))]
    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATES = [(QUEUED, _("waiting")), (RUNNING, _("running")), (DONE, _("finished")), (FAILED, _("failed"))]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("kind"), max_length=8, choices=KINDS)
    state = models.CharField(_("state"), max_length=8, choices=STATES, default=QUEUED)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             verbose_name=_("user"))
    created_at = models.DateTimeField(_("submitted at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    options = models.JSONField(_("options"), default=dict,
                               help_text=_("Import: file name, table, dry run. Export: scope, format, de-identification."))
    step = models.CharField(_("step"), max_length=40, blank=True)
    payload = models.BinaryField(_("uploaded file"), null=True, editable=False)
    result = models.BinaryField(_("result"), null=True, editable=False)
    result_name = models.CharField(_("result file name"), max_length=200, blank=True)
    report = models.JSONField(_("report"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")

    def __str__(self):
        return f"{self.kind} {self.options.get('file_name', '')} {self.state} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def finished(self):
        return self.state in (self.DONE, self.FAILED)


class AuditSeal(models.Model):
    """A seal over the rows one audit table gained since its previous seal, in id order: each row's
    keyed digest, and a keyed digest of the whole that names the seal before it (of any table), so
    the seals form one chain. manage.py audit_verify recomputes them (registry/audit_chain.py)."""

    table = models.CharField(max_length=63)
    last_id = models.BigIntegerField(help_text="The highest row id this seal covers.")
    rows = models.PositiveIntegerField()
    columns = models.JSONField(help_text="The columns hashed, in order (a column added later is not in older seals).")
    row_digests = models.BinaryField(help_text="(id, digest) of every row covered, packed.")
    previous = models.CharField(max_length=64, blank=True, help_text="The digest of the seal before, any table.")
    digest = models.CharField(max_length=64, unique=True)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["table", "last_id"], name="audit_seal_table_last_id")]

    def __str__(self):
        return f"seal {self.pk} of {self.table} up to row {self.last_id}"


class ErasureTombstone(models.Model):
    """One patient erased on a documented legal request (manage.py erase_patient): who, when, on which
    request, at which centre, and which rows of each table went. It never holds the pseudonym, only
    a keyed hash of it; `mac` is a keyed digest of the whole, so the chain trusts no forged tombstone."""

    at = models.DateTimeField(_("erased at"))
    username = models.CharField(_("erased by"), max_length=150)
    reference = models.CharField(_("legal request"), max_length=200)
    centre = models.CharField(_("centre"), max_length=8)
    patient_hash = models.CharField(_("keyed hash of the pseudonym"), max_length=64, db_index=True)
    counts = models.JSONField(_("rows erased per table"), default=dict)
    erased_rows = models.JSONField(_("ids of the audit rows erased"), default=dict,
                                   help_text=_("{audit table: [row id]}: the sealed rows audit_verify no longer finds."))
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ["-at"]
        verbose_name = _("erasure")
        verbose_name_plural = _("erasures")

    def __str__(self):
        return f"{self.centre} {self.reference} ({self.at:%Y-%m-%d %H:%M}, {self.username})"


# django-pgtrigger installs triggers on another app's model through a proxy in one's own app, whose
# migrations then carry them: these are django-axes' sign-in logs as audit tables (registry.audit_tables).
class SignInLog(AccessLog):
    class Meta:
        proxy = True


class FailedSignInLog(AccessFailureLog):
    class Meta:
        proxy = True


class DeletedRecord(models.Model):
    """A tombstone: one deletion of a clinical record, or of a patient with the whole case (registry.
    services.record_delete), with who, when, where from, why, and the deleted rows' last values, so the
    deletion can be read and undone (services.record_restore). Append-only (registry.audit_tables);
    manage.py erase_patient deletes a patient's tombstones with the rest of the patient."""

    table = models.CharField(_("table"), max_length=20, help_text=_("The data dictionary's table of the record."))
    record_pk = models.CharField(_("record"), max_length=21, help_text=_("The record's id, or the pseudonym."))
    patient_id = models.CharField(_("patient"), max_length=21, db_index=True)
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="+", db_column="centre",
                               verbose_name=_("centre"))
    deleted_at = models.DateTimeField(_("deleted at"), db_index=True)
    deleted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+", verbose_name=_("deleted by"))
    username = models.CharField(_("deleted by"), max_length=150, blank=True,
                                help_text=_("Kept when the account is renamed; empty for the system."))
    source = models.CharField(_("source"), max_length=20, blank=True, help_text=_("web, api or admin."))
    reason = models.CharField(_("reason"), max_length=200)
    values = models.JSONField(_("last values"), default=dict,
                              help_text=_("{table: [row]}: every row the deletion removed, as it was."))

    class Meta:
        ordering = ["-deleted_at", "-id"]
        verbose_name = _("deleted record")
        verbose_name_plural = _("deleted records")

    def __str__(self):
        return f"{self.table} {self.record_pk} ({self.deleted_at:%Y-%m-%d %H:%M}, {self.username or 'system'})"

    @property
    def restoration_or_none(self):
        """The Restoration of this deletion, or None while it is deleted."""
        try:
            return self.restoration
        except Restoration.DoesNotExist:
            return None


class Restoration(models.Model):
    """A deleted record put back by a coordinator (services.record_restore): the tombstone restored,
    who, when and why. Its own row, because tombstones are append-only; at most one per tombstone."""

    deleted_record = models.OneToOneField(DeletedRecord, on_delete=models.CASCADE, related_name="restoration",
                                          verbose_name=_("deleted record"))
    patient_id = models.CharField(_("patient"), max_length=21, db_index=True)
    restored_at = models.DateTimeField(_("restored at"))
    restored_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", verbose_name=_("restored by"))
    username = models.CharField(_("restored by"), max_length=150, blank=True)
    source = models.CharField(_("source"), max_length=20, blank=True)
    reason = models.CharField(_("reason"), max_length=200)

    class Meta:
        ordering = ["-restored_at"]
        verbose_name = _("restoration")
        verbose_name_plural = _("restorations")

    def __str__(self):
        return f"{self.deleted_record_id} ({self.restored_at:%Y-%m-%d %H:%M}, {self.username or 'system'})"

class Signature(models.Model):
    """A principal investigator's electronic signature of one patient's case: who signed, when, from
    where, what the signature means (the statement shown to the signer, stored as shown) and a SHA-256
    of the case as signed (registry.cases.case_digest: every record's values; not its status).

    Written once by registry.services.signatures and never changed (an audit table, append-only and
    sealed). Whether it still holds is computed, not stored: it is valid while the case's digest
    equals `data_hash`. Every change of the case (an edit, a new or deleted record, a status move,
    whichever path wrote it, even one past the services) gives the case another digest.
    The patient is named by its pseudonym, not a foreign key: the signature outlives a deleted case,
    as the audit trail does."""

    patient_id = models.CharField(_("patient"), max_length=21, db_index=True)
    centre = models.CharField(_("centre"), max_length=8, db_index=True)
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+", verbose_name=_("signed by"))
    username = models.CharField(_("user name"), max_length=150)
    signer_name = models.CharField(_("name of the signer"), max_length=300, blank=True,
                                   help_text=_("The signer's full name at the time of signing."))
    signed_at = models.DateTimeField(_("signed at"), db_index=True)
    meaning = models.TextField(_("meaning of the signature"))
    data_hash = models.CharField(_("SHA-256 of the signed case"), max_length=64)
    records = models.PositiveIntegerField(_("records signed"))
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    source = models.CharField(_("signed through"), max_length=8, blank=True, help_text=_("web or api"))

    class Meta:
        ordering = ["-signed_at", "-id"]
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")

    def __str__(self):
        return f"{self.patient_id} signed by {self.username} ({self.signed_at:%Y-%m-%d %H:%M})"


class FieldVerification(models.Model):
    """One field of one record checked against the source documents (source data verification): by
    whom, when, and the value that was checked, as registry.cases.canonical_value writes it.

    Written by registry.services.verification and never changed (an audit table). Whether the field
    is verified now is computed: the newest row of the field holds the value the record has now; a
    field whose value has changed since shows as unverified again, and is verified anew by a new row."""

    patient_id = models.CharField(_("patient"), max_length=21, db_index=True)
    table = models.CharField(_("table"), max_length=40, help_text=_("The data dictionary's table name."))
    record_pk = models.CharField(_("record"), max_length=40)
    field = models.CharField(_("field"), max_length=60)
    value = models.TextField(_("value verified"), blank=True)
    verified_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+", verbose_name=_("verified by"))
    username = models.CharField(_("user name"), max_length=150)
    verified_at = models.DateTimeField(_("verified at"))

    class Meta:
        ordering = ["verified_at", "id"]
        verbose_name = _("field verification")
        verbose_name_plural = _("field verifications")
        indexes = [models.Index(fields=["table", "record_pk"], name="fieldverification_record")]

    def __str__(self):
        return f"{self.table} {self.record_pk} {self.field} verified by {self.username}"
class Query(models.Model):
    """A data clarification request on one field of one clinical record (registry.services.queries
    alone changes it). A monitor or a coordinator raises it, or the system does when a soft check
    (registry.soft_checks) finds an implausible value; a nurse of the centre answers it, with a
    message or by correcting the field; a monitor closes it or reopens it. Each step is a
    QueryMessage: who, when, from where and what was said.

    The record is named by its table (the data dictionary's name) and primary key, not by a foreign
    key: a query outlives the record it asked about, as the audit trail does. For the same reason
    the patient is a key without a database constraint; `centre` scopes who may read it.
    """

    OPEN, ANSWERED, CLOSED, REOPENED = "open", "answered", "closed", "reopened"
    STATES = [(OPEN, _("open")), (ANSWERED, _("answered")), (CLOSED, _("closed")), (REOPENED, _("reopened"))]
    MANUAL, SOFT_CHECK = "manual", "soft_check"
    ORIGINS = [(MANUAL, _("raised by a person")), (SOFT_CHECK, _("soft check"))]
    TABLES = [("patients", _("patient")), ("primary_tumours", _("primary tumour")),
              ("metastasectomies", _("metastasectomy")), ("systemic_therapies", _("systemic therapy")),
              ("follow_up", _("follow-up event"))]

    patient = models.ForeignKey(Patient, on_delete=models.DO_NOTHING, db_constraint=False, related_name="queries",
                                db_column="patient_id", verbose_name=_("patient"))
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="+", db_column="centre",
                               verbose_name=_("centre"))
    table = models.CharField(_("table"), max_length=20, choices=TABLES)
    record_pk = models.CharField(_("record"), max_length=40, help_text=_("The record's primary key in its table."))
    field = models.CharField(_("field"), max_length=40, blank=True,
                             help_text=_("The column asked about; empty for the record as a whole."))
    state = models.CharField(_("state"), max_length=8, choices=STATES, default=OPEN)
    origin = models.CharField(_("origin"), max_length=10, choices=ORIGINS, default=MANUAL)
    check_code = models.CharField(_("soft check"), max_length=40, blank=True,
                                  help_text=_("The soft check that raised it (registry.soft_checks)."))
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+", verbose_name=_("raised by"))
    # Who made the last step (None: the system), so a soft check knows a person's close from its own
    # (kept when the account is deleted).
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False,
                                   null=True, blank=True, related_name="+", verbose_name=_("last step by"))
    created_at = models.DateTimeField(_("raised at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("last step at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("query")
        verbose_name_plural = _("queries")
        indexes = [models.Index(fields=["centre", "state"], name="query_centre_state"),
                   models.Index(fields=["patient", "table", "record_pk"], name="query_record")]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=["open", "answered", "closed", "reopened"]),
                                   name="query_state_code"),
            models.CheckConstraint(condition=(Q(origin="manual") & Q(check_code=""))
                                   | (Q(origin="soft_check") & ~Q(check_code="")), name="query_origin_check_code"),
            # One pending soft-check query per record, field and check, whoever syncs at the same time.
            models.UniqueConstraint(fields=["patient", "table", "record_pk", "field", "check_code"],
                                    condition=Q(origin="soft_check") & ~Q(state="closed"),
                                    name="one_pending_soft_check_query"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.table} {self.record_pk} {self.field} ({self.state})"

    @property
    def pending(self):
        """Not closed: waiting for the centre (open, reopened) or for the monitor (answered)."""
        return self.state != self.CLOSED


class QueryMessage(models.Model):
    """One step of a query's thread, append-only (registry.audit_tables): who (None: the system),
    when, from where (the client's address), which move, and what was said. An answer made by
    correcting the field names the record's version that change created (its history row)."""

    RAISE, ANSWER, CLOSE, REOPEN = "raise", "answer", "close", "reopen"
    ACTIONS = [(RAISE, _("raised")), (ANSWER, _("answered")), (CLOSE, _("closed")), (REOPEN, _("reopened"))]
    # What the system said, for its own steps (shown in the reader's language).
    FIRED, PLAUSIBLE, RECORD_DELETED = "fired", "plausible", "record_deleted"
    SYSTEM_NOTES = [(FIRED, _("the soft check found the value implausible")),
                    (PLAUSIBLE, _("the value is no longer implausible")),
                    (RECORD_DELETED, _("the record was deleted"))]

    query = models.ForeignKey(Query, on_delete=models.PROTECT, related_name="messages", verbose_name=_("query"))
    patient_id = models.CharField(_("patient"), max_length=21, db_index=True)  # an erasure deletes the rows naming it
    # No database constraint and nothing done on the user's deletion: an audit row is never updated.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False,
                               null=True, blank=True, related_name="+", verbose_name=_("author"))
    username = models.CharField(_("user name"), max_length=150, blank=True, help_text=_("Empty for the system."))
    created_at = models.DateTimeField(_("at"), auto_now_add=True)
    action = models.CharField(_("action"), max_length=8, choices=ACTIONS)
    text = models.TextField(_("message"), blank=True)
    system_note = models.CharField(_("system note"), max_length=16, choices=SYSTEM_NOTES, blank=True)
    value = models.CharField(_("value"), max_length=200, blank=True,
                             help_text=_("The field's value at this step, as stored."))
    record_version = models.PositiveIntegerField(_("record version"), null=True, blank=True,
                                                 help_text=_("The version of the record whose change answered it."))
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("query message")
        verbose_name_plural = _("query messages")
        constraints = [models.CheckConstraint(condition=Q(action__in=["raise", "answer", "close", "reopen"]),
                                              name="query_message_action_code")]

    def __str__(self):
        return f"{self.action} of query {self.query_id} by {self.username or 'system'}"


FREEZE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"


class Freeze(models.Model):
    """A data freeze: the clinical tables as they were at one instant, kept unchanged for good so
    that every result computed from it can be computed again, byte for byte (registry.frozen holds
    the canonical form, registry.services.freezes writes it). Its cases are FrozenCase rows; both
    tables are append-only (registry.audit_tables), so nothing changes or deletes a freeze but a
    legal erasure of one patient, which takes that patient's frozen case along.

    `counts` is {centre: {table: rows}}; `content_hash` the SHA-256 of the canonical serialisation;
    `data_version` the live data version the freeze was read at."""

    ALL, VERIFIED = "all", "verified"
    RULES = [(ALL, _("all records")), (VERIFIED, _("verified and locked records only"))]

    name = models.CharField(
        _("name"), max_length=80, unique=True,
        validators=[RegexValidator(FREEZE_NAME_PATTERN, _("Use letters, digits, '.', '_' and '-', starting with a "
                                                          "letter or digit (at most 80)."))])
    created_at = models.DateTimeField(_("frozen at"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("user"))
    username = models.CharField(_("frozen by"), max_length=150, blank=True,
                                help_text=_("Kept when the account is deleted; empty for the system."))
    rule = models.CharField(_("records"), max_length=8, choices=RULES, default=ALL)
    dictionary_version = models.CharField(_("data dictionary version"), max_length=64)
    data_version = models.CharField(_("data version"), max_length=12)
    content_hash = models.CharField(_("content hash (SHA-256)"), max_length=64)
    counts = models.JSONField(_("rows per centre and table"), default=dict)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("data freeze")
        verbose_name_plural = _("data freezes")
        constraints = [models.CheckConstraint(condition=Q(rule__in=["all", "verified"]), name="freeze_rule_code"),
                       models.CheckConstraint(condition=Q(name__regex=FREEZE_NAME_PATTERN), name="freeze_name_format")]

    def __str__(self):
        return self.name

    def table_counts(self, centres=None):
        """{table: rows} over the centres given (None: every centre of the freeze)."""
        totals = {}
        for centre, tables in sorted(self.counts.items()):
            if centres is None or centre in centres:
                for table, count in tables.items():
                    totals[table] = totals.get(table, 0) + count
        return totals


class FrozenCase(models.Model):
    """One patient's case in a freeze: the canonical line of registry.frozen (the patient's row and
    the rows of its records, table by table). One row per patient keeps a freeze compact and lets a
    legal erasure remove exactly one patient from it."""

    freeze = models.ForeignKey(Freeze, on_delete=models.PROTECT, related_name="cases")
    patient_id = models.CharField(max_length=21)  # not a foreign key: the live patient may go
    centre = models.CharField(max_length=8)
    data = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["freeze", "patient_id"], name="one_frozen_case_per_patient")]

    def __str__(self):
        return f"{self.patient_id} in {self.freeze_id}"
