"""Faults, on PostgreSQL: when something breaks in the middle, the user is told, and nothing
half-done is left behind. Each test breaks something for real (a killed database connection, two
editors at the same moment, a killed gunicorn worker) instead of mocking the failure.

1. An import whose database connection is killed midway. A real workbook of 2,200 new patients
   (and changes to 40 stored ones) is uploaded; in the middle of the last COPY (follow_up, after
   every other table has been written in the import's transaction) a second connection calls
   pg_terminate_backend() on the importing backend. The upload page says the import failed and
   that nothing is half-stored (503, not a bare 500); read through fresh connections, every
   registry table and every audit (historical) table is exactly as before and no ImportRun claims
   the import; uploading the same file again then imports it.

2. Two editors save the same record at the same moment, on the web and on the API. Both load the
   record (form with version 1, ETag "1"); a third connection holds the patient's row lock while
   both saves are sent from two threads (two real database connections), so both have passed
   their checks and wait for the lock together. When it is released, exactly one save succeeds;
   the other is refused (web: the form says someone else saved the record; API: 412) and the
   stored record is exactly the winner's, version 2. The single-connection versions of these
   checks are tests/registry/test_audit.py::test_stale_save_is_refused_and_names_the_changed_column,
   tests/registry/web/test_web_entry.py::test_stale_edit_is_refused_shows_the_changes_and_overwrites_nothing,
   tests/registry/api/test_api.py::test_a_stale_if_match_is_a_412_and_changes_nothing and
   ::test_a_concurrent_save_between_read_and_write_is_a_412 (the race mocked).

3. A gunicorn worker killed during an export. The registry runs under gunicorn (one worker) on
   the test database, holding 12,000 synthetic patients (the xlsx export is ~4.5 MB, more than
   the kernel buffers of a loopback connection hold). The worker is SIGKILLed (a) while it builds
   the export (inside the export's database snapshot): the client gets no response at all; and
   (b) while it sends it (blocked on a full socket, the client not reading): the response carries
   Content-Length, so the client detects the truncated body (ChunkedEncodingError) instead of
   taking it for a complete file. The master's new worker then serves a complete, valid zip, and
   no temporary file is left in the server's TMPDIR, not even when the worker is killed while
   pyreadstat writes an SPSS table (it writes to an unnamed temporary file).
"""
import concurrent.futures
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from registry import synthetic
from registry.models import ExportLog, FollowUp, ImportRun, Job, Patient
from registry.services import bulk as writing
from tests import factories as f
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401 (fresh_throttles is autouse)
from tests.registry.transfer.test_import_support import (
    centres,
    csv_bytes,
    new_cohort,
    new_patients,
    pseudonymised,
    run,
    sheet_columns,
    workbook_bytes,
    zip_bytes,
)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.django_db(transaction=True),  # killed connections and other processes need committed data
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="fault tests kill PostgreSQL backends and run gunicorn on the PostgreSQL test "
                              "database; set DATABASE_URL=postgres://... to run them"),
]


# --- database helpers ---------------------------------------------------------------------------

