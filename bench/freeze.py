"""Benchmark of data freezes: freezing a 10,000-patient registry, against the plain export of the
same registry in the same run.

    .venv/bin/python bench/freeze.py [--patients 10000] [--runs 3]

Creates a scratch PostgreSQL database `registry_bench_freeze` on 127.0.0.1 (user postgres, trust
auth), migrates it, loads a synthetic cohort (registry/synthetic/, seed 1, 8 centres) with COPY
(the fast path: no validation, no audit rows; only the freeze is measured), and drops the database
at the end. Then, alternately, `runs` times each:

- freeze: registry.services.freeze_create (what manage.py freeze_create runs): the registry read
  in one REPEATABLE READ snapshot, every case serialised canonically and hashed, the freeze and
  its 10,000 frozen cases written, and sealed into the audit chain when it commits;
- baseline: registry.transfer.exporting.dataset_export as CSV (what manage.py export_registry
  runs), which reads the same rows in one snapshot and writes them (and the analysis frame) to a
  zip archive.

Target: a freeze of 10,000 patients in <= 5 s. Also printed: the size of what a freeze stores, and
the time to read a freeze back into the analysis frame against reading the live registry.
"""
import io
import os

from scratch import ADMIN_URL, copy_cohort, parse_runs_args, scratch_database, setup_django, summary, timed

SCRATCH_DB = "registry_bench_freeze"




def stored_bytes(freeze):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), sum(pg_column_size(data)), pg_total_relation_size('registry_frozencase') "
                       "FROM registry_frozencase WHERE freeze_id = %s", [freeze.pk])
        return cursor.fetchone()



def main():
    args = parse_runs_args(__doc__.split("\n\n")[0])
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    database_url = scratch_database(ADMIN_URL, SCRATCH_DB)
    try:
        setup_django(database_url)
        import analysis.frame  # noqa: F401  (pandas is imported before the clock starts)
        from analysis.frame import analysis_frame
        from registry import access, services, synthetic
        from registry.transfer.exporting import dataset_export

        cohort = synthetic.generate_cohort(patients=args.patients, centres=8, seed=args.seed)
        copy_cohort(cohort)
        rows = sum(len(cohort[table]) for table in synthetic.TABLES)
        print(f"registry: {args.patients:,} patients, {rows:,} rows in the five tables")

        freezes, exports = [], []
        for run in range(args.runs):
            wall, cpu, freeze = timed(lambda n=run: services.freeze_create(user=access.SYSTEM, name=f"bench-{n}"))
            freezes.append((wall, cpu))
            wall, cpu, _log = timed(lambda: dataset_export(user=access.SYSTEM, out=io.BytesIO(), file_format="csv"))
            exports.append((wall, cpu))
            print(f"  run {run + 1}: freeze {freezes[-1][0]:.2f} s, export {exports[-1][0]:.2f} s "
                  f"(load {os.getloadavg()[0]:.1f})")
        best_freeze, best_export = min(freezes)[0], min(exports)[0]
        print(summary("freeze (freeze_create)", freezes) + f" — {'ok' if best_freeze <= 5 else 'over'} (target <= 5 s)")
        print(summary("baseline: plain export, csv (dataset_export)", exports))
        print(f"ratio freeze / export: {best_freeze / best_export:.2f} (best runs)")
        cases, data_bytes, table_bytes = stored_bytes(freeze)
        print(f"stored per freeze: {cases:,} frozen cases, {data_bytes / 2**20:.1f} MB of canonical text "
              f"({data_bytes / cases:.0f} bytes a patient); the table with its index, all {args.runs} freezes: "
              f"{table_bytes / 2**20:.1f} MB; content hash {freeze.content_hash[:16]}…")
        live = min(timed(lambda: analysis_frame())[0] for _ in range(args.runs))
        frozen = min(timed(lambda: analysis_frame(freeze=freeze))[0] for _ in range(args.runs))
        print(f"analysis frame: from the freeze {frozen:.2f} s, from the live registry {live:.2f} s (best of "
              f"{args.runs})")
    finally:
        from django.db import connections

        connections.close_all()
        scratch_database(ADMIN_URL, SCRATCH_DB, create=False)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
