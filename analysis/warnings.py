"""Warnings a report carries beside its numbers: a top-level ``warnings`` list of
``{code, message, model}`` (endpoints.md, "v2 additions").

Every part of the report that finds something a reader must know before trusting a number
(too few events per variable, a Firth estimate under separation, a failing PH test, ...) calls
``warn`` with the report it is building, so the codes live in one list whatever module adds them.

    warn(report, "low_epv", "DFS multivariable: 3.2 events per variable (< 10)", "multivariable dfs")
"""

CODES = {
    "low_epv": "fewer than 10 events per variable in a Cox model",
    "separation_firth": "the ordinary Cox fit diverged (separation); a Firth-penalised estimate is shown",
    "aliased_term": "a term was dropped from a Cox model (no variation, or a linear combination of others)",
    "ph_violated": "a scaled Schoenfeld test rejects proportional hazards for a term",
    "immortal_time_bias": "an exposure that starts after the index date is counted from the index date",
    "event_at_time_zero": "an event is dated on the index date (time 0): a data-quality question",
}


def warn(report, code, message, model=None):
    """Append ``{code, message, model}`` to ``report["warnings"]`` (created when absent), once.

    ``model`` names the model or result the warning is about (e.g. "univariable dfs size_gt_2cm");
    None for the report as a whole. The same warning twice is recorded once.
    """
    entry = {"code": str(code), "message": str(message), "model": None if model is None else str(model)}
    warnings = report.setdefault("warnings", [])
    if entry not in warnings:
        warnings.append(entry)
    return entry
