"""export_registry --since: a change feed of the records created or changed since a moment, with the
deletions and restores since then."""
import csv
import io
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from registry import services

pytestmark = pytest.mark.django_db


def export_since(tmp_path, since):
    path = tmp_path / "feed.zip"
    call_command("export_registry", "--out", str(path), "--since", since, stdout=io.StringIO())
    archive = zipfile.ZipFile(path)
    return archive, {name: list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
                     for name in archive.namelist() if name.endswith(".csv") and name != "data_dictionary.csv"}


def test_the_change_feed_holds_what_changed_and_what_was_deleted_since(case, nurse, tmp_path):
    start = timezone.now()
    pm = case.metastasectomies.get()
    pm.hospital_stay_days = 12
    services.record_save(user=nurse, record=pm)
    event = case.follow_ups.get()
    services.record_delete(user=nurse, record=event, reason="entered twice")
    archive, tables = export_since(tmp_path, start.isoformat())
    assert [row["hospital_stay_days"] for row in tables["metastasectomies.csv"]] == ["12"]
    assert tables["patients.csv"] == [] and tables["follow_up.csv"] == []
    assert [(row["table"], row["record_id"]) for row in tables["deletions.csv"]] == [("follow_up", str(event.pk))]
    assert "analysis_frame.csv" not in archive.namelist() and "odm.xml" not in archive.namelist()


def test_nothing_changed_since_gives_empty_tables(case, tmp_path):
    _archive, tables = export_since(tmp_path, timezone.now().isoformat())
    assert all(rows == [] for rows in tables.values())


def test_a_malformed_since_is_refused_naming_the_formats(tmp_path):
    with pytest.raises(CommandError, match="ISO date"):
        export_since(tmp_path, "yesterday")
