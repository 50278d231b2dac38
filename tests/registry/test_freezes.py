"""Data freezes (registry.services.freezes): an unchangeable copy of the clinical tables at one
instant, its content hash over the canonical serialisation (registry.frozen), the rule for
verified records, what changed between two states, and erasure."""
import datetime
import hashlib
import io
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from registry import dictionary, frozen, selectors, services
from registry.models import FollowUp, Freeze, FrozenCase, Metastasectomy, Patient, SystemicTherapy
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.fixture
def registry(case, coordinator):
    """`case` at MUC (a primary, a PM, a therapy, a contact) and a patient at BER with a PM."""
    other = f.patient("BER", birth_year=1970, histology="SyS")
    services.record_save(user=coordinator, record=f.metastasectomy(other, max_lesion_diameter_mm=22.5,
                                                                   missing_codes={"hospital_stay_days": "UNK"}))
    return case, other


def independent_hash(freeze):
    """The content hash recomputed from the stored rows as registry/frozen.py's docstring defines
    it, without its code: header line, then each case's line in code-point order of the pseudonyms."""
    columns = {table: ["id", *[c.name for c in dictionary.columns(table)], "missing_codes", "status"]
               for table in dictionary.TABLES}
    columns["patients"] = columns["patients"][1:]
    header = json.dumps({"columns": columns, "format": 1}, separators=(",", ":"), sort_keys=True)
    lines = [data for _pid, data in sorted(FrozenCase.objects.filter(freeze=freeze).values_list("patient_id", "data"))]
    return hashlib.sha256("".join(line + "\n" for line in [header, *lines]).encode()).hexdigest()


def test_a_coordinator_freezes_every_record_of_every_centre_with_counts_versions_and_hash(registry, coordinator):
    case, other = registry
    version = selectors.data_version()
    freeze = services.freeze_create(user=coordinator, name="dfs-paper-2026")
    assert (freeze.name, freeze.rule, freeze.username, freeze.user) == ("dfs-paper-2026", "all", "coordinator",
                                                                         coordinator)
    assert freeze.counts == {
        "BER": {"patients": 1, "primary_tumours": 0, "metastasectomies": 1, "systemic_therapies": 0, "follow_up": 0},
        "MUC": {"patients": 1, "primary_tumours": 1, "metastasectomies": 1, "systemic_therapies": 1, "follow_up": 1}}
    assert freeze.data_version == version and freeze.dictionary_version == dictionary.version()
    assert freeze.content_hash == independent_hash(freeze)
    assert sorted(FrozenCase.objects.values_list("patient_id", "centre")) == [(other.pk, "BER"), (case.pk, "MUC")]


def test_a_frozen_case_holds_every_column_in_canonical_form(registry, coordinator):
    _case, other = registry
    freeze = services.freeze_create(user=coordinator, name="f1")
    tables = frozen.case_tables(FrozenCase.objects.get(freeze=freeze, patient_id=other.pk).data)
    pm = Metastasectomy.objects.get(patient=other)
    assert tables["patients"] == [[other.pk, "BER", "female", 1970, "SyS", "2015-03-01", False, 0, {},
                                   "in_progress"]]
    assert tables["metastasectomies"] == [[pm.pk, other.pk, "2015-04-01", "right", "vats", "wedge", 1, "22.5", None,
                                           "R0", None, "none", None, {"hospital_stay_days": "UNK"}, "in_progress"]]
    assert tables["primary_tumours"] == tables["systemic_therapies"] == tables["follow_up"] == []


def test_unchanged_data_freeze_to_the_same_hash_and_any_change_to_another(registry, coordinator, nurse):
    case, _other = registry
    first = services.freeze_create(user=coordinator, name="first")
    second = services.freeze_create(user=coordinator, name="second")
    assert second.content_hash == first.content_hash
    pm = Metastasectomy.objects.get(patient=case)
    pm.max_lesion_diameter_mm = 16
    services.record_save(user=nurse, record=pm)
    assert services.freeze_create(user=coordinator, name="third").content_hash != first.content_hash


def test_only_a_coordinator_or_the_system_may_freeze(registry, nurse, pi, monitor):
    for user in (nurse, pi, monitor):
        with pytest.raises(PermissionDenied):
            services.freeze_create(user=user, name="mine")
    assert not Freeze.objects.exists()


@pytest.mark.parametrize("name", ["", " ", "-starts-with-dash", "has space", "x" * 81, "live", "LIVE", "ä"])
def test_a_freeze_needs_a_well_formed_name_that_is_not_the_word_live(coordinator, name):
    with pytest.raises(ValidationError) as error:
        services.freeze_create(user=coordinator, name=name)
    assert "name" in error.value.message_dict


