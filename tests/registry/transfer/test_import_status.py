"""An import obeys the record status like every writer (registry.services.status): a lock refuses
the file at its row, and a change of a verified record sends it back to complete, audited with the
file's name as the reason."""
import pytest

from registry import services
from registry.models import FollowUp, SystemicTherapy
from tests.registry.transfer.test_import_support import csv_bytes, run

pytestmark = pytest.mark.django_db
THERAPY = ["patient_id", "start_date", "end_date", "regimen", "regimen_other", "intent", "cycles", "best_response"]


def therapy_row(therapy, **changes):
    row = {"patient_id": therapy.patient_id, "start_date": therapy.start_date, "end_date": therapy.end_date,
           "regimen": therapy.regimen, "intent": therapy.intent}
    return {**row, **changes}


def move(user, record, *statuses):
    for status in statuses:
        record = services.record_status_set(user=user, record=record, status=status)
    return record


def test_an_import_changing_a_locked_record_is_refused_at_its_row(case, coordinator):
    therapy = move(coordinator, case.systemic_therapies.get(), "complete", "verified", "locked")
    report = run(csv_bytes([therapy_row(therapy, cycles=6)], THERAPY), user=coordinator,
                 filename="systemic_therapies.csv")
    assert not report.ok
    [problem] = report.errors
    assert problem.row == 2 and "is locked" in problem.message and "coordinator" in problem.message
    assert SystemicTherapy.objects.get(pk=therapy.pk).cycles is None


def test_an_import_adding_a_record_to_a_locked_patient_is_refused(case, coordinator):
    move(coordinator, case, "complete", "verified", "locked")
    event = ["patient_id", "event_date", "event", "recurrence_site", "cause_of_death"]
    report = run(csv_bytes([{"patient_id": case.pk, "event_date": "2016-06-01", "event": "contact"}], event),
                 user=coordinator, filename="follow_up.csv")
    assert not report.ok
    assert f"Patient {case.pk} is locked" in report.errors[0].message
    assert FollowUp.objects.filter(patient=case).count() == 1


def test_an_import_changing_a_verified_record_sends_it_back_to_complete(case, nurse, monitor):
    therapy = move(monitor, move(nurse, case.systemic_therapies.get(), "complete"), "verified")
    report = run(csv_bytes([therapy_row(therapy, cycles=6)], THERAPY), user=nurse, filename="systemic_therapies.csv")
    assert report.ok, report.errors
    stored = SystemicTherapy.objects.get(pk=therapy.pk)
    assert (stored.cycles, stored.status) == (6, "complete")
    latest = stored.history.first()
    assert (latest.status, latest.history_change_reason, latest.history_user) == ("complete", "import systemic_therapies.csv", nurse)
