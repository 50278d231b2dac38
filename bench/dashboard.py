"""Benchmark of the survival dashboard page (/analysis/) on a 10,000-patient registry.

    .venv/bin/python bench/dashboard.py [--patients 10000] [--cached 40] [--uncached 3]

Creates a scratch PostgreSQL database `registry_bench_dashboard_<pid>` on 127.0.0.1 (user postgres,
trust auth), migrates it, loads a synthetic cohort (registry/synthetic/, seed 1, 12 centres)
with COPY, and drops the database at the end. Requests go through Django's test client as a
signed-in PI (middleware, session, access checks, template rendering: everything but the socket),
with the cache of the settings (local memory unless REDIS_URL is set; keys prefixed with the
database name, nothing is flushed).

- baseline: GET /analysis/version, the smallest signed-in page, reading the same data version
  every dashboard request reads (the floor of a cached page in this run);
- cached: GET /analysis/ and /analysis/?stratify=histology once computed;
- uncached: GET /analysis/ with a cut-off never asked before (size 20.01, 20.02, ... mm: a new plan
  hash, so a cache miss, as after a change of data), split into the survival report
  (analysis.report via dashboard.report_from_frame) and the rest.
Targets: cached p95 <= 300 ms, uncached <= 2 s.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

import scratch

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH_DB = f"registry_bench_dashboard_{os.getpid()}"  # unique: other benchmarks run at the same time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--cached", type=int, default=40, help="cached requests per page (default 40)")
    parser.add_argument("--uncached", type=int, default=3, help="uncached requests (default 3)")
    return parser.parse_args()


def setup_django(database_url):
    scratch.setup_django(database_url, ALLOWED_HOSTS="testserver")
    from django.conf import settings

    # A shared Redis may hold other runs' entries: this run's keys get a prefix of their own.
    settings.CACHES["default"]["KEY_PREFIX"] = SCRATCH_DB


def load_cohort(patients):
    """A synthetic cohort, COPYed into the clinical tables (no validation, no audit rows: fast)."""
    from registry.synthetic import generate_cohort

    scratch.copy_cohort(generate_cohort(patients=patients, centres=12, seed=1))


def timed_get(client, url):
    started = time.perf_counter()
    response = client.get(url)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        sys.exit(f"GET {url}: {response.status_code}")
    return seconds, response


def percentiles(samples):
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def row(label, samples, note=""):
    p50, p95 = percentiles(samples)
    print(f"{label:<44} {len(samples):>4} {p50 * 1000:>9.0f} {p95 * 1000:>9.0f}  {note}", flush=True)


def wrap(module, name, seconds):
    """Replace module.name by the same function that also appends its duration to ``seconds``."""
    function = getattr(module, name)

    def timed(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - begun)

    setattr(module, name, timed)


def bench(args):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from analysis.dashboard import compute
    from registry.models import Membership

    started = time.perf_counter()
    load_cohort(args.patients)
    print(f"loaded {args.patients} patients in {time.perf_counter() - started:.1f} s", flush=True)
    pi = get_user_model().objects.create_user("bench-pi", password="bench-password-123")
    Membership.objects.create(user=pi, centre_id="MUC", role="pi")
    client = Client()
    client.force_login(pi)

    # Where an uncached request spends its time: wrap the two steps the dashboard calls.
    import analysis.report  # lifelines loads once, as in a running server

    spent = {"frame": [], "report": []}
    wrap(analysis.report, "frame_with_version", spent["frame"])
    wrap(compute, "report_from_frame", spent["report"])

    timed_get(client, "/analysis/?size_cutoff_mm=19.99")  # warm-up: templates, imports (a running server has them)
    for samples in spent.values():
        samples.clear()
    print(f"{'page':<44} {'n':>4} {'p50 ms':>9} {'p95 ms':>9}", flush=True)
    uncached = []
    for run in range(args.uncached):
        seconds, response = timed_get(client, f"/analysis/?size_cutoff_mm={20 + (run + 1) / 100:.2f}")
        assert response["X-Dashboard-Cache"] == "miss"
        uncached.append(seconds)
    report = json.loads(client.get("/analysis/report.json?size_cutoff_mm=20.01").content)["report"]
    analysed = report["cohort"]["analysed"]
    row("uncached /analysis/ (new plan each time)", uncached, f"{analysed} analysed")
    row("  reading the analysis frame (analysis.frame)", spent["frame"])
    row("  the survival report (analysis.report)", spent["report"])
    row("  the dashboard's own (strata, figures, page)",
        [total - a - b for total, a, b in zip(uncached, spent["frame"], spent["report"])])

    timed_get(client, "/analysis/")  # compute once
    timed_get(client, "/analysis/?stratify=histology")
    for label, url in (("baseline /analysis/version", "/analysis/version"),
                       ("cached /analysis/", "/analysis/"),
                       ("cached /analysis/?stratify=histology", "/analysis/?stratify=histology"),
                       ("cached /analysis/figures/km-dfs.svg", "/analysis/figures/km-dfs.svg")):
        samples = []
        for _ in range(args.cached):
            seconds, response = timed_get(client, url)
            assert url.endswith("version") or response["X-Dashboard-Cache"] == "hit"
            samples.append(seconds)
        row(label, samples, f"{len(response.content) // 1024} KiB")


def main():
    args = parse_args()
    database_url = scratch.scratch_database(ADMIN_URL, SCRATCH_DB)
    try:
        setup_django(database_url)
        from django.conf import settings

        print(f"PostgreSQL {database_url.rsplit('@', 1)[-1]}, {os.cpu_count()} cores, "
              f"cache {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}, "
              f"load average {os.getloadavg()[0]:.1f}, {datetime.date.today().isoformat()}", flush=True)
        bench(args)
    finally:
        from django.db import connections

        connections.close_all()
        scratch.scratch_database(ADMIN_URL, SCRATCH_DB, create=False)


if __name__ == "__main__":
    main()