def test_a_freeze_name_is_taken_once(registry, coordinator):
    services.freeze_create(user=coordinator, name="v1.0_final")
    with pytest.raises(ValidationError, match="exists already"):
        services.freeze_create(user=coordinator, name="v1.0_final")
    with pytest.raises(ValidationError):
        services.freeze_create(user=coordinator, name="other", rule="some")
    assert Freeze.objects.count() == 1


def test_verified_only_keeps_verified_and_locked_records_of_verified_or_locked_patients(registry, coordinator):
    case, other = registry
    Patient.objects.filter(pk=case.pk).update(status="verified")
    Metastasectomy.objects.filter(patient=case).update(status="locked")
    SystemicTherapy.objects.filter(patient=case).update(status="verified")
    FollowUp.objects.filter(patient=case).update(status="complete")  # not verified: left out
    Metastasectomy.objects.filter(patient=other).update(status="verified")  # its patient is not: left out
    freeze = services.freeze_create(user=coordinator, name="verified", rule="verified")
    assert freeze.counts == {"MUC": {"patients": 1, "primary_tumours": 0, "metastasectomies": 1,
                                     "systemic_therapies": 1, "follow_up": 0}}
    assert list(FrozenCase.objects.values_list("patient_id", flat=True)) == [case.pk]


def test_the_frozen_rows_are_the_live_rows_of_that_instant_and_stay_so(registry, coordinator, nurse):
    case, _other = registry
    freeze = services.freeze_create(user=coordinator, name="now")
    live = selectors.LiveRows(Patient.objects.all())
    names = {table: list(frozen.columns(table)) for table in frozen.TABLES}
    before = {table: sorted(live.rows(table, columns), key=str) for table, columns in names.items()}
    frozen_rows = selectors.FrozenRows(freeze)
    assert {table: sorted(frozen_rows.rows(table, columns), key=str) for table, columns in names.items()} == before
    services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2017, 2, 1),
                                                        cause_of_death="sarcoma"))
    again = selectors.FrozenRows(selectors.freeze_named("now"))
    assert {table: sorted(again.rows(table, columns), key=str) for table, columns in names.items()} == before
    assert selectors.FrozenRows(freeze, centres=["BER"]).rows("patients", ["centre"]) == [("BER",)]


def test_the_diff_names_per_centre_and_table_what_was_added_changed_with_its_columns_and_removed(
        registry, coordinator, nurse):
    case, other = registry
    old = services.freeze_create(user=coordinator, name="old")
    pm = Metastasectomy.objects.get(patient=case)
    pm.max_lesion_diameter_mm, pm.lesions_resected = 35, 2
    services.record_save(user=nurse, record=pm)
    therapy = SystemicTherapy.objects.get(patient=case)
    services.record_delete(user=nurse, record=therapy, reason="entered twice")
    death = services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2017, 2, 1)))
    Patient.objects.filter(pk=other.pk).update(status="complete")  # a move in the data-management cycle
    new = f.patient("BER")
    expected = [
        {"centre": "BER", "table": "patients", "change": "changed", "patient_id": other.pk, "record_id": None,
         "fields": ["status"]},
        {"centre": "BER", "table": "patients", "change": "added", "patient_id": new.pk, "record_id": None,
         "fields": []},
        {"centre": "MUC", "table": "metastasectomies", "change": "changed", "patient_id": case.pk,
         "record_id": pm.pk, "fields": ["lesions_resected", "max_lesion_diameter_mm"]},
        {"centre": "MUC", "table": "systemic_therapies", "change": "removed", "patient_id": case.pk,
         "record_id": therapy.pk, "fields": []},
        {"centre": "MUC", "table": "follow_up", "change": "added", "patient_id": case.pk, "record_id": death.pk,
         "fields": []},
    ]
    order = {pid: i for i, pid in enumerate(sorted([other.pk, new.pk, case.pk]))}
    expected.sort(key=lambda row: order[row["patient_id"]])
    assert selectors.freeze_diff(old) == expected  # against the live registry
    assert selectors.freeze_diff(old, services.freeze_create(user=coordinator, name="new")) == expected
    assert selectors.freeze_diff(old, centres=["MUC"]) == [row for row in expected if row["centre"] == "MUC"]
    assert frozen.diff_summary(expected)[0] == {"centre": "BER", "table": "patients", "added": 1, "changed": 1,
                                                "removed": 0}
    assert selectors.freeze_diff(old, old) == []


