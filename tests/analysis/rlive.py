"""Run R's `survival` package live on the data a test generates, and read back what it computed.

    r = rscript('''
        fit <- survdiff(Surv(t, e) ~ g, data = d)
        result <- list(chisq = fit$chisq, df = length(fit$n) - 1)
    ''', d=frame)
    r["chisq"]

Each keyword argument is a DataFrame written as CSV and read into R under that name
(``read.csv``; its path is ``<name>_path``); the code runs after ``library(survival)`` and must leave a named list in
``result``. R writes it as JSON with the small writer below (jsonlite is not a Debian base
package): named lists become objects, unnamed lists and vectors of length != 1 arrays (wrap a
vector in ``I()`` to keep it an array at length 1), NA/NaN/Inf become null, numbers are printed
with 17 significant digits.

Without Rscript the calling test is skipped, unless the environment variable CI is set: then
it fails, so a CI machine without R cannot pass by skipping every comparison.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

JSON_WRITER = r"""
.json <- function(x) {
  if (is.null(x)) return("null")
  if (is.matrix(x)) return(.json(lapply(seq_len(nrow(x)), function(i) I(as.vector(x[i, ])))))
  if (is.list(x)) {
    inner <- vapply(x, .json, "")
    if (length(x) > 0 && !is.null(names(x)) && all(names(x) != ""))
      return(paste0("{", paste0('"', names(x), '":', inner, collapse = ","), "}"))
    return(paste0("[", paste(inner, collapse = ","), "]"))
  }
  keep_array <- inherits(x, "AsIs") || length(x) != 1
  if (is.factor(x)) x <- as.character(x)
  if (is.character(x)) {
    v <- ifelse(is.na(x), "null", paste0('"', gsub('"', '\\\\"', x), '"'))
  } else if (is.logical(x)) {
    v <- ifelse(is.na(x), "null", ifelse(x, "true", "false"))
  } else {
    x <- as.numeric(x)
    v <- ifelse(is.finite(x), sprintf("%.17g", x), "null")
  }
  if (keep_array) paste0("[", paste(v, collapse = ","), "]") else v
}
"""


def r_available():
    return shutil.which("Rscript") is not None


def require_r():
    """Skip (or, under CI, fail) when R is not installed."""
    if r_available():
        return
    if os.environ.get("CI"):
        pytest.fail("CI is set but Rscript is missing: apt-get install r-base-core r-cran-survival")
    pytest.skip("Rscript is not installed (apt-get install r-base-core r-cran-survival): "
                "the live comparisons with R survival are skipped")


def rscript(code, **frames):
    """Run ``code`` in R with ``library(survival)`` and each frame loaded; return its ``result``."""
    require_r()
    with tempfile.TemporaryDirectory(prefix="rlive-") as folder:
        folder = Path(folder)
        loads = []
        for name, frame in frames.items():
            frame.to_csv(folder / f"{name}.csv", index=False, na_rep="NA")
            loads.append(f'{name}_path <- "{folder / name}.csv"')  # for code that reads it itself
            loads.append(f'{name} <- read.csv({name}_path, stringsAsFactors = FALSE)')
        script = "\n".join([
            "suppressPackageStartupMessages(library(survival))",
            "options(warn = 1)",
            JSON_WRITER,
            *loads,
            code,
            f'writeLines(.json(result), "{folder / "result.json"}")',
        ])
        (folder / "script.R").write_text(script)
        run = subprocess.run(["Rscript", "--vanilla", str(folder / "script.R")],
                             capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            raise AssertionError(f"R failed ({run.returncode}):\n{run.stderr}\n--- script ---\n{code}")
        return json.loads((folder / "result.json").read_text())