def database_url(name=None):
    db = connection.settings_dict
    return (f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{name or db['NAME']}")


def other_connection(**options):
    """A second connection to the test database, independent of Django's."""
    return psycopg.connect(database_url(), **options)


def registry_tables():
    """Every registry table (clinical, audit/historical, ImportRun, ExportLog, ...) but the job
    queue's, read through a fresh connection: {table: sorted rows}."""
    with other_connection() as db:
        tables = [row[0] for row in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'registry%' "
            "AND tablename <> 'registry_job' ORDER BY tablename")]
        return {table: sorted(db.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def terminate_backend(pid):
    """From a second connection: what the backend is doing, then pg_terminate_backend() and wait
    until it is gone."""
    with other_connection(autocommit=True) as db:
        doing = db.execute("SELECT state, query, backend_xid IS NOT NULL AS wrote FROM pg_stat_activity "
                           "WHERE pid = %s", [pid]).fetchone()
        assert db.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        deadline = time.monotonic() + 10
        while db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still alive 10 s after pg_terminate_backend"
            time.sleep(0.01)
    return doing


def wait_for(condition, what, timeout=15.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- 1. an import whose connection is killed midway --------------------------------------------

def kill_during_copy(table, killed):
    """A replacement for writing._copy that, in the COPY into `table`, sends the first batch of
    rows, then has a second connection terminate this backend, then goes on feeding the COPY."""
    original = writing._copy

    def copy(copy_table, fields, constants, batches, keep=None):
        if copy_table == table and not killed:
            pid = connection.connection.info.backend_pid

            def batches_then_kill(batches=batches):
                for number, lines in enumerate(batches):
                    if number == 1:  # batch 0 has been written into the running COPY
                        killed["state"], killed["query"], killed["wrote"] = terminate_backend(pid)
                    yield lines
            return original(copy_table, fields, constants, batches_then_kill(), keep)
        return original(copy_table, fields, constants, batches, keep)
    return copy


def upload(client, data, name):
    """The page of the import job the upload became (it runs at once: no worker here)."""
    response = client.post(reverse("import_upload"), {"file": SimpleUploadedFile(name, data), "table": ""})
    assert response.status_code == 302, response.content[:500]
    return client.get(response.url)


def test_an_import_whose_connection_is_killed_midway_leaves_nothing_and_says_so(client, monkeypatch):
    centres()
    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    earlier = new_cohort(40, seed=21)
    report = run(workbook_bytes(earlier), filename="earlier.xlsx")
    assert report.written  # stored rows, audit rows, an ImportRun
    earlier = pseudonymised(earlier, report)  # from now on named by the pseudonyms issued
    tables = new_cohort(2200, seed=23)
    tables["patients"] += [dict(row, ecog=1 if row["ecog"] != 1 else 2) for row in earlier["patients"]]
    data = workbook_bytes(tables)
    assert len(tables["follow_up"]) > 2 * writing.BATCH  # the COPY is killed between its batches
    client.force_login(coordinator)  # before the snapshot: the sign-in's log row gets its seal
    before = registry_tables()
    assert len(before["registry_patient"]) == 40 and len(before["registry_importrun"]) == 1

    killed = {}
    monkeypatch.setattr(writing, "_copy", kill_during_copy(FollowUp._meta.db_table, killed))
    client.raise_request_exception = False
    response = upload(client, data, "centres.xlsx")

    # The backend was killed in the middle of writing: inside the COPY, its transaction holding rows.
    assert killed["state"] == "active" and killed["query"].startswith('COPY "registry_followup"'), killed
    assert killed["wrote"]
    # What the coordinator sees: the import failed, nothing is half-stored, upload again.
    page = response.content.decode()
    assert response.context["job"].state == "failed", page[:500]
    assert "The database failed during the job" in page and "Submit it again" in page
    assert "Imported" not in page
    # Fresh connections: every registry and audit table exactly as before, no ImportRun for the file.
    connection.close()
    assert registry_tables() == before
    assert ImportRun.objects.count() == 1 and Patient.objects.count() == 40

    # Nothing is left locked or half-done: the same file imports as a whole.
    monkeypatch.undo()
    response = upload(client, data, "centres.xlsx")
    assert response.status_code == 200 and "Imported" in response.content.decode()
    assert Patient.objects.count() == 2240
    assert FollowUp.objects.count() == len(tables["follow_up"]) + len(earlier["follow_up"])
    assert set(Patient.objects.filter(pk__in=[r["patient_id"] for r in earlier["patients"]])
               .values_list("version", flat=True)) == {2}
    assert ImportRun.objects.count() == 2


# --- 2. two editors save the same record at the same moment --------------------------------------

def save_together(patient_id, saves):
    """Run the `saves` (callables) in threads, each on its own database connection, while a third
    connection holds the patient's row lock; release it once every save waits for it."""
    results = [None] * len(saves)
    with other_connection() as lock, other_connection(autocommit=True) as monitor:
        lock.execute("SELECT 1 FROM registry_patient WHERE patient_id = %s FOR UPDATE", [patient_id])

        def waiting():  # (pg_stat_activity is a snapshot per transaction: asked outside the lock's)
            return monitor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND wait_event_type = 'Lock'").fetchone()[0] == len(saves)

        def call(index):
            try:
                results[index] = saves[index]()
            finally:
                connections.close_all()  # this thread's connection
        threads = [threading.Thread(target=call, args=(index,)) for index in range(len(saves))]
        for thread in threads:
            thread.start()
        try:
            wait_for(waiting, "both saves to wait for the patient's lock")
        finally:
            lock.rollback()
            for thread in threads:
                thread.join(30)
    assert all(result is not None for result in results), "a save raised (see the thread's traceback)"
    return results


def form_values(response):
    """The values a browser would post back from the rendered form (as in tests/registry/web/test_web_entry.py)."""
    data = {}
    for field in response.context["form"]:
        value = "" if field.value() is None else field.value()
        value = value if field.field.widget.is_hidden else field.field.widget.format_value(value)
        data[field.html_name] = "" if value is None else value
    return data


def test_two_editors_saving_one_record_at_once_on_the_web_the_second_is_refused(case, nurse):
    pm = case.metastasectomies.get()
    url = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    editors = {"margin": Client(), "hospital_stay_days": Client()}
    editors["margin"].force_login(nurse)
    editors["hospital_stay_days"].force_login(f.user("nurse2", memberships=[("MUC", "nurse")]))
    posts = {}
    for column, editor in editors.items():
        values = form_values(editor.get(url))
        assert values["version"] == 1 and values["hospital_stay_days"] == ""
        posts[column] = {**values, column: {"margin": "R1", "hospital_stay_days": "9"}[column]}

    results = save_together(case.pk, [lambda c=column, e=editor: e.post(url, posts[c])
                                      for column, editor in editors.items()])

    outcome = dict(zip(editors, results))
    assert sorted(r.status_code for r in results) == [200, 302]
    winner = next(column for column, response in outcome.items() if response.status_code == 302)
    loser = next(column for column in outcome if column != winner)
    assert "saved this record at" in outcome[loser].content.decode()  # who and when: the stale-save merge
    pm.refresh_from_db()
    stored = {"margin": pm.margin, "hospital_stay_days": pm.hospital_stay_days}
    assert stored == {"margin": "R1" if winner == "margin" else "R0",
                      "hospital_stay_days": 9 if winner == "hospital_stay_days" else None}
    assert pm.version == 2 and pm.history.filter(history_type="~").count() == 1


def test_two_api_clients_saving_one_record_at_once_the_second_gets_412(case, nurse):
    pm = case.metastasectomies.get()
    url = f"/api/v1/metastasectomies/{pm.pk}/"
    clients = {"margin": client_for(nurse), "hospital_stay_days": client_for(f.user("nurse2", memberships=[
        ("MUC", "nurse")]))}
    changes = {"margin": {"margin": "R1"}, "hospital_stay_days": {"hospital_stay_days": 9}}
    etags = {column: api.get(url)["ETag"] for column, api in clients.items()}
    assert set(etags.values()) == {'"1"'}

    results = save_together(case.pk, [
        lambda c=column, api=api: api.patch(url, changes[c], format="json", HTTP_IF_MATCH=etags[c])
        for column, api in clients.items()])

    outcome = dict(zip(clients, results))
    assert sorted(r.status_code for r in results) == [200, 412]
    winner = next(column for column, response in outcome.items() if response.status_code == 200)
    loser = next(column for column in outcome if column != winner)
    assert outcome[winner]["ETag"] == '"2"'
    assert outcome[loser].json()["current_version"] == 2 and outcome[loser]["ETag"] == '"2"'
    pm.refresh_from_db()
    assert pm.version == 2
    assert (pm.margin, pm.hospital_stay_days) == (("R1", None) if winner == "margin" else ("R0", 9))
    # The refused client reads the record again and resends its change on top of the winner's.
    api = clients[loser]
    response = api.patch(url, changes[loser], format="json", HTTP_IF_MATCH=api.get(url)["ETag"])
    assert response.status_code == 200 and response["ETag"] == '"3"'
    pm.refresh_from_db()
    assert (pm.margin, pm.hospital_stay_days, pm.version) == ("R1", 9, 3)


# --- 3. a gunicorn worker killed during an export ------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid):
    """Live child processes of `pid` (from /proc: no psutil, no pgrep)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


class Gunicorn:
    """`gunicorn registry.wsgi:application` with one worker on a free loopback port, on the test
    database, with its own TMPDIR."""

    def __init__(self, tmp_path):
        self.tmpdir = tmp_path / "server-tmp"
        self.tmpdir.mkdir()
        self.log = tmp_path / "gunicorn.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        # The coordinator signs in with a password only (two factors are tested elsewhere).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET_KEY": settings.SECRET_KEY,
               "EXPORT_SHIFT_KEY": settings.EXPORT_SHIFT_KEY, "TWO_FACTOR_REQUIRED_ROLES": "",
               "DATABASE_URL": database_url(), "ALLOWED_HOSTS": "127.0.0.1", "SECURE_COOKIES": "0",
               "TMPDIR": str(self.tmpdir), "LOG_LEVEL": "WARNING"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "registry.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", "1", "--timeout", "60", "--graceful-timeout", "2", "--no-control-socket"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self):
        def answers():
            assert self.process.poll() is None, "gunicorn exited:\n" + self.log.read_text()
            try:
                return requests.get(f"{self.url}/accounts/login/", timeout=30).status_code == 200
            except requests.RequestException:
                return False
        wait_for(answers, "gunicorn to answer", timeout=30, interval=0.05)

    def worker(self, not_pid=None):
        """The pid of the one worker (a new one when `not_pid` is the killed one)."""
        def one():
            pids = [pid for pid in children(self.process.pid) if pid != not_pid]
            return pids[0] if len(pids) == 1 else None
        return wait_for(one, "gunicorn's worker", interval=0.02)

    def stop(self):
        """SIGTERM to the master; whatever is still running 5 s later (master or worker) is killed."""
        if self.process is None:
            return
        workers = children(self.process.pid)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid in workers:  # a worker left running (its master killed), recognised by its command line
            try:
                if f"127.0.0.1:{self.port}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


@pytest.fixture
def server(transactional_db, tmp_path):
    gunicorn = Gunicorn(tmp_path)
    try:
        yield gunicorn
    finally:
        gunicorn.stop()


class SmallReceiveBuffer(HTTPAdapter):
    """A client socket with a small receive buffer: the server's sends block sooner."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["socket_options"] = [*HTTPConnection.default_socket_options,
                                    (socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
        return super().init_poolmanager(*args, **kwargs)


def load_patients(patients, seed):
    """A synthetic cohort written through the import (COPY): the quickest real way to a big registry."""
    centres()
    tables = new_patients(synthetic.generate_cohort(patients=patients, centres=2, seed=seed))
    report = run(zip_bytes({f"{t}.csv": csv_bytes(rows, sheet_columns(t, rows)) for t, rows in tables.items()}),
                 filename="cohort.zip")
    assert report.written, report.errors[:5]


def coordinator_session(server):
    """A requests session of a signed-in coordinator (session made here, valid there: same key)."""
    browser = Client()
    browser.force_login(f.user("coordinator", memberships=[("MUC", "coordinator")]))
    session = requests.Session()
    session.mount("http://", SmallReceiveBuffer())
    session.cookies.set("sessionid", browser.cookies["sessionid"].value, domain="127.0.0.1", path="/")
    page = session.get(f"{server.url}/transfer/export/", timeout=30)
    assert page.status_code == 200 and page.url.endswith("/transfer/export/")  # signed in, not sent to sign in
    return session


def export(session, server, file_format, **options):
    """Submit an export job and download its archive. This server has no job worker, so the job runs
    in the web worker, within the request that submits it."""
    submitted = session.post(f"{server.url}/transfer/export/", timeout=60, allow_redirects=False, headers={
        "X-CSRFToken": session.cookies["csrftoken"]}, data={"centre": "", "file_format": file_format,
                                                            "deidentify": "none"})
    assert submitted.status_code == 302, submitted.text[:500]
    return session.get(f"{server.url}{submitted.headers['Location']}file", timeout=60, **options)


def in_export_snapshot():
    """True while a backend other than this process's reads registry tables inside a transaction
    (the export's repeatable-read snapshot): the worker is building the archive."""
    with other_connection(autocommit=True) as db:
        return db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND xact_start < query_start AND query LIKE %s", ["%registry_%"]).fetchone()[0] > 0


def kernel_queued(port):
    """Bytes of the connection to the server's `port` that sit in the kernel (/proc/net/tcp): the
    server's send queue plus the client's receive queue."""
    queued = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state, queues = line.split()[1:5]
        if state != "01":  # established
            continue
        send, receive = (int(value, 16) for value in queues.split(":"))
        if int(local.rsplit(":", 1)[1], 16) == port:
            queued += send
        elif int(remote.rsplit(":", 1)[1], 16) == port:
            queued += receive
    return queued


def settled(measure, interval=0.1):
    """A measure once it stops changing (and is not 0)."""
    last = [None]

    def check():
        value = measure()
        done = value and value == last[0]
        last[0] = value
        return value if done else None
    return wait_for(check, "the value to settle", timeout=10, interval=interval)


PATIENTS = 12000


def test_a_worker_killed_during_an_export_never_serves_a_truncated_file(server):
    server.start()  # boots while the registry is loaded
    load_patients(PATIENTS, seed=33)
    server.wait_ready()
    session = coordinator_session(server)

    # (a) Killed while building: the client gets no response at all, and no export is logged.
    worker = server.worker()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(export, session, server, "xlsx")
        wait_for(in_export_snapshot, "the worker to build the export")
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(requests.ConnectionError):
            pending.result()
    assert not ExportLog.objects.exists()
    assert not Job.objects.filter(state=Job.DONE).exists()

    # (b) Killed while sending: Content-Length tells the client the body is cut short.
    worker = server.worker(not_pid=worker)
    response = export(session, server, "xlsx", stream=True)
    try:
        assert response.status_code == 200
        length = int(response.headers["Content-Length"])
        in_kernel = settled(lambda: kernel_queued(server.port))  # the worker is blocked on the full socket
        assert in_kernel < length, f"the worker had already handed all {length} bytes to the kernel"
        os.kill(worker, signal.SIGKILL)
        received = 0
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(2**16):
                received += len(chunk)
        assert received < length
    finally:
        response.close()

    # The master's new worker serves the whole archive.
    server.worker(not_pid=worker)
    response = export(session, server, "xlsx")
    assert response.status_code == 200 and int(response.headers["Content-Length"]) == len(response.content)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert {"registry.xlsx", "analysis_frame.xlsx", "README.txt"} <= set(archive.namelist())
    assert f"    patients  ({PATIENTS})" in archive.read("README.txt").decode()
    assert list(server.tmpdir.iterdir()) == []  # the spooled archive left no file behind


def open_temp_files(pid, directory):
    """The files under `directory` that process `pid` holds open (unnamed ones show as deleted)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def test_a_worker_killed_while_writing_a_stats_file_leaves_no_temporary_file(server):
    """pyreadstat writes each SPSS table to a path: an unnamed temporary file's /proc/self/fd path
    (registry/transfer/exporting/writers.py::_add_via_temp), so the kill leaves nothing on disk."""
    server.start()
    load_patients(800, seed=32)
    server.wait_ready()
    session = coordinator_session(server)
    worker = server.worker()
    before = set(open_temp_files(worker, server.tmpdir))  # gunicorn's own heartbeat file is one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(export, session, server, "sav")
        held = wait_for(lambda: set(open_temp_files(worker, server.tmpdir)) - before,
                        "a temporary file of the export", timeout=30, interval=0.0005)
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(requests.ConnectionError):
            pending.result()
    assert all(target.endswith("(deleted)") for target in held), held  # never visible by name
    assert list(server.tmpdir.iterdir()) == []
