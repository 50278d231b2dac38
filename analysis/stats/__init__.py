"""Survival statistics as pure functions over arrays and DataFrames, checked against R ``survival``
(see shared/spec/reference-values.md and tests/analysis/test_survival.py).

- km: Kaplan-Meier (lifelines fits the curve; bands and medians as R survfit), reverse-KM follow-up
- logrank: the log-rank test (numpy; = R survdiff)
- cox: Cox proportional hazards, Efron ties, strata (the registry's own Newton-Raphson; = R coxph);
  firth: Firth's penalised fit when the ordinary one diverges (separation)
- maxstat: maximally selected log-rank statistic over cut-offs, Lausen-Schumacher adjusted p

Durations are in whatever unit the caller passes (the registry uses months). Every function
returns plain, JSON-serialisable data with ``estimable`` and ``reason``; degenerate input gives
``estimable: False`` and a reason, never an exception or a meaningless estimate. Nothing here
imports Django.
"""
from analysis.stats.cox import cox
from analysis.stats.km import CI_TRANSFORMS, kaplan_meier, reverse_km_median
from analysis.stats.logrank import logrank
from analysis.stats.maxstat import max_logrank

__all__ = ["CI_TRANSFORMS", "cox", "kaplan_meier", "logrank", "max_logrank", "reverse_km_median"]
