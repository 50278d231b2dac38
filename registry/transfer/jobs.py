"""Imports and exports as jobs: submitted by the web page, run by a worker of the job queue.

    job = submit_import(user, data=..., file_name="muc.xlsx", table=None, dry_run=True)
    job = submit_export(user, centre=None, file_format="csv", deidentify="none")
    run(job.id)   # what the worker does (registry/transfer/tasks.py)

A hostile or huge file then costs a worker's time, within its limits (JOB_TIME_LIMIT,
JOB_MAX_MEMORY_MB), not a web worker's. The job row carries the state, the current step, the import's
counts and the export archive; an import's details are held in the cache (see import_details). A job is queued after its row is committed,
so the worker always finds it.
"""
import dataclasses
import io
import logging
import zlib
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from registry import access, selectors
from registry.models import Job
from registry.transfer.exporting import dataset_export, export_filename
from registry.transfer.importing import file_import

log = logging.getLogger("registry.transfer.jobs")

SHOWN_ERRORS = 500  # errors kept in the job's summary for the page; the CSV has all of them
SHOWN_WARNINGS = 200


def submit_import(user, *, data, file_name, table=None, dry_run=True):
    options = {"file_name": file_name[:255], "table": table or "", "dry_run": bool(dry_run), "size": len(data)}
    return _submit(Job(kind=Job.IMPORT, user=user, options=options, payload=data))


def submit_export(user, *, centre=None, file_format="csv", deidentify="none", freeze=None):
    options = {"centre": centre or "", "file_format": file_format, "deidentify": deidentify, "freeze": freeze or ""}
    return _submit(Job(kind=Job.EXPORT, user=user, options=options))


def _submit(job):
    from registry.transfer import tasks  # the task module imports this one

    _forget_old_results()
    job.save()
    if tasks.run_job.app.conf.task_always_eager:  # no worker (make run, the tests): the job runs here, now
        tasks.queue(job.pk)
        job.refresh_from_db()
    else:  # the worker must find the row: queue the job once it is committed
        transaction.on_commit(lambda: tasks.queue(job.pk))
    return job


def _forget_old_results():
    """Drop files and results of jobs that ended more than JOB_RESULT_HOURS ago."""
    cutoff = timezone.now() - timedelta(hours=settings.JOB_RESULT_HOURS)
    Job.objects.filter(finished_at__lt=cutoff).exclude(result=None, payload=None).update(result=None, payload=None)


def jobs_of(user, limit=10, kind=None):
    """The user's newest jobs (of `kind`, Job.IMPORT or Job.EXPORT, when given), without their files."""
    found = Job.objects.filter(user=user) if kind is None else Job.objects.filter(user=user, kind=kind)
    return found.defer("payload", "result")[:limit]


def job_of(user, pk):
    """The user's job `pk` without its files, or Job.DoesNotExist (also for another user's job)."""
    job = Job.objects.defer("payload", "result").get(pk=pk, user=user)  # the file: result_bytes
    if _lost(job):
        fail(job.pk, "lost")
        job.refresh_from_db()
    return job


def _lost(job):
    """A job still `running` well past the hard time limit lost its worker (killed, restarted):
    the page says so rather than wait for ever. Its transaction died with the worker."""
    lost_after = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    return job.state == Job.RUNNING and job.started_at < timezone.now() - lost_after


# Why a job failed, stored as a code with the limits of the process that ran it, and put into words
# in the language of whoever reads the page (the worker has none).
FAILURES = {
    "too_long": gettext_lazy("The job took longer than the limit of %(s)s seconds and was stopped. Nothing was "
                             "written."),
    "too_big": gettext_lazy("The job needed more memory than the limit of %(mb)s MB and was stopped. Nothing was "
                            "written."),
    "process_died": gettext_lazy("The process running the job stopped before the job ended; it may have needed "
                                 "more memory than the limit of %(mb)s MB. Nothing was written."),
    "lost": gettext_lazy("The worker running this job stopped before it ended. Nothing was written. Submit it "
                         "again."),
    "database": gettext_lazy("The database failed during the job. An import is written in one transaction, so "
                             "nothing of this file is half-stored. Submit it again: rows that are already stored "
                             "are recognised and left unchanged."),
    "export_refused": gettext_lazy("You may not export this dataset."),
    "unexpected": gettext_lazy("The job failed unexpectedly; the administrators can read why in the log. Nothing "
                               "was written."),
}
TOO_LONG, PROCESS_DIED = "too_long", "process_died"


def _failure(code):
    """The stored form of a failure: its code and this process's limits."""
    return f"{code} {settings.JOB_TIME_LIMIT} {settings.JOB_MAX_MEMORY_MB}"


def error_message(job):
    """Why the job failed, in the active language ("" when it did not)."""
    if not job.error:
        return ""
    code, seconds, megabytes = (job.error.split() + ["", "", ""])[:3]
    return str(FAILURES.get(code, FAILURES["unexpected"])) % {"s": seconds, "mb": megabytes}


def fail(pk, code):
    """Record that a job which could not end itself failed (its process died or was killed)."""
    Job.objects.filter(pk=pk, state__in=[Job.QUEUED, Job.RUNNING]).update(
        state=Job.FAILED, error=_failure(code), finished_at=timezone.now(), payload=None)


