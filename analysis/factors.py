"""The study's factors, one entry each: the id reports and API clients use, how the factor is
derived from the analysis frame, and how a person reads it, with the plan's actual cut-off.

The ids are stable names, kept for API users whatever the plan says: ``size_gt_2cm`` is "largest
lesion > size_cutoff_mm", which is 20 mm under the defaults of endpoints.md and 30 mm under a
plan that moves the cut-off. Every label, title and group name shows the real value
("Largest lesion > 30 mm"), and they are all made here.

    factors.label("size_gt_2cm", plan)    # "Largest lesion > 30 mm"
    factors.levels("size_gt_2cm", plan)   # ("≤ 30 mm", "> 30 mm"): the two groups of a curve
    factors.title("size_gt_2cm", plan)    # "lesion size (30 mm)": "DFS by lesion size (30 mm)"
    factors.model_columns(analysed, plan) # every factor as the Cox models read it (1.0 / 0.0 / NaN)
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.utils.translation import gettext as _

REFERENCE_HISTOLOGY = "LMS"


def cut_text(value):
    """A cut-off as a person writes it (20, not 20.0)."""
    return f"{value:g}"


_cut = cut_text


@dataclass(frozen=True)
class Factor:
    id: str
    label: object            # plan -> the factor as a table row says it
    levels: object = None    # plan -> (no, yes) group names of a binary factor
    title: object = None     # plan -> the factor in a figure title ("DFS by ...")


def _lesions(cut):
    return _("%(n)s lesion") % {"n": cut} if cut == 1 else _("%(n)s lesions") % {"n": cut}


FACTORS = {factor.id: factor for factor in (
    Factor("size_gt_2cm",
           label=lambda plan: _("Largest lesion > %(cut)s mm") % {"cut": _cut(plan.size_cutoff_mm)},
           levels=lambda plan: (f"≤ {_cut(plan.size_cutoff_mm)} mm", f"> {_cut(plan.size_cutoff_mm)} mm"),
           title=lambda plan: _("lesion size (%(cut)s mm)") % {"cut": _cut(plan.size_cutoff_mm)}),
    Factor("multiple_lesions",
           label=lambda plan: _("> %(lesions)s resected") % {"lesions": _lesions(plan.lesions_cutoff)},
           levels=lambda plan: (f"≤ {_lesions(plan.lesions_cutoff)}", f"> {_lesions(plan.lesions_cutoff)}"),
           title=lambda plan: _("number of lesions (%(cut)s)") % {"cut": plan.lesions_cutoff}),
    Factor("tfi_gt_12m",
           label=lambda plan: _("Treatment-free interval > %(cut)s months") % {"cut": _cut(plan.tfi_cutoff_months)},
           levels=lambda plan: (_("TFI ≤ %(cut)s months") % {"cut": _cut(plan.tfi_cutoff_months)},
                                _("TFI > %(cut)s months") % {"cut": _cut(plan.tfi_cutoff_months)}),
           title=lambda plan: _("treatment-free interval (%(cut)s months)") % {"cut": _cut(plan.tfi_cutoff_months)}),
    Factor("histology", label=lambda plan: _("Histology"), title=lambda plan: _("histology")),
    Factor("sex_male", label=lambda plan: _("Male vs female")),
    Factor("age_per_10y", label=lambda plan: _("Age at PM (per 10 years)")),
    Factor("grade_G3", label=lambda plan: _("Grade G3 vs G1/G2")),
    Factor("bilateral", label=lambda plan: _("Bilateral metastases")),
    Factor("peri_pm_systemic", label=lambda plan: _("Peri-PM systemic therapy"),
           levels=lambda plan: (_("no peri-PM therapy"), _("peri-PM therapy")),
           title=lambda plan: _("peri-PM systemic therapy")),
    Factor("synchronous",
           label=lambda plan: _("Synchronous (disease-free interval ≤ %(cut)s months)")
           % {"cut": _cut(plan.synchronous_cutoff_months)}),
)}

# The factors measured against a cut-off of the plan, and how the frame derives them from its
# columns (endpoints.md): a cut-off compares with ">", the synchronous one with "<=".
CUT_OFFS = {
    "size_gt_2cm": lambda frame, plan: frame["max_lesion_diameter_mm"] > plan.size_cutoff_mm,
    "multiple_lesions": lambda frame, plan: frame["lesions_resected"].fillna(0) > plan.lesions_cutoff,
    "tfi_gt_12m": lambda frame, plan: frame["tfi_months"] > plan.tfi_cutoff_months,
    "synchronous": lambda frame, plan: frame["dfi_months"] <= plan.synchronous_cutoff_months,
}


def label(factor_id, plan):
    """A factor or a Cox term ("histology_SyS") as a table row says it."""
    if factor_id.startswith("histology_"):
        return _("%(histology)s vs %(reference)s") % {"histology": factor_id.removeprefix("histology_"),
                                                      "reference": histology_reference(plan)}
    factor = FACTORS.get(factor_id)
    return factor.label(plan) if factor else factor_id


def levels(factor_id, plan):
    return FACTORS[factor_id].levels(plan)


def title(factor_id, plan):
    factor = FACTORS.get(factor_id)
    return factor.title(plan) if factor and factor.title else None


def histology_reference(plan):
    return REFERENCE_HISTOLOGY if REFERENCE_HISTOLOGY in plan.histologies else plan.histologies[0]


def columns(factor_id, plan):
    """The model columns a factor stands for ("histology" -> one dummy per other histology)."""
    if factor_id == "histology":
        reference = histology_reference(plan)
        return [f"histology_{h}" for h in plan.histologies if h != reference]
    return [factor_id]


def as_float(series):
    """A nullable column as float 1.0 / 0.0 / NaN (what the Cox model reads)."""
    return pd.to_numeric(series.astype(object).where(series.notna(), np.nan), errors="coerce").astype(float)


def model_columns(analysed, plan):
    """Every factor's model columns, float (NaN = missing), indexed as `analysed`."""
    data = pd.DataFrame(index=analysed.index)
    for factor_id in ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "bilateral", "peri_pm_systemic",
                      "synchronous"):
        data[factor_id] = as_float(analysed[factor_id])
    for histology in plan.histologies:
        data[f"histology_{histology}"] = (analysed["histology"] == histology).astype(float)
    data["sex_male"] = analysed["sex"].map({"male": 1.0, "female": 0.0}).astype(float)
    data["age_per_10y"] = as_float(analysed["age_at_pm"]) / 10
    data["grade_G3"] = analysed["grade"].map({"G3": 1.0, "G1": 0.0, "G2": 0.0}).astype(float)
    return data
