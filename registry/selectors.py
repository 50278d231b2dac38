"""Reads that more than one layer needs: a patient's stored case, which pseudonyms are taken or were
ever issued, one consistent snapshot of the database, the data version, and the data freezes (the
live registry in canonical form, a freeze's cases, and the rows of either for the analysis).
Writes live in registry.services."""
import contextlib
import hashlib
import statistics
from collections import Counter, defaultdict

from django.db import connection, transaction
from django.db.models import Count, Exists, FloatField, Max, OuterRef, Q, Subquery
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils import timezone

from registry import frozen
from registry.cases import assemble
from registry.dictionary import TABLE_MODELS
from registry.index_date import index_date
from registry.models import (
    Centre,
    DataVersion,
    DeletedRecord,
    FollowUp,
    Freeze,
    FrozenCase,
    Metastasectomy,
    Patient,
    PrimaryTumour,
    Query,
    SystemicTherapy,
)


def case_load(patient):
    """The patient's whole case as stored (four queries), each list in date order."""
    return assemble(patient, [*PrimaryTumour.objects.filter(patient=patient),
                              *Metastasectomy.objects.filter(patient=patient),
                              *SystemicTherapy.objects.filter(patient=patient),
                              *FollowUp.objects.filter(patient=patient)])


def stored_records(patient_ids, *, lock, chunk=5000):
    """The stored records of these patients, for an import to merge with: ({id: patient},
    {id: primary tumour}, {child table: {id: [record, ...]}}), children in the order stored.

    With `lock` the patients' rows stay locked until the commit, as every write of the services
    locks them. Read in chunks: SQLite caps the number of query parameters."""
    patients, tumours = {}, {}
    children = {table: defaultdict(list) for table in ("metastasectomies", "systemic_therapies", "follow_up")}
    for start in range(0, len(patient_ids), chunk):
        ids = patient_ids[start:start + chunk]
        found = Patient.objects.filter(pk__in=ids)
        patients.update((p.pk, p) for p in (found.select_for_update() if lock else found))
        present = [pid for pid in ids if pid in patients]
        if not present:
            continue
        tumours.update((t.patient_id, t) for t in PrimaryTumour.objects.filter(patient_id__in=present))
        for table, model in (("metastasectomies", Metastasectomy), ("systemic_therapies", SystemicTherapy),
                             ("follow_up", FollowUp)):
            for record in model.objects.filter(patient_id__in=present).order_by("pk"):
                children[table][record.patient_id].append(record)
    return patients, tumours, children


def existing_patient_ids(patient_ids, chunk=5000):
    """Which of these pseudonyms are already in use (chunked: SQLite caps query parameters)."""
    taken = set()
    for start in range(0, len(patient_ids), chunk):
        taken.update(Patient.objects.filter(pk__in=patient_ids[start:start + chunk]).values_list("pk", flat=True))
    return taken


def issued_patient_ids(patient_ids, chunk=5000):
    """Which of these pseudonyms the registry has ever issued: stored patients and, from the audit
    trail, deleted ones (a pseudonym is never given to a second person)."""
    issued = existing_patient_ids(patient_ids, chunk)
    for start in range(0, len(patient_ids), chunk):
        issued.update(Patient.history.filter(patient_id__in=patient_ids[start:start + chunk])
                      .values_list("patient_id", flat=True).distinct())
    return issued


def deleted_patients(patient_ids, chunk=5000):
    """{pseudonym: date of its deletion} for those of these pseudonyms that belonged to a patient
    who was deleted and is not stored now (the audit trail keeps the deletion)."""
    deleted = {}
    for start in range(0, len(patient_ids), chunk):
        deletions = Patient.history.filter(patient_id__in=patient_ids[start:start + chunk], history_type="-")
        for patient_id, when in deletions.order_by("history_date").values_list("patient_id", "history_date"):
            deleted[patient_id] = timezone.localtime(when).date()  # the day as the registry's users count it
    for patient_id in existing_patient_ids(list(deleted)):
        del deleted[patient_id]
    return deleted


