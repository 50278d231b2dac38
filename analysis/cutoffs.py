"""How much a chosen cut-off owes to the search (endpoints.md, "v2 additions"): for each factor
the plan dichotomises at a cut-off a PI can move, the maximally selected log-rank statistic over
the plan's search range (``cutoff_search_range``: quantile proportions of the factor) with its
Lausen-Schumacher adjusted p, beside the chosen cut-off's own statistic (analysis.stats.maxstat).
"""
from analysis import factors, stats
from analysis.plan import ENDPOINTS

# factor id -> (the continuous column it dichotomises, the plan parameter holding the cut-off)
CUTOFF_FACTORS = {
    "size_gt_2cm": ("max_lesion_diameter_mm", "size_cutoff_mm"),
    "tfi_gt_12m": ("tfi_months", "tfi_cutoff_months"),
}
KEYS = ("best_cutoff", "max_stat", "p_adjusted", "chosen_stat", "chosen_p", "search_range", "cutoffs_searched")


def cutoff_search(analysed, data, plan):
    """A row per endpoint and cut-off factor: ``{factor, endpoint, variable, chosen, best_cutoff,
    max_stat, p_adjusted, chosen_stat, chosen_p, search_range, cutoffs_searched, n, events,
    estimable, reason}``. ``data`` is model_data(analysed) (its rows in the same order)."""
    rows = []
    for endpoint in ENDPOINTS:
        for factor, (column, parameter) in CUTOFF_FACTORS.items():
            values = factors.as_float(analysed[column]).reset_index(drop=True)
            chosen = getattr(plan, parameter)
            result = stats.max_logrank(data[f"{endpoint}_months"], data[f"{endpoint}_event"], values,
                                       proportions=plan.cutoff_search_range, chosen=chosen)
            rows.append({"factor": factor, "endpoint": endpoint, "variable": column, "chosen": chosen,
                         **{key: result.get(key) for key in KEYS},
                         "n": result.get("n", 0), "events": result.get("events", 0),
                         "estimable": result["estimable"], "reason": result["reason"]})
    return rows
