"""Recomputes the paper's survival estimates from data/analysis_data.csv with lifelines: medians with
95% CI and survival at the plan's times (Kaplan-Meier, log(-log) CI), and every univariable and
multivariable Cox hazard ratio (Efron ties, Wald CI and p). Writes them to reproduced.json with the
keys of report.json. Run in this folder: python reproduce.py (needs pandas and lifelines)."""
import json
import math

import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import median_survival_times

FACTORS = ["size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology", "sex_male", "age_per_10y", "grade_G3",
           "bilateral", "peri_pm_systemic", "synchronous"]  # a univariable model each, DFS and OS
with open("plan.json") as file:
    plan = json.load(file)  # the data's flags (size_gt_2cm, ...) already apply its cut-offs
reference = "LMS" if "LMS" in plan["histologies"] else plan["histologies"][0]

d = pd.read_csv("data/analysis_data.csv", comment="#")
d = d[d["eligible"] == 1]
# The factors the Cox models read, derived as the registry derives them (analysis/factors.py).
d = d.assign(sex_male=d["sex"].map({"male": 1.0, "female": 0.0}), age_per_10y=d["age_at_pm"] / 10,
             grade_G3=d["grade"].map({"G3": 1.0, "G1": 0.0, "G2": 0.0}),
             **{f"histology_{h}": (d["histology"] == h).astype(float) for h in plan["histologies"] if h != reference})


def number(x):
    """A JSON number to 7 significant digits (R's printed precision), None where not estimable."""
    return float(f"{x:.7g}") if x is not None and math.isfinite(x) else None


def endpoint(e):
    t, event = d[f"{e}_months"], d[f"{e}_event"]
    km = KaplanMeierFitter().fit(t, event)  # CI: log(-log) ("exponential Greenwood"), as R conf.type="log-log"
    band = km.confidence_interval_survival_function_
    rates = []
    for month in plan["rate_times_months"]:
        known = month <= t.max()  # nothing beyond the last observed time
        survival = km.survival_function_.loc[:month].iloc[-1, 0] if known else None
        low, high = band.loc[:month].iloc[-1] if known else (None, None)
        rates.append({"months": month, "survival": number(survival), "ci95": [number(low), number(high)]})
    return {"n": len(t), "events": int(event.sum()), "median_months": number(km.median_survival_time_),
            "median_ci95": [number(x) for x in median_survival_times(band).iloc[0]], "rates": rates}


def cox(e, factors):
    columns = [c for f in factors for c in ([f"histology_{h}" for h in plan["histologies"] if h != reference]
                                            if f == "histology" else [f])]
    if not columns:  # histology, when the plan has only one
        return []
    data = d[[f"{e}_months", f"{e}_event", *columns]].dropna()  # complete cases
    # Efron ties; converged as far as R's coxph converges (lifelines stops at 1e-7 by default)
    fit = CoxPHFitter().fit(data, f"{e}_months", f"{e}_event", fit_options={"precision": 1e-10})
    s = fit.summary
    return [{"endpoint": e, "factor": c, "n": len(data), "events": int(data[f"{e}_event"].sum()),
             "hr": number(s.loc[c, "exp(coef)"]), "p": number(s.loc[c, "p"]),
             "ci95": [number(s.loc[c, "exp(coef) lower 95%"]), number(s.loc[c, "exp(coef) upper 95%"])]}
            for c in columns]


result = {
    "endpoints": {e: endpoint(e) for e in ("dfs", "os")},
    "univariable": [row for e in ("dfs", "os") for f in FACTORS for row in cox(e, [f])],
    "multivariable": [{"endpoint": e, "n": terms[0]["n"], "events": terms[0]["events"],
                       "terms": [{k: t[k] for k in ("factor", "hr", "ci95", "p")} for t in terms]}
                      for e in plan["multivariable_endpoints"] for terms in [cox(e, plan["multivariable_covariates"])]],
}
with open("reproduced.json", "w") as file:
    json.dump(result, file, indent=1)
print("Wrote reproduced.json: compare it with report.json (endpoints, univariable, multivariable).")
