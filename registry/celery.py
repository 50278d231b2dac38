"""The job queue (Celery): imports and exports run here, away from the web workers.

    celery -A registry worker --concurrency 2

Tasks are in registry/transfer/tasks.py; settings named CELERY_* in registry/settings.py. Without
a broker the tasks run in the submitting process (CELERY_TASK_ALWAYS_EAGER).
"""
import os
import resource

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["registry.transfer"])


@worker_process_init.connect
def limit_memory(**_kwargs):
    """Cap each job process's address space: a job beyond it gets MemoryError (and fails with a
    clear message) instead of pushing the machine into swap or the kernel's OOM killer."""
    from django.conf import settings
    limit = settings.JOB_MAX_MEMORY_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
