"""The generating model: its parameters, hazards and the tables and columns it fills."""
from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
from dataclasses import dataclass

DEFAULT_DATA_CUT = datetime.date(2024, 6, 30)
DAYS_PER_MONTH = 365.25 / 12  # endpoints.md: durations in months are days / (365.25 / 12)

TABLES = ("patients", "primary_tumours", "metastasectomies", "systemic_therapies", "follow_up")
COLUMNS = {
    "patients": [
        "patient_id", "centre", "sex", "birth_year", "histology", "lung_mets_diagnosis_date",
        "extrapulmonary_disease_at_pm", "ecog",
    ],
    "primary_tumours": [
        "patient_id", "diagnosis_date", "site", "size_mm", "depth", "grade", "surgery_date",
        "margin", "radiotherapy", "radiotherapy_end_date", "local_recurrence_before_pm",
    ],
    "metastasectomies": [
        "patient_id", "surgery_date", "side", "approach", "resection_type", "lesions_resected",
        "max_lesion_diameter_mm", "diameter_source", "margin", "lymph_node_sampling",
        "clavien_dindo", "hospital_stay_days",
    ],
    "systemic_therapies": [
        "patient_id", "start_date", "end_date", "regimen", "regimen_other", "intent", "cycles",
        "best_response",
    ],
    "follow_up": ["patient_id", "event_date", "event", "recurrence_site", "cause_of_death"],
}

# Plausible German sarcoma centres (city codes); `centres=K` takes the first K.
CENTRE_CODES = (
    "MUC", "HD", "ESS", "BER", "HH", "FR", "TUE", "LEI", "DD", "KOE", "MS", "MZ", "ULM", "WUE",
    "ER", "REG", "MHH", "KI", "GOE", "BN", "DUS", "FFM", "MA", "JEN",
)
CROCKFORD_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PSEUDONYM_SUFFIX_LENGTH = 6

COVARIATES = (
    "size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology_sys", "histology_ups",
    "histology_other", "extrapulmonary_disease_at_pm", "index_margin_r1_r2",
)

Shares = tuple[tuple[str, float], ...]  # (code, probability) pairs summing to 1


@dataclass(frozen=True)
class LogHazardRatios:
    """Log hazard ratios of one endpoint against the reference patient (LMS, index max diameter
    ≤ 20 mm, one lesion, TFI ≤ 12 months, isolated lung disease, R0 index margin)."""

    size_gt_2cm: float
    multiple_lesions: float
    tfi_gt_12m: float
    histology_sys: float
    histology_ups: float
    histology_other: float
    extrapulmonary_disease_at_pm: float
    index_margin_r1_r2: float

    def linear_predictor(self, x: dict[str, bool]) -> float:
        return sum(getattr(self, name) for name in COVARIATES if x[name])


def _all_covariate_combinations():
    binary = ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "extrapulmonary_disease_at_pm",
              "index_margin_r1_r2")
    for values in itertools.product((False, True), repeat=len(binary)):
        for histology in ("LMS", "SyS", "UPS", "other"):
            yield dict(zip(binary, values), histology_sys=histology == "SyS",
                       histology_ups=histology == "UPS", histology_other=histology == "other")


