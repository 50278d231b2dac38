"""Cox fits for the report, with the checks a reader needs beside the numbers.

Every Cox model of the report goes through ``fit_cox``: it fits (analysis.stats.cox) and, given
the report being built, records in its ``warnings`` (analysis.warnings):

- ``low_epv``: fewer than 10 events per estimated term (Peduzzi et al. 1996; Vittinghoff &
  McCulloch 2007): coefficients are biased away from 0 and their intervals are unreliable;
- ``separation_firth``: the ordinary fit diverged, the numbers are Firth-penalised estimates;
- ``aliased_term``: a term was dropped (no variation, or collinear with the others).

The model is still fitted and shown in every case.
"""
from django.utils.translation import gettext as _

from analysis import stats
from analysis.warnings import warn

EPV_MINIMUM = 10


def fit_cox(data, endpoint, columns, *, report=None, model=None, strata=None):
    """The Cox model of ``endpoint`` on ``columns`` (complete cases), its warnings added to ``report``."""
    fit = stats.cox(data, f"{endpoint}_months", f"{endpoint}_event", columns, strata=strata, concordance=False)
    if report is not None and fit["estimable"]:
        check_fit(report, fit, model or f"{endpoint} {' + '.join(columns)}")
    return fit


def estimated_terms(fit):
    """Names of the terms a fit estimated (not dropped), in the order of its covariance matrix."""
    return [term["term"] for term in fit.get("terms", []) if not term.get("dropped")]


def check_fit(report, fit, model):
    parameters = len(estimated_terms(fit))
    epv = fit["events"] / parameters
    if epv < EPV_MINIMUM:
        warn(report, "low_epv",
             _("%(model)s: %(epv).1f events per variable (%(events)d events, %(terms)d terms; at least "
               "%(minimum)d are needed): hazard ratios may be biased and their intervals unreliable.")
             % {"model": model, "epv": epv, "events": fit["events"], "terms": parameters, "minimum": EPV_MINIMUM},
             model)
    if fit["separation"]:
        warn(report, "separation_firth",
             _("%(model)s: the ordinary Cox fit diverged (separation: a hazard ratio running to 0 or infinity); "
               "the estimates shown are Firth-penalised.") % {"model": model}, model)
    for dropped in fit["dropped"]:
        warn(report, "aliased_term",
             _("%(model)s: %(term)s was left out of the model: %(reason)s.")
             % {"model": model, "term": dropped["term"], "reason": dropped["reason"]}, model)
