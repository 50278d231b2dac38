"""The job queue's tasks (Celery, registry/celery.py): one, which runs a submitted job.

The limits are the worker's (its settings CELERY_TASK_SOFT_TIME_LIMIT and CELERY_TASK_TIME_LIMIT,
from JOB_TIME_LIMIT): a job gets SoftTimeLimitExceeded after JOB_TIME_LIMIT seconds and ends itself
cleanly; its process is killed 30 s later if it has not. A process that dies (killed at the hard limit, or aborted when an allocation
fails under the memory cap) cannot record that, so the worker's main process does, here.
"""
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import shared_task
from celery.signals import task_failure

from registry.transfer import jobs


@shared_task(name="registry.run_job")
def run_job(pk):
    jobs.run(pk)


def queue(pk):
    """Send the job to the workers. A task message would carry the sender's time limits, which the
    worker obeys; sent without, the worker applies its own."""
    run_job.apply_async(args=[str(pk)], time_limit=None, soft_time_limit=None)


@task_failure.connect(sender=run_job)
def record_lost_job(sender=None, exception=None, args=(), **_kwargs):
    if isinstance(exception, TimeLimitExceeded):
        jobs.fail(args[0], jobs.TOO_LONG)
    elif isinstance(exception, WorkerLostError):
        jobs.fail(args[0], jobs.PROCESS_DIED)