def test_a_legal_erasure_takes_the_patients_frozen_case_along_and_the_freeze_says_so(registry, coordinator):
    case, other = registry
    freeze = services.freeze_create(user=coordinator, name="before-erasure")
    version = selectors.freeze_version(freeze)
    assert version == freeze.content_hash[:12]
    tombstone = services.patient_erase(user=coordinator, patient_id=case.pk, reference="DPO-1")
    assert list(FrozenCase.objects.values_list("patient_id", flat=True)) == [other.pk]
    assert tombstone.counts[FrozenCase._meta.db_table] == 1
    freeze.refresh_from_db()
    assert selectors.freeze_version(freeze) != version  # no cached result answers for the erased patient


def test_freeze_create_command_freezes_as_a_user_and_says_what(registry, coordinator):
    out = io.StringIO()
    call_command("freeze_create", "cmd-freeze", "--verified-only", "--user", "coordinator", stdout=out)
    freeze = Freeze.objects.get(name="cmd-freeze")
    assert (freeze.rule, freeze.username) == ("verified", "coordinator")
    assert freeze.content_hash in out.getvalue() and "no patients" in out.getvalue()
    call_command("freeze_create", "system-freeze", stdout=out)
    assert Freeze.objects.get(name="system-freeze").username == ""
    with pytest.raises(CommandError, match="exists already"):
        call_command("freeze_create", "cmd-freeze", stdout=out)
    with pytest.raises(CommandError, match="Only coordinators"):
        call_command("freeze_create", "nurse-freeze", "--user", "nurse", stdout=out)


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the append-only triggers exist on PostgreSQL only (SQLite has no such triggers)")
def test_a_freeze_refuses_update_and_delete_on_postgresql_by_sql_and_by_the_orm(registry, coordinator):
    freeze = services.freeze_create(user=coordinator, name="kept")
    frozen_case = FrozenCase.objects.filter(freeze=freeze).first()
    statements = [
        lambda: Freeze.objects.filter(pk=freeze.pk).update(content_hash="0" * 64),
        lambda: FrozenCase.objects.filter(pk=frozen_case.pk).update(data="[]"),
        lambda: FrozenCase.objects.filter(freeze=freeze).delete(),
        sql(f"UPDATE {Freeze._meta.db_table} SET name = 'renamed' WHERE id = %s", freeze.pk),
        sql(f"DELETE FROM {Freeze._meta.db_table} WHERE id = %s", freeze.pk),
        sql(f"DELETE FROM {FrozenCase._meta.db_table} WHERE id = %s", frozen_case.pk),
    ]
    for statement in statements:
        with pytest.raises(DatabaseError, match="pgtrigger: Cannot (update|delete) rows"), transaction.atomic():
            statement()
    with pytest.raises(ProtectedError), transaction.atomic():  # the ORM does not even try while cases exist
        Freeze.objects.filter(pk=freeze.pk).delete()
    freeze.refresh_from_db()
    assert (freeze.name, freeze.content_hash) == ("kept", independent_hash(freeze))
    assert FrozenCase.objects.filter(freeze=freeze).count() == 2


def sql(statement, *params):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
    return run


def test_the_freezes_are_sealed_into_the_audit_chain_which_catches_a_changed_frozen_case(registry, coordinator):
    from registry.services.seals import tables_seal
    from tests.audit import behind_the_back, verify, verify_fails

    freeze = services.freeze_create(user=coordinator, name="sealed")
    tables_seal()  # what the commit does outside a test's transaction
    assert "registry_frozencase" in verify()
    frozen_case = FrozenCase.objects.filter(freeze=freeze).first()
    behind_the_back(FrozenCase, "UPDATE {table} SET data = %s WHERE id = %s", "[]", frozen_case.pk)
    assert "registry_frozencase" in verify_fails()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_save_committed_while_the_registry_is_frozen_is_in_neither_the_freeze_nor_its_data_version(monkeypatch):
    """The freeze reads one REPEATABLE READ snapshot: a save landing between its queries is not half in it."""
    import threading

    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    f.patient("MUC")
    before = selectors.data_version()
    read_cases = selectors.canonical_cases

    def cases_after_a_concurrent_save(*args, **kwargs):
        def save():  # another connection, as another user's request would be
            services.patient_create(user=coordinator, centre=f.centre("MUC"), **f.patient_values())
            connection.close()
        worker = threading.Thread(target=save)
        worker.start()
        worker.join()
        return read_cases(*args, **kwargs)

    monkeypatch.setattr(selectors, "canonical_cases", cases_after_a_concurrent_save)
    freeze = services.freeze_create(user=coordinator, name="during")
    monkeypatch.undo()
    assert freeze.data_version == before and freeze.table_counts()["patients"] == 1
    assert Patient.objects.count() == 2
    later = services.freeze_create(user=coordinator, name="after")
    assert later.table_counts()["patients"] == 2 and later.data_version != before
