"""Load test: the registry under gunicorn on PostgreSQL, driven by concurrent simulated users.

    .venv/bin/python bench/load.py [--users 50] [--seconds 60] [--patients 1000] [--workers 3]

Creates a scratch PostgreSQL database `registry_load_<pid>` (on --server-url, default 127.0.0.1:5432,
user postgres), migrates it, loads a synthetic cohort (registry/synthetic/, seed 1, 4 centres) and
seeds an account per simulated user (4 centres) and a coordinator, with API tokens. It then
serves the registry with gunicorn on a free loopback port (DEBUG off, SECRET_KEY set, plain HTTP:
SECURE_COOKIES=0) and drives it over real HTTP, one requests.Session per user, one thread each:

- nurses (3 users in 5) sign in through the login form (CSRF), open their centre's patient list,
  create a patient through the web form, add a primary tumour, a metastasectomy and a follow-up
  through the record forms, open the patient page after each save, and now and then add a
  follow-up to a patient another nurse of the centre is entering (concurrent writes to one case);
- PIs (1 in 5) sign in, open the survival dashboard /analysis/ (a new cut-off one time in three)
  and poll /analysis/version as the open page does;
- API clients (1 in 5) list /api/v1/ tables with token authentication, following `next`.

With --import-patients N (needs --redis-url, the job queue's broker), a Celery worker runs beside
gunicorn, as docker-compose does, and when the clock starts a coordinator uploads a synthetic
workbook of N new patients of a centre of their own (IMP) through the upload page; the import runs
as a job on the worker while the users go on, and the coordinator polls the job's page until it
ends. The report then splits the data-entry pages' latencies into those during the import job and
those after it.

Users sign in one after another, 0.2 s apart, and start working, pausing --think seconds on average
(uniform 0.5x-1.5x) before each request; once the last one has signed in, all of them are measured
for --seconds (the sign-ins, during this ramp-up, are reported apart).
Each nurse records, client side, every record it was told was saved (the patient from the
redirect's Location, records by patient and date); at the end the database must hold each of them
exactly once and nothing else new.

Printed: requests/s; per page n, p50/p95/p99 and the same page's p50 in an unloaded single-user
pass run first (the baseline, so ratios hold on a noisy machine); errors by status; 5xx; lost and
duplicated records; where the CPU went (gunicorn, this client, the rest of the machine) and the load
average. /analysis/version, polled by PIs, is the smallest signed-in page: the floor under load.
Targets: no 5xx, no lost or duplicated record, p95 <= 500 ms for the data-entry pages. Exits 1 on any
5xx, transport error, unexpected response, lost or duplicated record. Gunicorn is stopped and the
database dropped at the end (kept with --keep; the server log is kept when the run fails).
"""
import argparse
import ctypes
import datetime
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import requests
from scratch import copy_cohort, scratch_database, setup_django

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-test-password-2025"
DATA_ENTRY = ("patient list", "patient new GET", "patient new POST", "record add GET", "record add POST",
              "patient page")
