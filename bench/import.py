"""Benchmark of the bulk import: a 10,000-patient workbook into an empty PostgreSQL registry.

    .venv/bin/python bench/import.py [--patients 10000] [--baseline-rows 2000] [--keep-file PATH]

Creates a scratch PostgreSQL database `registry_bench_import` on 127.0.0.1 (user postgres, trust
auth), migrates it, and drops it at the end. It writes the workbook with registry.synthetic
(`generate_cohort` + `write_workbook`, the format `generate_cohort --out` writes: new patients named
by local keys, so the registry issues every pseudonym), then times, each in a fresh child process
so that its peak memory is its own:

- import: registry.transfer.importing.file_import of the whole workbook, end to end (file bytes → every
  cell, key, access, model and cross-record check → one committed, audited transaction), --runs
  times into the emptied registry (the best and the median are printed: the machine is shared);
- refused: the same workbook with one bad cell, which must name the cell and write nothing;
- baseline: django-import-export's default row-by-row import (a plain resources.ModelResource per
  model, default settings, import_data) of the first --baseline-rows rows per table, in the same
  run, so the ratio holds on a noisy machine. It cannot issue pseudonyms, so it reads the same
  cohort written with the generator's pseudonyms (`write_workbook(..., pseudonyms=True)`).

Prints rows/s (wall clock), CPU seconds, the time of each import step, and the child's peak
resident memory (resource.getrusage) next to its memory before the import.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scratch
from scratch import current_rss_mb, rss_mb

ROOT = Path(__file__).resolve().parent.parent
SCRATCH_DB = "registry_bench_import"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{SCRATCH_DB}"
BAD_CELL = ("metastasectomies", "side", "middle")  # sheet, column, value; in the middle row of the sheet


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline-rows", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="timed imports (best and median printed)")
    parser.add_argument("--keep-file", help="also save the generated workbook here")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    return parser.parse_args()


def setup_django(migrate=False):
    scratch.setup_django(DATABASE_URL, migrate=migrate)


def postgres_backend_pid():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def process_cpu(pid):
    """CPU seconds (user + system) of a local process, e.g. our PostgreSQL backend; None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def empty_tables():
    from django.db import connection
    from simple_history.utils import get_history_model_for_model

    from registry.dictionary import TABLE_MODELS
    from registry.models import AuditSeal, ImportRun

    tables = [m._meta.db_table for m in TABLE_MODELS.values()]
    tables += [get_history_model_for_model(m)._meta.db_table for m in TABLE_MODELS.values()]
    tables += [ImportRun._meta.db_table, AuditSeal._meta.db_table]  # TRUNCATE passes the append-only triggers
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


# --- child tasks (each in its own process) ----------------------------------------------------

def child_import(path, *, expect_refusal):
    setup_django()
    from registry import access
    from registry.models import Patient
    from registry.transfer.importing import file_import

    data = Path(path).read_bytes()
    backend = postgres_backend_pid()
    before, pg_before = current_rss_mb(), process_cpu(backend)
    cpu, wall = time.process_time(), time.perf_counter()
    report = file_import(user=access.SYSTEM, data=data, filename=Path(path).name)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pg_cpu = process_cpu(backend) - pg_before if pg_before is not None else None
    return {"ok": report.ok, "rows": report.rows, "seconds": wall, "cpu": cpu, "pg_cpu": pg_cpu,
            "pseudonyms_issued": sum(pseudonym is not None for _key, pseudonym, _centre in report.pseudonyms),
            "timings": report.timings,
            "rss_before_mb": before, "peak_rss_mb": rss_mb(), "counts": report.totals(),
            "errors": [e.as_list() for e in report.errors[:5]], "error_count": len(report.errors),
            "patients_in_db": Patient.objects.count(), "expect_refusal": expect_refusal}


def child_baseline(path, rows_per_table):
    """django-import-export's default: one ModelResource per model, import_data row by row."""
    setup_django()
    import python_calamine
    import tablib

    from registry.dictionary import TABLE_MODELS, TABLES

    NullBlankResource = _null_blank_resource()
    empty_tables()
    workbook = python_calamine.CalamineWorkbook.from_path(path)
    sheets = {t: workbook.get_sheet_by_name(t).to_python() for t in TABLES}
    first_patients = {row[0] for row in sheets["patients"][1:rows_per_table + 1]}
    total_rows, total_seconds, per_table = 0, 0.0, {}
    for table in TABLES:
        model = TABLE_MODELS[table]
        header, *rows = sheets[table]
        rows = [r for r in rows if r[0] in first_patients][:rows_per_table]
        # The resource's field names are the model's: the foreign keys are `centre` / `patient`.
        names = ["centre" if h == "centre" else "patient" if (h == "patient_id" and table != "patients") else h
                 for h in header]
        # Default settings except where the defaults cannot store the rows at all: the patients'
        # key is not named `id`, and a blank code must be NULL, not "" (check constraints).
        meta = {"model": model}
        if table == "patients":
            meta["import_id_fields"] = ["patient_id"]
        else:
            names, rows = ["id", *names], [[None, *row] for row in rows]
        dataset = tablib.Dataset(*[[_plain(v) for v in row] for row in rows], headers=names)
        resource_class = type(f"{model.__name__}Resource", (NullBlankResource,), {"Meta": type("Meta", (), meta)})
        started = time.perf_counter()
        result = resource_class().import_data(dataset, dry_run=False)
        seconds = time.perf_counter() - started
        if result.has_errors() or result.has_validation_errors():
            problems = result.base_errors or result.invalid_rows[:1] or [
                (line, [str(e.error) for e in errors]) for line, errors in result.row_errors()[:1]]
            raise SystemExit(f"baseline import of {table} failed: {problems}")
        total_rows += len(rows)
        total_seconds += seconds
        per_table[table] = {"rows": len(rows), "seconds": seconds}
    return {"rows": total_rows, "seconds": total_seconds, "per_table": per_table}


