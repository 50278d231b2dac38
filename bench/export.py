"""Benchmark of the dataset export: 10,000 patients in each format, time and peak memory.

    .venv/bin/python bench/export.py [--patients 10000] [--compare main]

Creates a scratch PostgreSQL database `registry_bench_export_<pid>` on 127.0.0.1 (user postgres,
trust auth), migrates it, loads a synthetic cohort (registry/synthetic/) through the bulk import, and
drops the database at the end. Each export (`registry.transfer.exporting.dataset_export`, the code behind
`manage.py export_registry` and the download page) runs in a fresh child process, so the peak
resident memory printed is that export's own; the time spent writing the REDCap files and odm.xml
is printed apart. The baseline of the same run is the time to read the five tables with a raw
cursor: the floor for any export of these rows. With `--compare REF` every export also runs with
the code of the git commit REF (extracted to a temporary folder, same database and packages), the
runs alternating, to tell a change from the machine's noise.
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scratch
from scratch import current_rss_mb, rss_mb

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RUNS = [("csv", "none"), ("xlsx", "none"), ("dta", "none"), ("sav", "none"), ("csv", "shift-dates"),
        ("dta", "intervals")]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=2, help="runs per export (the best is printed)")
    parser.add_argument("--compare", metavar="REF", help="also run every export with the code of this git commit")
    parser.add_argument("--child", nargs=2, metavar=("FORMAT", "DEIDENTIFY"), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    return parser.parse_args()


def database_url(name):
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def timed(function, times):
    """`function`, adding the wall-clock and CPU seconds of each call to times [wall, cpu]."""
    def call(*args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[0] += time.perf_counter() - wall
            times[1] += time.process_time() - cpu
    return call


def child_export(file_format, deidentify, database, code):
    if code:
        scratch.ROOT = Path(code)  # the registry's code is imported from there
    scratch.setup_django(database_url(database), migrate=False)
    import analysis.frame  # noqa: F401  (imported up front: pandas' import is not the export's time)
    from registry import access
    from registry.transfer.exporting import dataset_export, odm, redcap_files

    redcap, odm_times = [0.0, 0.0], [0.0, 0.0]
    redcap_files.write_redcap_files = timed(redcap_files.write_redcap_files, redcap)
    odm.write_odm = timed(odm.write_odm, odm_times)
    before = current_rss_mb()
    sink = Path(tempfile.gettempdir()) / f"bench-export-{os.getpid()}.zip"
    cpu, wall = time.process_time(), time.perf_counter()
    with sink.open("wb") as handle:
        log = dataset_export(user=access.SYSTEM, out=handle, file_format=file_format, deidentify=deidentify)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sink.stat().st_size
    sink.unlink()
    return {"seconds": wall, "cpu": cpu, "rss_before_mb": before, "peak_rss_mb": rss_mb(), "bytes": size,
            "rows": sum(log.counts.values()), "redcap": redcap, "odm": odm_times}


def extract(ref):
    """The code of git commit `ref` in a new temporary folder."""
    folder = tempfile.mkdtemp(prefix="bench-export-code-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def raw_scan_seconds():
    """The baseline: fetch every row of the five tables with a plain cursor."""
    from django.db import connection

    from registry.dictionary import TABLE_MODELS

    started = time.perf_counter()
    rows = 0
    with connection.cursor() as cursor:
        for model in TABLE_MODELS.values():
            cursor.execute(f"SELECT * FROM {model._meta.db_table}")
            rows += len(cursor.fetchall())
    return rows, time.perf_counter() - started


def load_cohort(patients, seed):
    from registry import access, synthetic
    from registry.models import Centre
    from registry.transfer.exporting import xlsx
    from registry.transfer.importing import file_import

    # New patients, named by local keys: the registry issues their pseudonyms.
    cohort = synthetic.local_keys(synthetic.generate_cohort(patients=patients, centres=8, seed=seed))
    for code in sorted({row["centre"] for row in cohort["patients"]}):
        Centre.objects.get_or_create(code=code, defaults={"name": f"Synthetic centre {code}"})
    buffer = io.BytesIO()
    cell = lambda v: ("yes" if v else "no") if isinstance(v, bool) else v  # noqa: E731
    columns = {t: synthetic.import_columns(t) for t in synthetic.TABLES}
    xlsx.write_package(buffer, [(t, columns[t], [[cell(r[c]) for c in columns[t]] for r in cohort[t]])
                                for t in synthetic.TABLES])
    report = file_import(user=access.SYSTEM, data=buffer.getvalue(), filename="bench.xlsx")
    assert report.ok, report.errors[:3]
    return report.rows


def main():
    args = parse_args()
    if args.child:
        print(json.dumps(child_export(*args.child, args.database, args.code)))
        return
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    database = f"registry_bench_export_{os.getpid()}"
    codes = {"this code": None}
    if args.compare:
        codes[args.compare] = extract(args.compare)
    scratch.scratch_database(ADMIN_URL, database)
    try:
        scratch.setup_django(database_url(database), migrate=True)
        rows = load_cohort(args.patients, args.seed)
        scanned, scan = raw_scan_seconds()
        print(f"registry: {args.patients:,} patients, {rows:,} rows; baseline raw cursor scan of the five "
              f"tables {scan:.2f} s")
        for file_format, deidentify in RUNS:
            results = {name: [] for name in codes}
            for _attempt in range(args.runs):
                for name, code in codes.items():
                    output = subprocess.run([sys.executable, __file__, "--child", file_format, deidentify,
                                             "--database", database, *(["--code", code] if code else [])],
                                            capture_output=True, text=True, cwd=ROOT)
                    if output.returncode:
                        raise SystemExit(output.stderr[-3000:])
                    results[name].append(json.loads(output.stdout.strip().splitlines()[-1]))
            for name in codes:
                result = min(results[name], key=lambda r: r["seconds"])
                verdict = "ok" if result["seconds"] <= 5 else "over 5 s"
                print(f"export {file_format:4} {deidentify:11}{f' ({name})' if args.compare else ''}: "
                      f"{result['seconds']:5.2f} s best of {args.runs} ({verdict}; CPU {result['cpu']:.2f} s; "
                      f"load {os.getloadavg()[0]:.1f}), {result['bytes'] / 2**20:4.1f} MB zip, "
                      f"peak memory {result['peak_rss_mb']:.0f} MB (before {result['rss_before_mb']:.0f} MB); "
                      f"of it REDCap files {result['redcap'][0]:.2f} s (CPU {result['redcap'][1]:.2f}), "
                      f"odm.xml {result['odm'][0]:.2f} s (CPU {result['odm'][1]:.2f})")
    finally:
        from django.db import connections

        connections.close_all()
        scratch.scratch_database(ADMIN_URL, database, create=False)
        for code in codes.values():
            if code:
                shutil.rmtree(code)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