IMPORT_CENTRE = "IMP"  # the imported workbook's patients; the users' checks leave them out
RECORD_KEYS = {"primary-tumour": "diagnosis_date", "metastasectomies": "surgery_date", "follow-up": "event_date"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="concurrent simulated users (default 50)")
    parser.add_argument("--seconds", type=float, default=60, help="duration of the load (default 60)")
    parser.add_argument("--patients", type=int, default=1000, help="synthetic cohort loaded first (default 1000)")
    parser.add_argument("--think", type=float, default=3.0, help="mean pause before each request, s (default 3)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3, as the Dockerfile)")
    parser.add_argument("--threads", type=int, default=4,
                        help="threads per worker (default 4, gthread, as the Dockerfile; 1: sync workers)")
    parser.add_argument("--baseline-rounds", type=int, default=3, help="unloaded single-user rounds (default 3)")
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server (maintenance database) on which the scratch database is created")
    parser.add_argument("--database-url", help="use this existing database instead of a scratch one (kept)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                        help="cache shared by the workers (default: $REDIS_URL, else each worker's local memory)")
    parser.add_argument("--import-patients", type=int, default=0,
                        help="a coordinator imports a workbook of this many new patients as a job during the run "
                             "(needs --redis-url; default 0: no import)")
    parser.add_argument("--job-workers", type=int, default=2, help="job worker processes (default 2, as docker-compose)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and the server log")
    return parser.parse_args()


# --- database: scratch copy, cohort, accounts, final check ---------------------------------------

def load_cohort(patients):
    """COPY a synthetic cohort into the clinical tables (no audit rows); a reused database keeps its own."""
    from registry.models import Centre, Patient
    from registry.synthetic import CENTRE_CODES, generate_cohort

    for code in (*CENTRE_CODES[:4], IMPORT_CENTRE):  # the accounts belong to these, whatever the cohort's size
        Centre.objects.get_or_create(code=code, defaults={"name": f"Synthetic centre {code}"})
    if not Patient.objects.exists():
        copy_cohort(generate_cohort(patients=patients, centres=CENTRE_CODES[:4], seed=1))


def seed_accounts(users):
    """One account per simulated user (password hashed once); returns [(role, username, centre, token)]."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from registry.api.models import ApiToken
    from registry.models import Membership
    from registry.synthetic import CENTRE_CODES

    centres = CENTRE_CODES[:4]
    run, hashed, User = os.getpid(), make_password(PASSWORD), get_user_model()
    coordinator = User.objects.create(username=f"load{run}-coordinator", password=hashed)
    Membership.objects.create(user=coordinator, centre_id=centres[0], role="coordinator")
    accounts = []
    for number in range(users):
        role = ("nurse", "nurse", "pi", "nurse", "api")[number % 5]
        centre = centres[number % len(centres)]
        user = User.objects.create(username=f"load{run}-{role}{number}", password=hashed)
        Membership.objects.create(user=user, centre_id=centre, role="pi" if role == "api" else role)
        token = None
        if role == "api":  # half the clients read every centre (coordinator), half one centre (PI)
            owner = coordinator if number % 2 else user
            token = ApiToken.issue(user=owner, kind="api", name=f"load client {number}")[1]
        accounts.append((role, user.username, centre, token))
    return accounts


def snapshot():
    from registry.models import FollowUp, Metastasectomy, PrimaryTumour

    return {"patients": set(users_patients().values_list("pk", flat=True)),
            **{model: users_records(model).count() for model in (PrimaryTumour, Metastasectomy, FollowUp)}}


def users_patients():
    """The patients of the simulated users' centres (not those of the import)."""
    from registry.models import Patient

    return Patient.objects.exclude(centre_id=IMPORT_CENTRE)


def users_records(model):
    return model.objects.exclude(patient__centre_id=IMPORT_CENTRE)


def check_records(before, created):
    """(lost, duplicated or unexpected) comparing the database with what the clients were told was saved."""
    from registry.models import FollowUp, Metastasectomy, PrimaryTumour

    now = set(users_patients().values_list("pk", flat=True))
    told = {pid for kind, pid, _ in created if kind == "patient"}
    lost, extra = len(told - now), len(now - before["patients"] - told)
    for kind, model in (("primary-tumour", PrimaryTumour), ("metastasectomies", Metastasectomy),
                        ("follow-up", FollowUp)):
        expected = Counter((pid, day) for k, pid, day in created if k == kind)
        found = Counter(model.objects.filter(patient_id__in={pid for pid, _ in expected})
                        .values_list("patient_id", RECORD_KEYS[kind]))
        lost += sum((expected - found).values())
        extra += sum((found - expected).values())
        extra += max(0, users_records(model).count() - before[model] - sum(found.values()))  # elsewhere
    return lost, extra


# --- the server ------------------------------------------------------------------------------------

def terminate_with_parent():
    """Linux: the server gets SIGTERM if this script dies without stopping it (killed, timed out)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_gunicorn(args, database_url, workdir):
    """gunicorn on 127.0.0.1, port chosen by the kernel; returns (process, base URL, log path)."""
    # A settings module of the run's own: its cache keys get a prefix, so a shared Redis is not mixed up.
    (workdir / "load_settings.py").write_text(
        f"from registry.settings import *  # noqa\nCACHES['default']['KEY_PREFIX'] = {workdir.name!r}\n")
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "load_settings", "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1", "SECURE_COOKIES": "0", "SECURE_SSL_REDIRECT": "0",
           "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}"}
    env.setdefault("SECRET_KEY", "load-test-only-secret-key")
    env.setdefault("TWO_FACTOR_REQUIRED_ROLES", "")  # the simulated users sign in with a password only
    env.pop("REDIS_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        env["JOB_QUEUE"] = workdir.name  # jobs of this run only, whatever else uses the Redis
    log = workdir / "gunicorn.log"
    command = [str(Path(sys.executable).parent / "gunicorn"), "registry.wsgi:application",
               "--bind", "127.0.0.1:0", "--workers", str(args.workers), "--threads", str(args.threads),
               "--keep-alive", "75", "--timeout", "120", "--no-control-socket"]
    with log.open("wb") as output:  # gunicorn's own log and the application's (tracebacks of 500s)
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=terminate_with_parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if found := re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text()):
            try:  # the workers answer once they have imported the application
                if requests.get(found.group(1) + "/accounts/login/", timeout=5).status_code == 200:
                    return process, found.group(1), log
            except requests.ConnectionError:
                pass
    stop(process)
    raise SystemExit(f"gunicorn did not start; its log:\n{log.read_text()}")


def start_job_worker(args, workdir):
    """`celery -A registry worker`, with the web's environment (the same database, broker and queue)."""
    env = {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"], "DJANGO_SETTINGS_MODULE": "load_settings",
           "DEBUG": "0", "REDIS_URL": args.redis_url, "JOB_QUEUE": workdir.name,
           "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}", "SECRET_KEY": os.environ.get("SECRET_KEY", "")}
    log = workdir / "worker.log"
    with log.open("wb") as output:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "registry", "worker", "--concurrency",
                                 str(args.job_workers), "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=output,
                                stderr=subprocess.STDOUT, preexec_fn=terminate_with_parent)


def workbook(patients):
    """A synthetic workbook of `patients` new patients of the import's own centre."""
    from registry.synthetic import generate_cohort, write_workbook

    path = Path(tempfile.mkdtemp(prefix="registry_load_import_")) / "import.xlsx"
    write_workbook(generate_cohort(patients=patients, centres=[IMPORT_CENTRE], seed=2), path)
    return path


def import_job(base, coordinator, path, outcome):
    """Sign in as the coordinator, upload the workbook, poll the job's page until the job ends."""
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=60)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    session.post(f"{base}/accounts/login/", timeout=60, allow_redirects=False,
                 data={"csrfmiddlewaretoken": csrf, "username": coordinator, "password": PASSWORD})
    form = session.get(f"{base}/transfer/import/", timeout=60)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    outcome["started"] = time.monotonic()
    with path.open("rb") as upload:
        submitted = session.post(f"{base}/transfer/import/", timeout=120, allow_redirects=False,
                                 data={"csrfmiddlewaretoken": csrf, "table": ""}, files={"file": upload})
    outcome["upload seconds"] = time.monotonic() - outcome["started"]
    if submitted.status_code != 302:
        outcome["state"] = f"upload answered {submitted.status_code}"
        outcome["ended"] = time.monotonic()
        return
    while True:
        time.sleep(1)
        page = session.get(base + submitted.headers["Location"], timeout=60).text
        if 'http-equiv="refresh"' not in page:  # the job has ended
            outcome["ended"] = time.monotonic()
            outcome["state"] = "imported" if "rows imported in one transaction" in page else "failed"
            return