def _null_blank_resource():
    from import_export import resources

    class NullBlankResource(resources.ModelResource):
        @classmethod
        def widget_kwargs_for_field(cls, field_name, django_field):
            kwargs = super().widget_kwargs_for_field(field_name, django_field)
            if django_field.null and django_field.get_internal_type() == "CharField":
                kwargs["allow_blank"] = False  # blank → NULL, as the registry stores unknown
            return kwargs
    return NullBlankResource


def _plain(value):
    if value == "":
        return None
    if value in ("yes", "no"):
        return value == "yes"
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run_child(task, path, extra=()):
    output = subprocess.run([sys.executable, __file__, "--child", task, str(path), *extra],
                            capture_output=True, text=True, cwd=ROOT)
    if output.returncode:
        raise SystemExit(f"{task} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


# --- the benchmark ---------------------------------------------------------------------------

def make_workbooks(patients, seed, directory):
    from registry import synthetic

    started = time.perf_counter()
    cohort = synthetic.generate_cohort(patients=patients, centres=8, seed=seed)
    good = Path(directory) / f"cohort-{patients}.xlsx"
    synthetic.write_workbook(cohort, good)
    named = Path(directory) / f"cohort-{patients}-pseudonyms.xlsx"  # for the baseline
    synthetic.write_workbook(cohort, named, pseudonyms=True)
    table, column, value = BAD_CELL
    index = len(cohort[table]) // 2
    cohort[table][index][column] = value
    bad = Path(directory) / f"cohort-{patients}-one-bad-cell.xlsx"
    synthetic.write_workbook(cohort, bad)
    centres = sorted({row["centre"] for row in cohort["patients"]})
    rows = sum(len(rows) for rows in cohort.values())
    print(f"workbooks: {patients:,} patients, {rows:,} rows over 5 sheets, {good.stat().st_size / 2**20:.1f} MB "
          f"(generated in {time.perf_counter() - started:.0f} s)")
    return good, bad, named, centres, index


def main():
    args = parse_args()
    if args.child:
        task, path = args.child
        if task == "baseline":
            result = child_baseline(path, args.baseline_rows)
        else:
            result = child_import(path, expect_refusal=task == "refused")
        print(json.dumps(result))
        return

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    scratch.scratch_database(ADMIN_URL, SCRATCH_DB)
    try:
        setup_django(migrate=True)
        from registry.models import Centre

        with tempfile.TemporaryDirectory() as directory:
            good, bad, named, centres, bad_index = make_workbooks(args.patients, args.seed, directory)
            if args.keep_file:
                Path(args.keep_file).write_bytes(good.read_bytes())
            for code in centres:
                Centre.objects.get_or_create(code=code, defaults={"name": f"Synthetic centre {code}"})

            refused = run_child("refused", bad)
            assert not refused["ok"] and refused["patients_in_db"] == 0, refused
            table, column, value = BAD_CELL
            assert refused["errors"][0][:4] == [table, bad_index + 2, column, value], refused["errors"]
            print(f"refused:  {refused['rows']:,} rows with one bad cell → {refused['error_count']} error "
                  f"{refused['errors'][0][:4]}, nothing written, in {refused['seconds']:.2f} s "
                  f"({refused['rows'] / refused['seconds']:,.0f} rows/s)")

            runs = []
            for attempt in range(args.runs):  # each into the emptied registry, in a fresh process
                empty_tables()
                result = run_child("import", good)
                assert result["ok"], result["errors"]
                assert result["pseudonyms_issued"] == result["patients_in_db"] == args.patients, result
                runs.append(result)
                steps = ", ".join(f"{step} {seconds:.2f} s" for step, seconds in result["timings"].items())
                pg_cpu = f", {result['pg_cpu']:.2f} s in PostgreSQL" if result["pg_cpu"] is not None else ""
                print(f"import {attempt + 1}: {result['rows']:,} rows in {result['seconds']:.2f} s = "
                      f"{result['rows'] / result['seconds']:,.0f} rows/s (CPU {result['cpu']:.2f} s in Python{pg_cpu}; "
                      f"wall clock per step: {steps}; load {os.getloadavg()[0]:.1f})")
            best = min(runs, key=lambda r: r["seconds"])
            median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            rate = median["rows"] / median["seconds"]
            print(f"import:   best {best['rows'] / best['seconds']:,.0f} rows/s, median {rate:,.0f} rows/s "
                  f"of {len(runs)} runs; peak memory {max(r['peak_rss_mb'] for r in runs):.0f} MB resident "
                  f"(before the import {best['rss_before_mb']:.0f} MB)")

            baseline = run_child("baseline", named, ["--baseline-rows", str(args.baseline_rows)])
            base_rate = baseline["rows"] / baseline["seconds"]
            detail = ", ".join(f"{t} {v['rows'] / v['seconds']:,.0f}" for t, v in baseline["per_table"].items())
            print(f"baseline: django-import-export ModelResource.import_data, {baseline['rows']:,} rows in "
                  f"{baseline['seconds']:.1f} s = {base_rate:,.0f} rows/s ({detail})")
            print(f"ratio:    {rate / base_rate:.0f}x the baseline (median run); target ≥ 10,000 rows/s and ≥ 20x")
    finally:
        from django.db import connections

        connections.close_all()
        scratch.scratch_database(ADMIN_URL, SCRATCH_DB, create=False)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