def run(pk):
    """Run a queued job to its end; a job that is not queued (run already) is left alone."""
    claimed = Job.objects.filter(pk=pk, state=Job.QUEUED).update(state=Job.RUNNING, started_at=timezone.now())
    if not claimed:
        return
    job = Job.objects.get(pk=pk)
    try:
        if job.kind == Job.IMPORT:
            _run_import(job)
        else:
            _run_export(job)
        job.state = Job.DONE
    except PermissionDenied:
        job.state, job.error = Job.FAILED, _failure("export_refused")
    except SoftTimeLimitExceeded:
        job.state, job.error = Job.FAILED, _failure("too_long")
    except MemoryError:
        job.state, job.error = Job.FAILED, _failure("too_big")
    except DatabaseError:
        log.exception("job %s failed", pk)
        connection.close_if_unusable_or_obsolete()  # a lost connection is replaced to record the failure
        job.state, job.error = Job.FAILED, _failure("database")
    except Exception:  # the page must say that the job ended, whatever happened
        log.exception("job %s failed", pk)
        job.state, job.error = Job.FAILED, _failure("unexpected")
    job.finished_at = timezone.now()
    job.payload = None  # the uploaded file is not kept beyond its job
    job.save(update_fields=["state", "error", "finished_at", "payload", "result", "result_name", "report"])


def _step(job, step, rows, fraction):
    """While the job runs, its report holds only its progress (the job page's bar and estimate)."""
    Job.objects.filter(pk=job.pk).update(step=step, report={"progress": {"rows": rows, "fraction": round(fraction, 3)}})


def _run_import(job):
    """Run the import; the job row keeps its counts, the cache its details (below)."""
    options = job.options
    report = file_import(user=job.user, data=bytes(job.payload), filename=options["file_name"],
                         table=options["table"] or None, dry_run=options["dry_run"],
                         on_step=lambda step, rows, fraction: _step(job, step, rows, fraction))
    job.report = {
        "ok": report.ok, "dry_run": report.dry_run, "written": report.written, "rows": report.rows,
        "counts": report.counts, "totals": report.totals(), "seconds": round(report.seconds, 1),
        "error_count": len(report.errors), "new_patients": len(report.pseudonyms),
    }
    if report.ok and report.dry_run:  # the file passed: keep it, so "Import now" needs no second upload
        cache.set(checked_file_key(job.pk), bytes(job.payload), timeout=CHECKED_FILE_SECONDS)
    cache.set(import_details_key(job.pk), {
        "errors": [dataclasses.asdict(problem) for problem in report.errors[:SHOWN_ERRORS]],
        "warnings": [dataclasses.asdict(problem) for problem in report.warnings[:SHOWN_WARNINGS]],
        "errors_csv": zlib.compress(report.errors_csv().encode("utf-8")) if report.errors else None,
        "mapping_csv": zlib.compress(report.mapping_csv().encode("utf-8")) if report.written and report.pseudonyms
        else None,
    }, timeout=int(settings.JOB_RESULT_HOURS * 3600))


# An import's details — its errors and warnings, which quote the file's cells, and the mapping of the
# file's local keys to the pseudonyms issued — may hold the uploader's local keys, which the registry
# does not store: they are held in the cache (shared by web and worker: Redis) for JOB_RESULT_HOURS.
def import_details_key(pk):
    return f"import-job-details:{pk}"


# A file that passed a dry run is kept this long for "Import now" (in the cache, as the details:
# it may name the uploader's local keys, which the registry does not store).
CHECKED_FILE_SECONDS = 3600


def checked_file_key(pk):
    return f"import-job-checked-file:{pk}"


def import_checked(job):
    """Import, for real, the file that passed the dry run `job`: the new job, or None when the file is
    no longer kept. The new import checks everything again: the registry may have changed since."""
    data = cache.get(checked_file_key(job.pk))
    if job.kind != Job.IMPORT or not job.options.get("dry_run") or data is None:
        return None
    cache.delete(checked_file_key(job.pk))  # imported once: a second click cannot import it again
    return submit_import(job.user, data=data, file_name=job.options["file_name"], table=job.options["table"] or None,
                         dry_run=False)


def is_kept(job):
    return cache.get(checked_file_key(job.pk)) is not None


def import_details(job):
    """{errors, warnings, errors_csv, mapping_csv} of an import job, or None once expired."""
    return cache.get(import_details_key(job.pk))


def details_file(job, name):
    """The import's errors ("errors_csv") or pseudonym mapping ("mapping_csv") as text, or None."""
    data = (import_details(job) or {}).get(name)
    return zlib.decompress(data).decode("utf-8") if data else None


def _run_export(job):
    options = {"centre": job.options["centre"] or None, "file_format": job.options["file_format"],
               "deidentify": job.options["deidentify"]}
    if not access.can_export(job.user, options["centre"] or access.ALL):  # rights may have changed meanwhile
        raise PermissionDenied
    name = job.options.get("freeze")
    freeze = selectors.freeze_named(name) if name else None
    if name and freeze is None:  # freezes are never deleted; a job of another database's freeze
        raise ValueError(f"There is no freeze {name}.")
    buffer = io.BytesIO()
    dataset_export(user=job.user, out=buffer, freeze=freeze, **options)
    job.result = buffer.getvalue()
    job.result_name = export_filename(freeze=name, **options)


def has_result(job):
    return Job.objects.filter(pk=job.pk, result__isnull=False).exists()


def kept_results(jobs):
    """The ids of those of `jobs` whose archive is still kept (one query for a whole list)."""
    return set(Job.objects.filter(pk__in=[job.pk for job in jobs], result__isnull=False).values_list("pk", flat=True))


def result_bytes(job):
    """An export job's archive (b"" once it is no longer kept)."""
    return bytes(Job.objects.values_list("result", flat=True).get(pk=job.pk) or b"")
