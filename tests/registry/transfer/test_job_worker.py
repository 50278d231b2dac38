"""Imports as jobs on a real job worker: `celery -A registry worker` on Redis, as docker-compose runs it.

The worker is a separate process on the test database, so these tests need PostgreSQL (the SQLite
test database lives in this process's memory); CI runs the suite on both. Each test has its own
queue, so workers of other runs on the machine do not take its jobs.
"""
import functools
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from registry import celery_app
from registry.models import Job, Patient
from tests import factories as f
from tests.registry.transfer.test_import_support import centres, new_cohort, workbook_bytes
from tests.test_faults import database_url, wait_for

ROOT = Path(__file__).resolve().parents[3]
BROKER = "redis://127.0.0.1:6379/14"

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="the worker process cannot open the in-memory SQLite test database")


@pytest.fixture
def queue(transactional_db):
    """Jobs of this process go to a queue of their own on Redis, not run in-process."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    saved = {key: celery_app.conf[key] for key in ("task_always_eager", "broker_url", "task_default_queue")}
    celery_app.conf.update(task_always_eager=False, broker_url=BROKER, task_default_queue=name)
    forget_connections()
    yield name
    celery_app.conf.update(saved)
    forget_connections()


def forget_connections():
    """Drop what the app built from its configuration (broker connections, queues, routes), so
    that the next task is sent as configured now."""
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)  # a cached property


@pytest.fixture
def worker(queue, tmp_path):
    """start(**environment): a worker on the queue, stopped after the test."""
    processes = []

    def start(**environment):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SECRET_KEY": settings.SECRET_KEY,
               "EXPORT_SHIFT_KEY": settings.EXPORT_SHIFT_KEY, "DATABASE_URL": database_url(),
               "CELERY_BROKER_URL": BROKER, "JOB_QUEUE": queue, "LOG_LEVEL": "WARNING", **environment}
        log = open(tmp_path / "worker.log", "wb")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "registry", "worker", "--concurrency", "1", "--pool", "prefork",
             "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        return processes[-1]
    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def coordinator(client, queue):
    centres()
    client.force_login(f.user("coordinator", memberships=[("MUC", "coordinator")]))
    return client


@functools.lru_cache(maxsize=1)
def large_workbook():
    """15,000 patients: some seconds of work for a worker (its time limit is checked once a
    second), and some hundred MB."""
    return workbook_bytes(new_cohort(15000, seed=8))


def submit(client, data):
    response = client.post(reverse("import_upload"), {"file": SimpleUploadedFile("centres.xlsx", data), "table": ""})
    assert response.status_code == 302
    return response.url


def finished_page(client, url, timeout=90):
    """The job's page once the job has ended; the page reloads itself until then."""
    def ended():
        page = client.get(url)
        assert page.status_code == 200
        if page.context["job"].finished:
            return page
        assert '<meta http-equiv="refresh"' in page.content.decode()
        return None
    return wait_for(ended, "the job to end", timeout=timeout, interval=0.2)


@on_postgresql
def test_an_import_runs_on_the_worker_and_its_page_follows_it(coordinator, worker):
    tables = new_cohort(30)
    url = submit(coordinator, workbook_bytes(tables))
    job = Job.objects.get()
    assert job.state == Job.QUEUED and not Patient.objects.exists()  # nothing ran in the web process
    assert "Waiting for a worker" in coordinator.get(url).content.decode()

    worker()
    page = finished_page(coordinator, url)

    assert page.context["job"].state == Job.DONE, page.context["job"].error
    assert "Imported" in page.content.decode()
    assert Patient.objects.count() == len(tables["patients"])
    job.refresh_from_db()
    assert job.step == "write" and job.payload is None and job.started_at <= job.finished_at


@on_postgresql
def test_a_job_over_its_time_limit_is_stopped_and_writes_nothing(coordinator, worker):
    worker(JOB_TIME_LIMIT="1")
    url = submit(coordinator, large_workbook())

    page = finished_page(coordinator, url)

    assert page.context["job"].state == Job.FAILED, page.context["job"].report.get("seconds")
    assert "longer than the limit of 1 seconds" in page.content.decode()
    assert not Patient.objects.exists()


@on_postgresql
def test_a_job_over_its_memory_limit_fails_cleanly_and_writes_nothing(coordinator, worker):
    worker(JOB_MAX_MEMORY_MB="350")
    url = submit(coordinator, large_workbook())

    page = finished_page(coordinator, url)

    assert page.context["job"].state == Job.FAILED, page.context["job"].report.get("seconds")
    assert "more memory than the limit of 350 MB" in page.content.decode()
    assert not Patient.objects.exists()


def test_a_job_whose_worker_died_is_shown_as_failed_not_waiting(client, db):
    user = f.user("nurse", memberships=[])
    client.force_login(user)
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 120)
    job = Job.objects.create(kind=Job.IMPORT, user=user, state=Job.RUNNING, started_at=long_ago,
                             options={"file_name": "lost.xlsx", "dry_run": False}, payload=b"x")

    page = client.get(reverse("job_detail", args=[job.pk]))

    assert "The worker running this job stopped before it ended" in page.content.decode()
    job.refresh_from_db()
    assert job.state == Job.FAILED and job.payload is None
