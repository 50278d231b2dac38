"""Do the statistics tests catch real mistakes? Apply named mistakes (mutants) to analysis/, one at
a time, in a temporary copy of the project, run the statistics tests there, and print a table:
a mutant is "killed" when the tests fail, "SURVIVED" when they pass in spite of the mistake.

    .venv/bin/python bench/mutants.py [--only NAME ...] [--list]

Every mutant below must be killed; the script exits with status 1 otherwise, or when the
unmutated copy does not pass its tests, or when a mutant's source text is no longer found (so a
refactoring cannot silently turn a mutant into a no-op). The R comparisons need Rscript.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/analysis/test_survival.py", "tests/analysis/test_survival_r.py", "tests/analysis/test_cox_r.py",
         "tests/analysis/test_maxstat_r.py", "tests/analysis/test_model_tests_r.py"]

# name -> (file, original text, mistaken text, what the mistake is)
MUTANTS = {
    "logrank-diagonal-covariance": (
        "analysis/stats/logrank.py",
        "    chi2, df = _quadratic_form(observed - expected, covariance)",
        "    chi2, df = _quadratic_form(observed - expected, np.diag(np.diag(covariance)))",
        "log-rank covariance without its off-diagonal terms"),
    "logrank-diagonal-same-df": (
        "analysis/stats/logrank.py",
        "    chi2, df = _quadratic_form(observed - expected, covariance)",
        "    chi2, df = float(((observed - expected)[:-1] ** 2 / np.diag(covariance)[:-1]).sum()), len(labels) - 1",
        "off-diagonal terms dropped, df kept (right for 2 groups only)"),
    "logrank-df-not-reduced": (
        "analysis/stats/logrank.py",
        "    return chi2, int(np.linalg.matrix_rank(covariance, tol=tolerance, hermitian=True))",
        "    return chi2, covariance.shape[0] - 1",
        "log-rank df = groups - 1 even when a group has nobody at risk"),
    "cox-breslow-ties": (
        "analysis/stats/common.py",
        "    frac = k / d[idx]",
        "    frac = 0 * k / d[idx]",
        "Breslow instead of Efron ties"),
    "cox-strata-ignored": (
        "analysis/stats/cox.py",
        "    if strata is None:\n        order = np.argsort(t, kind=\"stable\")",
        "    if True:\n        order = np.argsort(t, kind=\"stable\")",
        "strata pooled into one baseline hazard"),
    "cox-collinearity-unchecked": (
        "analysis/stats/cox.py",
        "            if np.abs(residual).max() <= 1e-9 * scale:",
        "            if False:",
        "a collinear term kept in the model"),
    "cox-separation-undetected": (
        "analysis/stats/cox.py",
        "SEPARATION_LIMIT = 10.0",
        "SEPARATION_LIMIT = 1e6",
        "a diverging fit reported as an ordinary estimate"),
    "firth-score-without-half": (
        "analysis/stats/firth.py",
        "    return loglik + 0.5 * _log_det(info), score + 0.5 * gradient, info",
        "    return loglik + 0.5 * _log_det(info), score + gradient, info",
        "Firth's modified score with the whole, not half, log|I| derivative"),
    "firth-derivative-incomplete": (
        "analysis/stats/cox.py",
        "              - np.einsum(\"rik,rj->ijk\", dmean, mean) - np.einsum(\"ri,rjk->ijk\", mean, dmean))",
        "              - np.einsum(\"rik,rj->ijk\", dmean, mean))",
        "derivative of the information without one of its product terms"),
    "firth-profile-cut-doubled": (
        "analysis/stats/firth.py",
        "    cut = value - stats.chi2.ppf(level, 1) / 2",
        "    cut = value - stats.chi2.ppf(level, 1)",
        "Firth profile interval cut at chi2 instead of chi2 / 2 below the maximum"),
    "km-plain-ci": (
        "analysis/stats/km.py",
        "    lower, upper = band(surv, se_log, _z(alpha))",
        "    lower, upper = surv - _z(alpha) * surv * se_log, np.minimum(surv + _z(alpha) * surv * se_log, 1)",
        "plain instead of log(-log) confidence band"),
    "km-greenwood-wrong": (
        "analysis/stats/km.py",
        "        terms = np.where(d > 0, d / (n * (n - d)), 0.0)",
        "        terms = np.where(d > 0, d / (n * n), 0.0)",
        "Greenwood variance with n^2 instead of n(n - d)"),
    "km-undefined-bound-zero": (
        "analysis/stats/km.py",
        "        upper = np.exp(-np.exp(np.log(-log_s) - half_width))\n"
        "    lower[undefined], upper[undefined] = np.nan, np.nan",
        "        upper = np.exp(-np.exp(np.log(-log_s) - half_width))\n"
        "    lower[undefined], upper[undefined] = 0.0, 0.0",
        "an undefined log(-log) bound reported as 0"),
    "km-median-first-time": (
        "analysis/stats/km.py",
        "    return _num((x[lower] + x[upper]) / 2)",
        "    return _num(x[lower])",
        "median at the first S <= 0.5, no midpoint where S = 0.5 exactly"),
    "reverse-km-not-reversed": (
        "analysis/stats/km.py",
        "    km = kaplan_meier(t, 1 - e, alpha=alpha, ci_transform=ci_transform)",
        "    km = kaplan_meier(t, e, alpha=alpha, ci_transform=ci_transform)",
        "median follow-up by the KM of the deaths instead of the reverse KM"),
    "maxstat-binomial-variance": (
        "analysis/stats/maxstat.py",
        "    weight = deaths * (at_risk - deaths) / (at_risk ** 2 * np.where(at_risk > 1, at_risk - 1, 1))",
        "    weight = deaths / at_risk ** 2",
        "cut-off statistic without the hypergeometric correction for ties"),
    "lausen-schumacher-term-dropped": (
        "analysis/stats/maxstat.py",
        "    p = 4 * density / b + density",
        "    p = density",
        "Lausen-Schumacher p without its 4 phi(b) / b term"),
    "global-test-diagonal-wald": (
        "analysis/model_tests.py",
        "    variance = np.array(fit[\"covariance\"])[np.ix_(index, index)]",
        "    variance = np.diag(np.diag(np.array(fit[\"covariance\"])[np.ix_(index, index)]))",
        "global Wald test ignoring the covariance between histology terms"),
}


def copy_project(target):
    """The working tree (tracked and untracked files, not ignored ones) into ``target``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in files:
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_tests(copy):
    """None when the statistics tests pass in ``copy``, else the first failing test (or error)."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                          "-rfE", *TESTS], cwd=copy, capture_output=True, text=True)
    if run.returncode == 0:
        return None
    failed = [line.split(" ", 1)[1] for line in run.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return (failed[0].split(" - ")[0].rsplit("/", 1)[-1] if failed else f"pytest exit {run.returncode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(MUTANTS), help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    names = args.only or list(MUTANTS)
    if args.list:
        for name in names:
            print(f"{name:32} {MUTANTS[name][0]:28} {MUTANTS[name][3]}")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutants-") as folder:
        copy = Path(folder)
        copy_project(copy)
        failing = run_tests(copy)
        if failing:
            print(f"The unmutated copy fails its tests ({failing}): fix them first.")
            return 1
        print(f"{'mutant':32} {'result':9} {'s':>5}  {'mistake':66} first failing test", flush=True)
        survived = 0
        for name in names:
            path, original, mistaken, what = MUTANTS[name]
            source = (copy / path).read_text()
            if source.count(original) != 1:
                print(f"{name:32} {'NOT FOUND':9} {'':>5}  the original text is not once in {path}")
                survived += 1
                continue
            (copy / path).write_text(source.replace(original, mistaken))
            started = time.perf_counter()
            failing = run_tests(copy)
            (copy / path).write_text(source)
            survived += failing is None
            print(f"{name:32} {'killed' if failing else 'SURVIVED':9} {time.perf_counter() - started:5.1f}  "
                  f"{what:66} {failing or ''}", flush=True)
        print(f"{len(names) - survived} of {len(names)} mutants killed")
        return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
