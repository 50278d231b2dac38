"""Benchmark of the paper pack: the pack of a freeze of a 10,000-patient registry, against the plain
export of the same freeze in the same run.

    .venv/bin/python bench/paper_pack.py [--patients 10000] [--runs 3]

Creates a scratch PostgreSQL database `registry_bench_paper_pack` on 127.0.0.1 (user postgres, trust
auth), migrates it, loads a synthetic cohort (registry/synthetic/, seed 1, 8 centres) with COPY,
freezes it (not measured) and drops the database at the end. Then, alternately, `runs` times each:

- pack: analysis.paper.pack.paper_pack (what manage.py paper_pack and the dashboard's download run):
  the survival report of the freeze, Table 1 and the Cox tables as .docx and .csv, 12 figures drawn
  at two widths as PDF and SVG, the methods, the de-identified data and the scripts, in one zip;
- baseline: registry.transfer.exporting.dataset_export of the same freeze as CSV (what manage.py
  export_registry --freeze runs): the five tables and the analysis frame in a zip.

Target: the pack of 10,000 patients in <= 15 s. Also printed: where the pack's time goes (the report,
the figures, the rest) in the last run, its size and that every run gave the same SHA-256.
"""
import io
import os
import time

from scratch import ADMIN_URL, copy_cohort, parse_runs_args, scratch_database, setup_django, summary, timed

SCRATCH_DB = "registry_bench_paper_pack"





class Stopwatch:
    """Wall time spent inside some functions of a module, while installed (the last run's breakdown)."""

    def __init__(self, module, names):
        self.module, self.names, self.spent, self.saved = module, names, dict.fromkeys(names, 0.0), {}

    def __enter__(self):
        for name in self.names:
            original = self.saved[name] = getattr(self.module, name)

            def wrapper(*args, _original=original, _name=name, **kwargs):
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.spent[_name] += time.perf_counter() - started
            setattr(self.module, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, original in self.saved.items():
            setattr(self.module, name, original)


def main():
    args = parse_runs_args(__doc__.split("\n\n")[0])
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    database_url = scratch_database(ADMIN_URL, SCRATCH_DB)
    try:
        setup_django(database_url)
        from analysis.paper import figures, pack  # lifelines, matplotlib and python-docx load before the clock
        from registry import access, services, synthetic
        from registry.transfer.exporting import dataset_export

        cohort = synthetic.generate_cohort(patients=args.patients, centres=8, seed=args.seed)
        copy_cohort(cohort)
        freeze = services.freeze_create(user=access.SYSTEM, name="bench")
        print(f"registry: {args.patients:,} patients frozen as '{freeze.name}' ({freeze.content_hash[:16]}…)")

        packs, exports, hashes = [], [], set()
        for run in range(args.runs):
            last = run == args.runs - 1
            with Stopwatch(pack, ["report_from_frame", "frame_with_version"]) as reading, \
                    Stopwatch(figures, ["render"]) as drawing:
                wall, cpu, result = timed(lambda: pack.paper_pack(freeze=freeze, out=io.BytesIO()))
            packs.append((wall, cpu))
            hashes.add(result.sha256)
            wall, cpu, _log = timed(lambda: dataset_export(user=access.SYSTEM, out=io.BytesIO(), file_format="csv",
                                                           freeze=freeze))
            exports.append((wall, cpu))
            print(f"  run {run + 1}: pack {packs[-1][0]:.2f} s, export {exports[-1][0]:.2f} s "
                  f"(load {os.getloadavg()[0]:.1f})")
            if last:
                frame = reading.spent["frame_with_version"]
                report = reading.spent["report_from_frame"]
                drawn = drawing.spent["render"]
                print(f"  last pack: frame {frame:.2f} s, report {report:.2f} s, 24 figures {drawn:.2f} s, "
                      f"the rest {packs[-1][0] - frame - report - drawn:.2f} s; {result.size / 2**20:.1f} MB")
        best_pack, best_export = min(packs)[0], min(exports)[0]
        print(summary("paper pack (paper_pack)", packs) + f" — {'ok' if best_pack <= 15 else 'over'} (target <= 15 s)")
        print(summary("baseline: plain export of the freeze, csv (dataset_export)", exports))
        print(f"ratio pack / export: {best_pack / best_export:.2f} (best runs); "
              f"{'the same' if len(hashes) == 1 else 'DIFFERENT'} SHA-256 in every run")
    finally:
        from django.db import connections

        connections.close_all()
        scratch_database(ADMIN_URL, SCRATCH_DB, create=False)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
