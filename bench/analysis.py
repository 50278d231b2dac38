"""Benchmark of the analysis engine: analysis frame and full survival report by cohort size.

    .venv/bin/python bench/analysis.py [--sizes 1000 10000 100000] [--database-url URL]

Without --database-url it creates a scratch PostgreSQL database `registry_bench_analysis` on
127.0.0.1 (user postgres, trust auth), migrates it and drops it at the end. With --database-url
it refuses a database that already has tables; it migrates the empty one it is given and empties
the clinical tables again at the end. For each size it loads a synthetic cohort
(registry/synthetic/) with COPY (the fast path: no validation, no audit rows), then times:

- scan: reading the five clinical tables into Python with a raw cursor, the floor for any
  analysis that reads the rows (the baseline of the same run: ratios hold on a noisy machine);
- frame: analysis.frame.analysis_frame, with its query count;
- report: analysis.report.survival_report (frame + statistics), with its query count;
- naive (first size only): a per-patient ORM loop reading each case, to show what the fixed
  query count of the frame avoids.
"""
import argparse
import datetime
import os
import sys
import time

import psycopg
from scratch import copy_cohort, scratch_database, setup_django

SCRATCH_DB = "registry_bench_analysis"
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database (default: a scratch one)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def require_empty(database_url):
    """Refuse a database that already has tables: the benchmark migrates and truncates."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()[0]
    if tables:
        sys.exit(f"Refusing to run: {database_url} is not empty ({tables} tables); "
                 "the benchmark migrates and truncates. Give an empty database or none.")


def clear_tables():
    from django.db import connection

    from registry.models import CLINICAL_MODELS

    tables = ", ".join(f'"{m._meta.db_table}"' for m in CLINICAL_MODELS)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def timed(function):
    """(seconds, queries, result) of one call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - started
    return seconds, len(queries), result


def scan():
    """Every clinical row into Python through a raw cursor: the floor for reading the data."""
    from django.db import connection

    from registry.models import CLINICAL_MODELS

    with connection.cursor() as cursor:
        for model in CLINICAL_MODELS:
            cursor.execute(f'SELECT * FROM "{model._meta.db_table}"')
            cursor.fetchall()


def naive_loop():
    """The per-patient ORM way: one query per table per patient."""
    from registry.models import Patient

    for patient in Patient.objects.all():
        list(patient.metastasectomies.all())
        list(patient.systemic_therapies.all())
        list(patient.follow_ups.all())
        patient.primary_tumour if hasattr(patient, "primary_tumour") else None


def bench(sizes, seed):
    from analysis.frame import analysis_frame
    from analysis.report import survival_report
    from registry.synthetic import generate_cohort

    print(f"{'patients':>9} {'rows':>9} {'load s':>7} {'scan s':>7} {'frame s':>8} {'q':>3} "
          f"{'report s':>9} {'q':>3} {'frame/scan':>10} {'analysed':>9}", flush=True)
    for n, size in enumerate(sizes):
        clear_tables()
        cohort = generate_cohort(patients=size, centres=12, seed=seed)
        rows = sum(len(table) for table in cohort.values())
        load_seconds, _q, _r = timed(lambda cohort=cohort: copy_cohort(cohort))
        scan_seconds, _q, _r = timed(scan)
        frame_seconds, frame_queries, frame = timed(analysis_frame)
        report_seconds, report_queries, report = timed(survival_report)
        print(f"{size:>9} {rows:>9} {load_seconds:>7.2f} {scan_seconds:>7.2f} {frame_seconds:>8.2f} "
              f"{frame_queries:>3} {report_seconds:>9.2f} {report_queries:>3} "
              f"{frame_seconds / scan_seconds:>10.1f} {report['cohort']['analysed']:>9}", flush=True)
        if n == 0:
            naive_seconds, naive_queries, _r = timed(naive_loop)
            print(f"  baseline at {size} patients: naive per-patient ORM loop {naive_seconds:.2f} s, "
                  f"{naive_queries} queries (frame: {frame_seconds:.2f} s, {frame_queries} queries)", flush=True)


def main():
    args = parse_args()
    if args.database_url:
        require_empty(args.database_url)
    database_url = args.database_url or scratch_database(ADMIN_URL, SCRATCH_DB)
    try:
        setup_django(database_url)
        print(f"PostgreSQL {database_url.rsplit('@', 1)[-1]}, {os.cpu_count()} cores, "
              f"{datetime.date.today().isoformat()}", flush=True)
        bench(args.sizes, args.seed)
    finally:
        if args.database_url:  # leave the given database migrated but without synthetic rows
            from django.apps import apps

            if apps.ready:
                clear_tables()
        else:
            from django.db import connections

            connections.close_all()
            scratch_database(ADMIN_URL, SCRATCH_DB, create=False)


if __name__ == "__main__":
    main()