@contextlib.contextmanager
def one_snapshot(*, read_only=True):
    """Every read in the block sees the same state of the database, whatever commits meanwhile:
    on PostgreSQL a REPEATABLE READ transaction, read-only unless a service writes what it read
    (a freeze), unless already inside a transaction, where the isolation level can no longer be
    set; SQLite's transactions read one snapshot."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" + (" READ ONLY" if read_only else ""))
        yield


def data_version(centres=None):
    """A short token naming the state of the clinical data of `centres` (None: every centre).

    It is made of the centres' write counters (registry.services.versions moves them in the same
    transaction as every write): one query, and it changes exactly when their data change."""
    counters = DataVersion.objects.order_by("centre_id").values_list("centre_id", "counter")
    if centres is not None:
        counters = counters.filter(centre_id__in=sorted(centres))
    state = ",".join(f"{code}:{counter}" for code, counter in counters)
    return hashlib.sha256(state.encode()).hexdigest()[:12]


def centres(codes=None):
    """The centres with these codes (None: every centre), in code order."""
    found = Centre.objects.all()
    return found if codes is None else found.filter(code__in=sorted(codes))


def records_of(patients):
    """{table: queryset} of the dictionary's five tables, restricted to the `patients` queryset
    (each a subquery: one query per table, whatever the number of patients)."""
    in_scope = {"patient_id__in": patients.values("pk")}
    return {
        "patients": patients,
        "primary_tumours": PrimaryTumour.objects.filter(**in_scope),
        "metastasectomies": Metastasectomy.objects.filter(**in_scope),
        "systemic_therapies": SystemicTherapy.objects.filter(**in_scope),
        "follow_up": FollowUp.objects.filter(**in_scope),
    }


def centre_progress(patients):
    """{centre code: {"patients", "records", "complete", "verified", "last_entry"}} for the
    `patients` queryset: records of the five tables by status (complete counts complete, verified
    and locked; verified counts verified and locked) and the time of the latest change. One query:
    the tables' grouped counts in a UNION ALL."""
    grouped = []
    for table, records in records_of(patients).items():
        centre = "centre" if table == "patients" else "patient__centre"
        grouped.append(records.values_list(centre, "status").annotate(n=Count("pk"), last=Max("updated_at"))
                       .order_by())
    progress = {}
    for code, status, n, last in grouped[0].union(*grouped[1:], all=True):
        row = progress.setdefault(code, {"patients": 0, "records": 0, "complete": 0, "verified": 0,
                                         "last_entry": None})
        row["records"] += n
        row["complete"] += n if status in ("complete", "verified", "locked") else 0
        row["verified"] += n if status in ("verified", "locked") else 0
        row["last_entry"] = max(filter(None, (row["last_entry"], last)), default=None)
    for code, n in patients.values_list("centre").annotate(n=Count("pk")).order_by():
        progress[code]["patients"] = n
    return progress


def inclusions_by_year(patients):
    """{(centre code, year): patients} by the year of each patient's index operation (the first
    metastasectomy, registry.index_date): the study's recruitment over calendar time. One row per
    patient is read (a year of an aggregate cannot be grouped on in the same query)."""
    counts = Counter()
    for code, day in patients.annotate(index=index_date()).filter(index__isnull=False).values_list("centre", "index"):
        counts[code, day.year] += 1
    return dict(counts)


def follow_up_due(patients, *, contact_before):
    """The patients not known to have died whose last contact (their latest follow-up event or
    metastasectomy) is before `contact_before`, annotated with `last_contact`, oldest first."""
    last_event = Subquery(FollowUp.objects.filter(patient=OuterRef("pk")).order_by("-event_date")
                          .values("event_date")[:1])
    last_operation = Subquery(Metastasectomy.objects.filter(patient=OuterRef("pk")).order_by("-surgery_date")
                              .values("surgery_date")[:1])
    # Greatest() of a NULL is NULL on SQLite but not on PostgreSQL: coalesce both ways first.
    last_contact = Greatest(Coalesce(last_event, last_operation), Coalesce(last_operation, last_event))
    died = Exists(FollowUp.objects.filter(patient=OuterRef("pk"), event="death"))
    return (patients.annotate(last_contact=last_contact, died=died)
            .filter(died=False, last_contact__lt=contact_before).order_by("last_contact", "pk"))


def query_ages_by_centre(queries, *, now=None):
    """{centre code: {"open", "answered", "oldest_days", "median_days"}} for the centres with pending
    queries among `queries` (a Query queryset, scoped by registry.access.queries_readable), in code
    order. `open` counts the queries waiting for the centre (open and reopened), whose ages (whole
    days since raised) give the oldest and the median (None without any); `answered` those waiting
    for the monitor. One query."""
    now = now or timezone.now()
    by_centre = defaultdict(lambda: {"open": [], "answered": 0})
    rows = queries.filter(state__in=[Query.OPEN, Query.REOPENED, Query.ANSWERED]).order_by()
    for centre, state, created_at in rows.values_list("centre", "state", "created_at"):
        if state == Query.ANSWERED:
            by_centre[centre]["answered"] += 1
        else:
            by_centre[centre]["open"].append((now - created_at).days)
    return {centre: {"open": len(ages), "answered": found["answered"], "oldest_days": max(ages) if ages else None,
                     "median_days": statistics.median(ages) if ages else None}
            for centre, found in sorted(by_centre.items()) for ages in [found["open"]]}


# --- data freezes (registry.frozen: the canonical form) --------------------------------------------

def freezes():
    """Every freeze, newest first."""
    return Freeze.objects.all()


def freeze_named(name):
    """The freeze of this name, or None."""
    return Freeze.objects.filter(name=name).first() if name else None


