"""Benchmark: list every patient of a 10,000-patient registry through the REST API, page by page.

Creates a scratch PostgreSQL database (dropped at the end), loads a synthetic cohort through the
registry's own bulk write path, serves the registry over real HTTP on 127.0.0.1 (Django's threaded
WSGI server, DEBUG off, token authentication, throttles on) and follows `next` from
/api/v1/patients/ until the last page. The baseline, measured in the same run on the same data and
server, is the usual DRF way: a ListAPIView with a ModelSerializer over model instances, same
pagination, same authentication.

    .venv/bin/python bench/api.py [--patients 10000] [--repeat 3]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), as in .ci/run. Target: the
registry's listing at its default page size (1000) takes at most 2 s in total.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_SECONDS = 2.0


def pg(*args):
    subprocess.run([*args, "-h", "127.0.0.1", "-U", "postgres"], check=True, capture_output=True)


def setup_django(database):
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "registry.settings"
    # The benchmark measures listing, not the throttles: give its token room for every page.
    os.environ["API_RATE_TOKEN"] = os.environ["API_RATE_USER"] = "1000000/minute"
    import django
    django.setup()


def load_registry(patients):
    from django.core.management import call_command

    from registry import synthetic
    from registry.management.commands.generate_cohort import cohort_load

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    cohort = synthetic.generate_cohort(patients=patients, centres=4, seed=1)
    cohort_load(cohort)
    return time.perf_counter() - started


def baseline_urlconf():
    """The registry's URLs plus the baseline listing at /bench/baseline/patients/."""
    from django.urls import path
    from rest_framework import generics, serializers

    from registry import access
    from registry.api.views import RecordPagination
    from registry.models import Patient
    from registry.urls import urlpatterns

    class PatientModelSerializer(serializers.ModelSerializer):
        class Meta:
            model = Patient
            fields = "__all__"

    class BaselinePagination(RecordPagination):
        def get_ordering(self, request, queryset, view):
            return ("patient_id",)

    class BaselinePatientList(generics.ListAPIView):
        serializer_class = PatientModelSerializer
        pagination_class = BaselinePagination

        def get_queryset(self):
            return access.patients_readable(self.request.user)

    module = type(sys)("bench_api_urls")
    module.urlpatterns = [path("bench/baseline/patients/", BaselinePatientList.as_view()), *urlpatterns]
    sys.modules[module.__name__] = module
    return module.__name__


def serve():
    """The registry on a free port of 127.0.0.1, in a thread; returns (server, base URL)."""
    from django.conf import settings
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = baseline_urlconf()

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def list_all(base, path, token):
    """Follow `next` from path to the last page; returns (seconds, pages, rows)."""
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    url, pages, rows = base + path, 0, []
    started = time.perf_counter()
    while url:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port)
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {body[:200]!r}")
        page = json.loads(body)
        rows += page["results"]
        pages += 1
        url = page["next"]
    return time.perf_counter() - started, pages, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    args = parser.parse_args()

    database = f"bench_api_{os.getpid()}"
    pg("createdb", database)
    try:
        setup_django(database)
        load_seconds = load_registry(args.patients)
        from django.contrib.auth import get_user_model
        from django.db import connection

        from registry.api.models import ApiToken
        from registry.models import Membership

        user = get_user_model().objects.create_user("bench-coordinator")
        Membership.objects.create(user=user, centre_id=Membership._meta.get_field("centre")
                                  .related_model.objects.first().pk, role="coordinator")
        token = ApiToken.issue(user=user, kind="api", name="benchmark")[1]
        connection.close()  # the server threads open their own connections
        server, base = serve()
        print(f"API listing benchmark: {args.patients} patients on PostgreSQL "
              f"(loaded in {load_seconds:.0f} s), HTTP on {base}, best of {args.repeat}")
        list_all(base, "/api/v1/patients/?page_size=10", token)  # warm-up: imports, connections
        results = {}
        for label, path in [
            ("registry API, page_size=1000 (default)", "/api/v1/patients/"),
            ("registry API, page_size=100", "/api/v1/patients/?page_size=100"),
            ("baseline ModelSerializer, page_size=1000", "/bench/baseline/patients/?page_size=1000"),
            ("baseline ModelSerializer, page_size=100", "/bench/baseline/patients/?page_size=100"),
        ]:
            runs = [list_all(base, path, token) for _ in range(args.repeat)]
            seconds, pages, rows = min(runs, key=lambda run: run[0])
            assert len(rows) == args.patients and len({r["patient_id"] for r in rows}) == args.patients, label
            results[label] = seconds
            print(f"  {label:<42} {seconds:6.2f} s  {pages:4d} pages  {len(rows) / seconds:8.0f} rows/s")
        server.shutdown()
        fast, slow = results["registry API, page_size=1000 (default)"], results["baseline ModelSerializer, page_size=1000"]
        print(f"  registry API vs baseline at page_size=1000: {slow / fast:.1f}x faster")
        verdict = "OK" if fast <= TARGET_SECONDS else "TOO SLOW"
        print(f"  target: all patients in <= {TARGET_SECONDS:.0f} s at the default page size: {verdict}")
        return 0 if fast <= TARGET_SECONDS else 1
    finally:
        from django.db import connections
        connections.close_all()
        pg("dropdb", "--if-exists", "--force", database)


if __name__ == "__main__":
    sys.exit(main())