def forget_cache(redis_url, prefix):
    """Drop this run's keys from a shared Redis (the dashboard's entries would stay for hours)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- simulated users ---------------------------------------------------------------------------------

class Stats:
    """Latencies by page, unexpected answers by (page, status), transport errors; thread-safe."""

    def __init__(self):
        self.lock, self.seconds, self.errors = threading.Lock(), defaultdict(list), Counter()
        self.ended = defaultdict(list)  # when each request ended (time.monotonic), by page

    def add(self, label, seconds, status):
        with self.lock:
            self.seconds[label].append(seconds)
            self.ended[label].append(time.monotonic())
            if status is not None:
                self.errors[(label, status)] += 1


class Deadline(Exception):
    pass


class User:
    """One simulated person: a requests.Session, its pauses, and what it was told it saved."""

    def __init__(self, account, shared, base, stats, think, deadline, rng):
        self.role, self.username, self.centre, self.token = account
        self.shared, self.base, self.stats, self.rng = shared, base, stats, rng
        self.think, self.deadline = think, deadline
        self.session, self.created = requests.Session(), []

    def pause(self):
        if self.think:
            time.sleep(self.think * self.rng.uniform(0.5, 1.5))
        if time.monotonic() >= self.deadline:
            raise Deadline

    def request(self, label, method, path, expect=200, **kwargs):
        """The response if its status is `expect`, else None (counted as an error either way)."""
        self.pause()
        started = time.perf_counter()
        try:
            response = self.session.request(method, self.base + path, allow_redirects=False, timeout=60, **kwargs)
        except requests.RequestException as error:
            label = label if isinstance(label, str) else path
            self.stats.add(label, time.perf_counter() - started, f"transport {type(error).__name__}")
            return None
        seconds = time.perf_counter() - started
        label = label if isinstance(label, str) else label(response)
        ok = response.status_code == expect
        status = None if ok else "200 (form refused)" if response.status_code == 200 else response.status_code
        self.stats.add(label, seconds, status)
        return response if ok else None

    def submit(self, label, path, form_page, data):
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form_page.text).group(1)
        return self.request(label, "POST", path, expect=302, data={"csrfmiddlewaretoken": token, **data})

    def sign_in(self):
        """Through the login form (nurses, PIs); API clients send their token instead."""
        if self.role == "api":
            self.session.headers["Authorization"] = f"Token {self.token}"
            return True
        page = self.request("sign in GET", "GET", "/accounts/login/")
        return page and self.submit("sign in POST", "/accounts/login/", page,
                                    {"username": self.username, "password": PASSWORD, "next": ""})

    def visit(self):
        {"nurse": nurse_case, "pi": pi_visit, "api": api_visit}[self.role](self)


def nurse_case(user):
    """One case entered through the web forms, as a study nurse does it."""
    centre, shared = user.centre, user.shared
    day = datetime.date(2015, 1, 1) + datetime.timedelta(days=user.rng.randrange(1500))
    user.request("patient list", "GET", f"/patients/?centre={centre}")
    new = f"/centres/{centre}/patients/new/"
    page = user.request("patient new GET", "GET", new)
    saved = page and user.submit("patient new POST", new, page, {
        "sex": user.rng.choice(["female", "male"]), "birth_year": user.rng.randrange(1945, 1980),
        "histology": user.rng.choice(["LMS", "SyS", "UPS"]), "lung_mets_diagnosis_date": day,
        "extrapulmonary_disease_at_pm": "False", "ecog": user.rng.randrange(3)})
    if not saved:
        return
    pid = saved.headers["Location"].strip("/").split("/")[-1]
    user.created.append(("patient", pid, None))
    user.request("patient page", "GET", saved.headers["Location"])
    diagnosis, pm = day - datetime.timedelta(days=user.rng.randrange(400, 1500)), day + datetime.timedelta(days=30)
    records = [
        ("primary-tumour", {"diagnosis_date": diagnosis, "site": "extremity", "size_mm": "80", "depth": "deep",
                            "grade": "G3", "surgery_date": diagnosis + datetime.timedelta(days=30), "margin": "R0",
                            "radiotherapy": "none", "local_recurrence_before_pm": "false"}),
        ("metastasectomies", {"surgery_date": pm, "side": "right", "approach": "vats", "resection_type": "wedge",
                              "lesions_resected": "1", "max_lesion_diameter_mm": "15", "margin": "R0",
                              "clavien_dindo": "none"}),
        ("follow-up", {"event_date": pm + datetime.timedelta(days=user.rng.randrange(100, 300)),
                       "event": "contact"}),
    ]
    for kind, values in records:
        if not add_record(user, pid, kind, values):
            return
    with shared["lock"]:
        shared[centre].append((pid, pm, user.username))
        colleagues = [(other, other_pm) for other, other_pm, nurse in shared[centre] if nurse != user.username]
    if colleagues and user.rng.random() < 0.3:  # a colleague's patient, maybe being entered now: a later contact
        other, other_pm = user.rng.choice(colleagues[-5:])
        add_record(user, other, "follow-up", {"event_date": other_pm + datetime.timedelta(
            days=user.rng.randrange(400, 700)), "event": "contact"})


def add_record(user, pid, kind, values):
    path = f"/patients/{pid}/{kind}/add/"
    page = user.request("record add GET", "GET", path)
    saved = page and user.submit("record add POST", path, page, values)
    if saved:
        user.created.append((kind, pid, values[RECORD_KEYS[kind]]))
        user.request("patient page", "GET", saved.headers["Location"].split("#")[0])
    return saved


def pi_visit(user):
    cut_off = f"?size_cutoff_mm={user.rng.randrange(150, 300) / 10}" if user.rng.random() < 1 / 3 else ""
    cache = {"hit": "dashboard (cached)", "miss": "dashboard (computed)"}
    user.request(lambda r: cache.get(r.headers.get("X-Dashboard-Cache"), "dashboard (failed)"), "GET",
                 f"/analysis/{cut_off}")
    for _ in range(3):
        user.request("/analysis/version (poll)", "GET", "/analysis/version")


def api_visit(user):
    url = "/api/v1/patients/?page_size=100"
    for _ in range(3):  # the first pages, following the cursor
        page = user.request("api list", "GET", url)
        if not page or not page.json()["next"]:
            break
        url = urlsplit(page.json()["next"])._replace(scheme="", netloc="").geturl()
    user.request("api list", "GET", f"/api/v1/metastasectomies/?page_size=100&centre={user.centre}")
    user.request("api list", "GET", f"/api/v1/follow-up/?updated_since={datetime.date.today()}")


def run_user(user, start_after, signed_in):
    time.sleep(start_after)
    try:
        working = user.sign_in()
    finally:
        signed_in()
    try:
        while working:
            user.visit()
    except Deadline:
        pass


def drive(base, accounts, seconds, think, on_start=lambda: None):
    """Every account as a user in its own thread. They sign in 0.2 s apart and start working; the
    clock starts when the last one has signed in and stops `seconds` later. Returns (stats of the
    ramp-up, sign-ins included; stats of the timed run; its duration; what the users saved)."""
    shared, ramp_up, stats = defaultdict(list, lock=threading.Lock()), Stats(), Stats()
    users = [User(account, shared, base, ramp_up, think, float("inf"), random.Random(number))
             for number, account in enumerate(accounts)]
    lock, signed, started = threading.Lock(), [], []

    def signed_in():
        with lock:
            signed.append(True)
            if len(signed) == len(users):  # start the clock
                on_start()
                started.append(time.monotonic())
                for user in users:
                    user.stats, user.deadline = stats, started[0] + seconds

    threads = [threading.Thread(target=run_user, args=(user, 0.2 * number, signed_in))
               for number, user in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ramp_up, stats, time.monotonic() - started[0], [record for user in users for record in user.created]


def baseline(base, accounts, rounds):
    """A nurse, a PI and an API client, one after another without pauses: each page unloaded.

    The first round warms the workers up and is not counted."""
    shared, warm_up, stats, created = defaultdict(list, lock=threading.Lock()), Stats(), Stats(), []
    first = {}
    for account in accounts:
        first.setdefault(account[0], account)
    for number in range(rounds + 1):
        for account in first.values():
            user = User(account, shared, base, stats if number else warm_up, 0, float("inf"), random.Random(number))
            if not user.sign_in():
                raise SystemExit(f"the unloaded pass could not sign in {user.username}")
            user.visit()
            created += user.created
    stats.errors += warm_up.errors
    return stats, created


# --- the report ----------------------------------------------------------------------------------------

def percentile(samples, q):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def milliseconds(samples, q):
    return f"{percentile(samples, q) * 1000:.0f}" if samples else "-"


def cpu_times(server):
    """CPU seconds so far of (gunicorn, this client, the whole machine busy, the whole machine idle)."""
    tick, pids = os.sysconf("SC_CLK_TCK"), [server.pid]
    pids += map(int, Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split())
    gunicorn = sum(sum(map(int, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]))
                   for pid in pids) / tick
    machine = [int(n) / tick for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = machine[3] + machine[4]  # idle, iowait
    return gunicorn, sum(os.times()[:2]), sum(machine) - idle, idle


def report(ramp_up, stats, unloaded, elapsed):
    """Requests/s of the timed run, then one row per page, with its p50 in the unloaded pass."""
    total = sum(len(samples) for samples in stats.seconds.values())
    print(f"\n{total} requests in {elapsed:.1f} s: {total / elapsed:.1f} requests/s "
          f"(the sign-ins, during the ramp-up: the last two rows)")
    print(f"{'page':<26} {'n':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'unloaded p50':>13} {'errors':>6}")
    rows = [(stats, label) for label in sorted(stats.seconds, key=lambda name: -len(stats.seconds[name]))]
    for table, label in rows + [(ramp_up, "sign in GET"), (ramp_up, "sign in POST")]:
        samples = table.seconds.get(label, [])
        errors = sum(n for (page, _), n in table.errors.items() if page == label)
        print(f"{label:<26} {len(samples):>5} {milliseconds(samples, 0.5):>7} {milliseconds(samples, 0.95):>7} "
              f"{milliseconds(samples, 0.99):>7} {milliseconds(unloaded.seconds.get(label), 0.5):>13} {errors:>6}")
    for (label, status), count in sorted((stats.errors + ramp_up.errors).items(), key=str):
        print(f"  error: {label}: {status} x{count}")
    p95 = {name: percentile(stats.seconds[name], 0.95) * 1000 for name in DATA_ENTRY if stats.seconds.get(name)}
    worst = max(p95, key=p95.get, default=None)
    print(f"target p95 <= 500 ms for data-entry pages: {'met' if p95.get(worst, 0) <= 500 else 'MISSED'} "
          f"(slowest: {worst}, p95 {p95.get(worst, 0):.0f} ms)")


def import_report(stats, unloaded, outcome, patients):
    """The import job's time, and the data-entry pages' latencies while it ran and after it."""
    if not outcome.get("ended"):
        print(f"import of {patients} patients: still running at the end of the run")
        return
    print(f"\nimport of {patients} patients as a job: {outcome['state']}, upload {outcome['upload seconds']:.1f} s, "
          f"submitted to ended {outcome['ended'] - outcome['started']:.1f} s")
    print(f"{'data-entry page':<26} {'n during':>8} {'p95 during':>10} {'n after':>8} {'p95 after':>9} "
          f"{'unloaded p50':>13}")
    during, after = [], []
    for label in DATA_ENTRY:
        timed = list(zip(stats.ended.get(label, []), stats.seconds.get(label, [])))
        inside = [seconds for end, seconds in timed if outcome["started"] <= end <= outcome["ended"]]
        later = [seconds for end, seconds in timed if end > outcome["ended"]]
        during += inside
        after += later
        print(f"{label:<26} {len(inside):>8} {milliseconds(inside, 0.95):>10} {len(later):>8} "
              f"{milliseconds(later, 0.95):>9} {milliseconds(unloaded.seconds.get(label), 0.5):>13}")
    print(f"{'all data-entry pages':<26} {len(during):>8} {milliseconds(during, 0.95):>10} {len(after):>8} "
          f"{milliseconds(after, 0.95):>9}")


def summary(stats, created, before, log):
    """The closing figures; True if the run failed."""
    lost, extra = check_records(before, created)
    errors = stats.errors
    fivexx = sum(n for (_, status), n in errors.items() if str(status).startswith("5"))
    transport = sum(n for (_, status), n in errors.items() if str(status).startswith("transport"))
    other = sum(errors.values()) - fivexx - transport
    print(f"5xx responses: {fivexx}\ntransport errors: {transport}\nother unexpected responses: {other}\n"
          f"records the clients were told were saved: {len(created)}\n"
          f"lost records: {lost}\nduplicated or unexpected records: {extra}")
    if fivexx:  # the application's log (gunicorn's own [INFO] lines left out): first error, then a count
        lines = [line for line in log.read_text().splitlines() if "] [INFO] " not in line]
        starts = [n for n, line in enumerate(lines) if line.startswith("Internal Server Error")] + [len(lines)]
        print(f"server log {log}, first error:\n" + "\n".join(lines[:starts[1] if len(starts) > 1 else 60]))
        for line, count in Counter(line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)).items():
            print(f"{count} x {line}")
    return bool(fivexx or transport or other or lost or extra)


def run(args, database_url, workdir):
    """Seed, serve, measure unloaded then loaded, check; True if the run failed."""
    from django.db import connections

    started = time.monotonic()
    setup_django(database_url, SECRET_KEY="load-test-only-secret-key")
    load_cohort(args.patients)
    accounts = seed_accounts(args.users)
    before = snapshot()
    path = workbook(args.import_patients) if args.import_patients else None
    connections.close_all()
    server, base, log = start_gunicorn(args, database_url, workdir)
    worker = start_job_worker(args, workdir) if args.import_patients else None
    outcome = {}
    try:
        roles = Counter(role for role, *_ in accounts)
        print(f"gunicorn at {base}: {args.workers} worker(s) x {args.threads} thread(s), cache "
              f"{'Redis' if args.redis_url else 'local memory per worker'}; PostgreSQL "
              f"{database_url.rsplit('@')[-1]}, {len(before['patients'])} patients; ready in "
              f"{time.monotonic() - started:.1f} s\n{args.users} users ({roles['nurse']} nurses, {roles['pi']} PIs, "
              f"{roles['api']} API clients), think {args.think} s, {args.seconds:.0f} s", flush=True)
        unloaded, created = baseline(base, accounts, args.baseline_rounds)
        cpu = []

        def on_start():
            cpu.append(cpu_times(server))
            if path:
                threading.Thread(target=import_job, args=(base, f"load{os.getpid()}-coordinator", path, outcome),
                                 daemon=True).start()
        ramp_up, stats, elapsed, told = drive(base, accounts, args.seconds, args.think, on_start=on_start)
        load = os.getloadavg()
        gunicorn, client, busy, idle = (end - start for start, end in zip(cpu[0], cpu_times(server)))
        report(ramp_up, stats, unloaded, elapsed)
        if path:
            import_report(stats, unloaded, outcome, args.import_patients)
        print(f"CPU seconds of the timed run: gunicorn {gunicorn:.1f}, this client {client:.1f}, everything else "
              f"(PostgreSQL, other people's work) {busy - gunicorn - client:.1f}, idle {idle:.1f}\n"
              f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min, this run included)")
        stats.errors += ramp_up.errors + unloaded.errors
        failed = summary(stats, created + told, before, log)
        return failed or bool(path and outcome.get("state") != "imported")
    finally:
        stop(server)
        if worker:
            stop(worker)
        connections.close_all()


def main():
    args = parse_args()
    if args.import_patients and not args.redis_url:
        raise SystemExit("--import-patients needs --redis-url: the job queue's broker")
    load = os.getloadavg()
    print(f"load test {datetime.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, load average before "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    name = f"registry_load_{os.getpid()}"
    database_url = args.database_url or scratch_database(args.server_url, name)
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    failed = True
    try:
        failed = run(args, database_url, workdir)
    finally:
        if args.redis_url:
            forget_cache(args.redis_url, workdir.name)
        if not args.database_url and not args.keep:
            scratch_database(args.server_url, name, create=False)
        if args.keep or failed:
            kept_database = args.keep and not args.database_url
            print(f"kept: the server log in {workdir}" + (f", the database {name}" if kept_database else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
