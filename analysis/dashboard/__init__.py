"""The survival dashboard's computation: everything that is not a view (analysis/dashboard/views.py only
parses the request and renders). Plain data throughout:

- compute.py  plan controls (a GET form), the cache, the report and the Kaplan-Meier strata;
- figures.py  the data of each figure for analysis/plots.py, and the page's figures drawn;
- tables.py   display rows for the templates, CSV and JSON downloads.

Cache: one entry per (kind, plan hash, data version, scope) in Django's default cache (Redis when
REDIS_URL is set, else local memory). The data version of the scope's centres changes with every
write to one of their clinical records (registry.selectors.data_version), so a new version is a
new key, and another centre's writes leave a one-centre view's entries in use: entries are never
invalidated, they simply stop being asked for and expire. A data freeze (?freeze=NAME) never
changes: its entries are keyed by the freeze and its own version (registry.selectors.freeze_version).
Three kinds of entries:
- "report": the survival report (analysis/report.py) under the plan;
- "strata:<factor>:<min stratum>": Kaplan-Meier per group of one factor, with the k-group log-rank;
- "figures:<factor>:<min stratum>": the page's SVG figures drawn from those two.
The scope is the set of centres the results pool ("all" or e.g. "HD+MUC"), never the user: two
users who may see the same centres share the entry, and the report is computed for the centres
(user=None) once access.py has decided which centres those are (analysis/dashboard/views.py).
"""
from analysis.dashboard.compute import (  # noqa: F401 (the package's interface)
    CACHE_PREFIX,
    RISK_TIMES,
    STRATA,
    STRATIFY,
    ControlsForm,
    cache_key,
    controls,
    figure_options,
    min_stratum,
    poll_seconds,
    report_from_frame,
    results,
    scope_key,
    strata_for,
    version_key,
)
from analysis.dashboard.figures import (  # noqa: F401
    FIGURES,
    figure,
    forest_figure,
    km_figure,
    km_summary_rows,
    page_figures,
    strata_note,
)
from analysis.dashboard.tables import (  # noqa: F401
    CSV_TABLES,
    csv_rows,
    csv_text,
    endpoint_rows,
    json_text,
    multivariable_rows,
    percent,
    plan_changes,
    scope_label,
    subgroup_rows,
    table1_rows,
    term_label,
    univariable_rows,
)
