"""What the benchmarks share: a scratch PostgreSQL database, Django on it, a cohort in it, and
this process's memory use.

The benchmarks are run as scripts (python bench/x.py), so this module is imported as `scratch`.
"""
import argparse
import collections
import datetime
import os
import resource
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def scratch_database(admin_url, name, create=True):
    """Drop the database `name` on the server of `admin_url` (a maintenance database) and, with
    `create`, create it empty; returns its URL."""
    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            admin.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def setup_django(database_url, *, migrate=True, **environment):
    """Django with the production settings (DEBUG off: it keeps every query's SQL) on `database_url`;
    `environment` sets further variables unless they are set already."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "registry.settings"
    os.environ.pop("DEBUG", None)
    # The simulated users sign in with a password only: no two-factor step in the measured pages.
    for key, value in {"SECRET_KEY": "bench-only-secret-key", "EXPORT_SHIFT_KEY": "bench-only-export-shift-key",
                       "AUDIT_CHAIN_KEY": "bench-only-audit-chain-key",
                       "TWO_FACTOR_REQUIRED_ROLES": "", **environment}.items():
        os.environ.setdefault(key, value)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def copy_cohort(cohort):
    """COPY a generated cohort into the clinical tables, creating its centres: no validation and no
    audit rows, about 10x faster than bulk_create (what a benchmark's setup needs, not what it measures)."""
    from django.db import connection

    from registry.cases import TABLE_MODELS
    from registry.models import Centre
    from registry.synthetic import COLUMNS, TABLES

    for code in sorted({row["centre"] for row in cohort["patients"]}):
        Centre.objects.get_or_create(code=code, defaults={"name": f"Synthetic centre {code}"})
    now = datetime.datetime.now(datetime.UTC)
    with connection.cursor() as cursor:
        for table in TABLES:
            model, columns = TABLE_MODELS[table], COLUMNS[table]
            names = ", ".join(f'"{model._meta.get_field(c).column}"' for c in columns)
            status = model._meta.get_field("status").default  # a new record's: in progress
            # A repeating record's REDCap instance: 1, 2, … per patient, as the services number them.
            repeating = any(f.name == "redcap_instance" for f in model._meta.concrete_fields)
            extra = ", redcap_instance" if repeating else ""
            # No missing-data code: the column is required ({} when none), and the cohort gives none.
            coded = "missing_codes" not in columns and any(f.name == "missing_codes" for f in model._meta.concrete_fields)
            extra += ", missing_codes" if coded else ""
            sql = f'COPY "{model._meta.db_table}" ({names}, version, status, created_at, updated_at{extra}) FROM STDIN'
            counts = collections.Counter()
            with cursor.cursor.copy(sql) as copy:
                for row in cohort[table]:
                    counts[row["patient_id"]] += 1
                    copy.write_row([row[c] for c in columns] + [1, status, now, now]
                                   + ([counts[row["patient_id"]]] if repeating else []) + (["{}"] if coded else []))
        cursor.execute("ANALYZE")


def rss_mb():
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    """Resident memory of this process now (MB), from /proc (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


# --- what the PostgreSQL benchmarks of one operation share (bench/freeze.py, bench/paper_pack.py) ---

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def parse_runs_args(description):
    """--patients, --runs and --seed, as every such benchmark takes them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each (the best and the median are printed)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def timed(function):
    """(wall seconds, CPU seconds, result) of one call."""
    started, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - started, time.process_time() - cpu, result


def summary(label, runs):
    """The best and the median of (wall, CPU) runs, as one line."""
    walls = sorted(wall for wall, _cpu in runs)
    best = min(runs)
    return f"{label}: best {best[0]:.2f} s (CPU {best[1]:.2f} s), median {walls[len(walls) // 2]:.2f} s of {len(runs)}"
