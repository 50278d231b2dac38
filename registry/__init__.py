# The job queue's app is loaded with Django, so that tasks submitted by the web process find it.
from registry.celery import app as celery_app

__all__ = ["celery_app"]