@dataclass(frozen=True)
class CohortModel:
    """Every parameter of the generating model; see the package docstring (__init__.py) for what and why."""

    # hazards (per month) of the reference patient and log-HRs
    dfs_rate_per_month: float = 0.06094
    os_rate_per_month: float = 0.007006
    dfs_log_hr: LogHazardRatios = LogHazardRatios(
        size_gt_2cm=math.log(2.3), multiple_lesions=math.log(1.3), tfi_gt_12m=math.log(0.8),
        histology_sys=math.log(1.2), histology_ups=math.log(1.1), histology_other=math.log(1.2),
        extrapulmonary_disease_at_pm=math.log(1.8), index_margin_r1_r2=math.log(1.6))
    os_log_hr: LogHazardRatios = LogHazardRatios(
        size_gt_2cm=math.log(5.6), multiple_lesions=math.log(1.2), tfi_gt_12m=math.log(0.42),
        histology_sys=math.log(1.2), histology_ups=math.log(1.3), histology_other=math.log(1.3),
        extrapulmonary_disease_at_pm=math.log(2.0), index_margin_r1_r2=math.log(1.5))
    loss_to_follow_up_mean_months: float = 120.0

    # who and when
    histology: Shares = (("LMS", 0.45), ("SyS", 0.20), ("UPS", 0.30), ("other", 0.05))
    index_start: datetime.date = datetime.date(2006, 1, 1)
    study_window: tuple[datetime.date, datetime.date] = (
        datetime.date(2009, 1, 1), datetime.date(2021, 12, 31))
    index_end: datetime.date = datetime.date(2023, 12, 31)
    index_before_window_share: float = 0.05
    index_after_window_share: float = 0.05
    lung_mets_to_pm_max_days: int = 92
    synchronous_share: float = 0.15
    metachronous_dfi_median_months: float = 16.0
    metachronous_dfi_sigma: float = 0.85

    # the index operation
    diameter_median_mm: float = 17.5
    diameter_sigma: float = 0.6
    single_lesion_share: float = 0.55
    extra_lesions_mean: float = 1.5
    index_margin: Shares = (("R0", 0.95), ("R1", 0.04), ("R2", 0.01))
    extrapulmonary_share: float = 0.06
    clavien_dindo: Shares = (("none", 0.72), ("I", 0.13), ("II", 0.12), ("IIIa", 0.015),
                             ("IIIb", 0.01), ("IVa", 0.003), ("IVb", 0.002))
    early_death_clavien_v_share: float = 0.5

    # after the index operation
    recurrence_site: Shares = (("lung", 0.60), ("local", 0.08), ("distant", 0.12),
                               ("multiple", 0.20))
    repeat_pm_share: float = 0.45
    third_pm_share: float = 0.30
    second_recurrence_mean_months: float = 9.0
    pm_neoadjuvant_share: float = 0.25
    pm_adjuvant_share: float = 0.22
    palliative_share: float = 0.55
    second_palliative_line_share: float = 0.35
    contacts_per_year: float = 0.2

    # optional values left blank ("table.column", share)
    blank_shares: Shares = (
        ("patients.ecog", 0.25),
        ("primary_tumours.size_mm", 0.15), ("primary_tumours.depth", 0.12),
        ("primary_tumours.grade", 0.10), ("primary_tumours.margin", 0.08),
        ("primary_tumours.radiotherapy", 0.05),
        ("primary_tumours.local_recurrence_before_pm", 0.25),
        ("metastasectomies.diameter_source", 0.15),
        ("metastasectomies.lymph_node_sampling", 0.20),
        ("metastasectomies.hospital_stay_days", 0.10),
        ("systemic_therapies.cycles", 0.15), ("systemic_therapies.best_response", 0.30),
    )

    def __post_init__(self):
        for name in ("histology", "index_margin", "clavien_dindo", "recurrence_site"):
            shares = [p for _, p in getattr(self, name)]
            if min(shares) < 0 or abs(sum(shares) - 1) > 1e-9:
                raise ValueError(f"{name}: shares must be ≥ 0 and sum to 1")
        probabilities = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                         if f.name.endswith("_share")] + list(self.blank_shares)
        for name, p in probabilities:
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability, got {p}")
        if self.index_before_window_share + self.index_after_window_share > 1:
            raise ValueError("index date shares outside the study window exceed 1")
        for x in _all_covariate_combinations():
            if self.recurrence_rate(x) <= 0:
                raise ValueError(
                    "recurrence rate dfs_rate·exp(β·x) − os_rate·exp(γ·x) is not positive for "
                    f"covariates {x}: DFS would not be proportional hazards")

    def dfs_rate(self, x: dict[str, bool]) -> float:
        return self.dfs_rate_per_month * math.exp(self.dfs_log_hr.linear_predictor(x))

    def os_rate(self, x: dict[str, bool]) -> float:
        return self.os_rate_per_month * math.exp(self.os_log_hr.linear_predictor(x))

    def recurrence_rate(self, x: dict[str, bool]) -> float:
        return self.dfs_rate(x) - self.os_rate(x)