def canonical_cases(*, rule="all", centres=None):
    """[(patient_id, centre, canonical line)] of every case of the live registry, in patient_id order
    (code points). Under the rule "verified" a record is kept when it and its patient are verified
    or locked: the records of a patient who is not are left out with the patient (a record without
    its patient could not be analysed); `centres` (codes, None: every centre) narrows it. Read
    inside one_snapshot() for a consistent state.

    Five queries per centre: a centre's rows at a time bound the memory (10,000 patients hold
    ~70,000 records), and a join on the centre costs the database far less than long lists of
    pseudonyms (measured: 0.25 s against 1.6 s for chunks of 5,000)."""
    patients = Patient.objects.order_by()
    if rule == "verified":
        patients = patients.filter(status__in=frozen.VERIFIED_STATUSES)
    codes = sorted(set(patients.values_list("centre_id", flat=True)))
    names = frozen.columns("patients")
    cases = []
    for code in codes if centres is None else sorted(set(codes) & set(centres)):
        in_centre = patients.filter(centre_id=code)
        records = defaultdict(lambda: defaultdict(list))
        for table in frozen.CHILD_TABLES:
            found = TABLE_MODELS[table].objects.order_by().filter(patient__in=in_centre.values("pk"))
            if rule == "verified":
                found = found.filter(status__in=frozen.VERIFIED_STATUSES)
            lookups = [frozen.attname(table, n) for n in frozen.columns(table)]
            owner = lookups.index("patient_id")
            for row in found.values_list(*lookups):
                records[row[owner]][table].append(row)
        for row in in_centre.values_list(*[frozen.attname("patients", n) for n in names]):
            cases.append((row[0], code, frozen.case_line(row, records.get(row[0], {}))))
    return sorted(cases)


def frozen_cases(freeze, centres=None):
    """[(patient_id, centre, canonical line)] of a freeze, in patient_id order (code points), only
    those of `centres` (codes; None: every centre)."""
    cases = FrozenCase.objects.filter(freeze=freeze)
    if centres is not None:
        cases = cases.filter(centre__in=sorted(centres))
    return sorted(cases.values_list("patient_id", "centre", "data"))


def freeze_version(freeze):
    """A short token naming a freeze's content, as data_version() names the live data: the start of
    its content hash, unless a legal erasure has taken cases out of it since (then a token of what
    is left, so no cache answers for the erased patient)."""
    frozen_patients = sum(tables.get("patients", 0) for tables in freeze.counts.values())
    present = FrozenCase.objects.filter(freeze=freeze).count()
    if present == frozen_patients:
        return freeze.content_hash[:12]
    return hashlib.sha256(f"{freeze.content_hash}:{present}".encode()).hexdigest()[:12]


def freeze_provenance(freeze):
    """What a result computed from a freeze names: the freeze, its instant, rule and hashes."""
    return {"name": freeze.name, "frozen_at": freeze.created_at.isoformat(), "rule": freeze.rule,
            "content_hash": freeze.content_hash, "dictionary_version": freeze.dictionary_version,
            "live_data_version": freeze.data_version}


def freeze_diff(freeze, against=None, centres=None):
    """Every record added, changed (with its columns) or removed from `freeze` to `against` (a later
    freeze, or None: the live registry under the freeze's rule), only of `centres` (None: every
    centre); rows as registry.frozen.diff gives them."""
    before = {pid: (centre, line) for pid, centre, line in frozen_cases(freeze, centres)}
    if against is None:
        with one_snapshot():
            after = {pid: (centre, line) for pid, centre, line in canonical_cases(rule=freeze.rule, centres=centres)}
    else:
        after = {pid: (centre, line) for pid, centre, line in frozen_cases(against, centres)}
    return frozen.diff(before, after)


class LiveRows:
    """The dictionary's tables of the patients in a Patient queryset, for arrays (the analysis
    frame): rows(table, names) is one query, a list of tuples of those columns (frozen.columns
    names), numbers with decimals cast to float in SQL (100,000 rows skip Decimal objects)."""

    def __init__(self, patients):
        self.records = records_of(patients)

    def rows(self, table, names):
        queryset, lookups = self.records[table].order_by(), []
        for name in names:
            if frozen.column_type(table, name) == "number":
                queryset = queryset.annotate(**{f"{name}_float": Cast(name, FloatField())})
                lookups.append(f"{name}_float")
            else:
                lookups.append(frozen.attname(table, name))
        return list(queryset.values_list(*lookups))


class FrozenRows:
    """The same rows from a freeze, only the cases of `centres` (codes; None: every centre):
    one query for the whole freeze; numbers as `number` (float for arrays, Decimal as the models
    hold them), dates as datetime.date, or with `dates_as_text` as their ISO text (for arrays:
    pandas parses a column of it at once, ~0.5 s less for 10,000 patients)."""

    def __init__(self, freeze, centres=None, *, number=float, dates_as_text=False):
        self.tables = dict(zip(frozen.TABLES, frozen.tables_of(line for _pid, _centre, line in
                                                               frozen_cases(freeze, centres))))
        self.options = {"number": number, **({"date": None} if dates_as_text else {})}

    def rows(self, table, names):
        return list(map(frozen.decoder(table, names, **self.options), self.tables[table]))



def deletions_since(since, *, centres=None):
    """The tombstones of deletions, or of restores, at or after `since` (None: every centre), oldest first."""
    found = DeletedRecord.objects.filter(Q(deleted_at__gte=since) | Q(restoration__restored_at__gte=since))
    if centres is not None:
        found = found.filter(centre__in=sorted(centres))
    return found.select_related("restoration").order_by("deleted_at", "pk")
