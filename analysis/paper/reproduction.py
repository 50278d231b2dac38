"""The paper pack's reproduction scripts (analysis/paper/scripts/): reproduce.R, with the plan's
parameters written into it (base R reads no JSON), and reproduce.py, which reads plan.json."""
import textwrap
from pathlib import Path

from analysis import factors
from analysis.plan import FACTORS

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _r_vector(values):
    """An R vector of strings or numbers, wrapped at 100 characters."""
    items = ", ".join(f'"{v}"' if isinstance(v, str) else f"{v:g}" for v in values)
    return "c(" + "\n  ".join(textwrap.wrap(items, 96, break_long_words=False, break_on_hyphens=False)) + ")"


def r_script(plan):
    """reproduce.R for ``plan``: its parameters as R vectors, then the script."""
    reference = factors.histology_reference(plan)
    histologies = [reference] + [h for h in plan.histologies if h != reference]
    # Histology is a factor when the plan has two or more (its dummies against the reference).
    modelled = [f for f in FACTORS if f != "histology" or len(histologies) > 1]
    covariates = [f for f in plan.multivariable_covariates if f in modelled]
    parameters = "\n".join([
        f"rate_times <- {_r_vector(plan.rate_times_months)}  # rate_times_months",
        f"histologies <- {_r_vector(histologies)}  # histologies, the reference first",
        "# a univariable model each, DFS and OS",
        f"factors <- {_r_vector(modelled)}",
        f"covariates <- {_r_vector(covariates)}  # multivariable_covariates",
        f"multivariable_endpoints <- {_r_vector(plan.multivariable_endpoints)}",
        "# The data's flags (size_gt_2cm, multiple_lesions, tfi_gt_12m, ...) already apply the plan's cut-offs.",
    ])
    return (SCRIPTS / "reproduce.R").read_text().replace("@PLAN@", parameters)


def python_script():
    return (SCRIPTS / "reproduce.py").read_text()
