"""Synthetic multicentre cohorts with a known truth, for tests, benchmarks and demonstrations.

Pure Python and numpy (no Django): `generate_cohort` returns the five registry tables as lists of
row dicts keyed exactly like the data dictionary (../shared/spec/data-dictionary.md);
`write_workbook` writes them as an import workbook. The same seed always gives the same cohort:
every random number comes from `numpy.random.default_rng(seed)` and the data cut is a fixed date,
never today's.

The generating model
====================
Patients are simulated one at a time, in the order a record grows in a hospital: who the patient
is, the primary tumour and its treatment, lung metastases, the index PM, then follow-up. The
prognostic covariates are *derived from the generated records* the way ../shared/spec/endpoints.md
derives them, and only then are the survival times drawn, so the analysis module recovers exactly
the covariates the hazards used.

Patients (defaults of `CohortModel`; shares are probabilities per patient)
- centre: the first K of `CENTRE_CODES` (or an explicit list) with weights ∝ 1/√rank, a few large
  centres and a tail of small ones. No centre effect on outcome.
- histology LMS 45 %, SyS 20 %, UPS 30 %, other 5 %. Sex and age depend on it (LMS mostly women,
  SyS young): age at PM ~ Normal(58, 10) LMS, (40, 13) SyS, (62, 11) UPS, (52, 14) other, clipped
  to 25–80; birth_year = year of the index PM − age.
- index PM date: 5 % uniform in 2006-01-01..2008-12-31, 5 % in 2022-01-01..2023-12-31 (cut at the
  data cut), the rest uniform over the study window 2009–2021. Lung metastases are diagnosed
  0–92 days (uniform) before it.
- disease-free interval (primary diagnosis → lung metastases): 15 % synchronous, uniform between
  (index PM − lung diagnosis) days *negative* (lung metastases found first, primary diagnosed before
  the PM) and 91 days; otherwise 92 days + log-normal (median 16 months, σ 0.85) capped at 20 years.
- primary treatment, metachronous patients: 12 % neoadjuvant chemotherapy (3–6 cycles of 21 days),
  radiotherapy none 50 % / neoadjuvant 20 % / adjuvant 30 % (uterus 85/0/15), surgery in 96 %
  (after the neoadjuvant treatment or 2–8 weeks after diagnosis), 15 % adjuvant chemotherapy
  (4–6 cycles, stopped when the lung metastases are found).
  Neoadjuvant treatment is skipped when it would reach the lung diagnosis; every primary-phase date
  is cut at the index PM. Synchronous patients: surgery in 85 % (no later than the PM), no
  radiotherapy, no primary chemotherapy.
- TFI = lung diagnosis − latest treatment end on or before it (primary surgery, radiotherapy end,
  systemic end dates), 0 if none, computed from the *recorded* dates (blanks included); about half
  the patients have TFI > 12 months. Treatment that ends after the lung diagnosis only occurs
  within 6 months of the primary surgery, so tfi_gt_12m is the same whether or not surgery and
  radiotherapy dates after the lung diagnosis are counted (endpoints.md reads either way).
- index PM: max lesion diameter log-normal (median 17.5 mm, σ 0.6 → ≈ 40 % > 20 mm), rounded to
  mm, clipped 1–200; one lesion in 55 %, else 2 + ⌊Exp(mean 1.5)⌋; margin R0 95 / R1 4 / R2 1 %;
  extrapulmonary disease 6 %; Clavien–Dindo ≥ IIIa ≈ 3 % (+ grade V, see below).

Survival: exact proportional hazards
- covariates x (`COVARIATES`): size_gt_2cm, multiple_lesions, tfi_gt_12m, histology SyS / UPS /
  other (reference LMS), extrapulmonary_disease_at_pm, index_margin_r1_r2.
- OS: T_os ~ Exp(rate = os_rate · exp(γ·x)) months.
- recurrence: T_rec ~ Exp(rate = dfs_rate · exp(β·x) − os_rate · exp(γ·x)), independent of T_os.
  DFS = min(T_rec, T_os) is then exponential with rate dfs_rate · exp(β·x) (independent exponential
  hazards add), so both endpoints are exactly PH with log-HRs β and γ. `CohortModel` raises
  ValueError unless the recurrence rate is positive for every covariate combination.
- default log-HRs (DFS β / OS γ): size_gt_2cm ln 2.3 / ln 5.6, multiple_lesions ln 1.3 / ln 1.2,
  tfi_gt_12m ln 0.8 / ln 0.42 (the study's published HRs for the headline factors), SyS ln 1.2 /
  ln 1.2, UPS ln 1.1 / ln 1.3, other ln 1.2 / ln 1.3, extrapulmonary ln 1.8 / ln 2.0, R1/R2
  ln 1.6 / ln 1.5 (small, plausible effects for the rest).
- baseline rates (reference patient: LMS, ≤ 20 mm, one lesion, TFI ≤ 12 months, isolated lung
  disease, R0): dfs_rate 0.06094 and os_rate 0.007006 per month, calibrated so that the medians of
  the study cohort (eligible patients) are the study's 7.4 months DFS and 58.7 months OS. The
  cohort survival is the covariate mixture S(t) = E_x[exp(−rate·exp(η(x))·t)]; in the eligible
  cohort size, lesion count and (histology, TFI) are independent, so E_x is exact over 2·2·6 cells
  with P(diameter > 20 mm) from the log-normal, P(multiple) = 0.45 and P(TFI > 12 | histology)
  from 10⁶ simulated patients; S(median) = 0.5 was solved for the rate. Check: Kaplan–Meier
  medians from the records of 152,738 eligible patients (200,000 generated) were 7.46 and 59.5
  months; the OS median moves ±0.5 month between such samples because the mixture is flat there.
- censoring, independent of the times given x: administrative at the data cut and loss to
  follow-up ~ Exp(mean 120 months). Times are rounded to whole days; an observed recurrence is
  T_rec < T_os and on or before censoring (it may fall on the index date).

Records after the index PM
- follow_up: the first recurrence (site lung 60 / local 8 / distant 12 / multiple 20 %); death
  with a cause (sarcoma mostly after a recurrence, other/unknown more often without); for the
  living a `contact` on the censoring date, which is therefore their last known date; plus
  intermediate `contact`s (Poisson, 0.2 a year). Nothing after death or the data cut.
- a death within 30 days of the PM turns the index Clavien–Dindo into V (cause `treatment`) in
  half the cases: the complication follows the survival model, not the other way round.
- repeat PMs: 45 % of lung recurrences get a repeat PM 3–12 weeks later (before death/censoring);
  after it a second recurrence (Exp, mean 9 months) and, if in the lung, a third PM in 30 %.
- systemic therapy after the PM: pm_neoadjuvant in 25 % of patients with ≥ 8 weeks between lung
  diagnosis and PM (starts after the lung diagnosis, ends 2–4 weeks before the PM); otherwise
  pm_adjuvant in 22 %, starting 4–10 weeks after the PM (≈ 30 % peri-PM in all). Peri-PM therapy
  has no effect on outcome (a null truth for the subgroup analysis; only a pm_adjuvant line that
  would start after death or censoring goes unrecorded, a small immortal-time bias). Palliative
  lines (55 %, a second line in 35 % of those) follow a recurrence not treated by a repeat PM.
  No therapy date after the last known date: a line still running then has a blank end_date.
- optional values are blank at the `blank_shares` rates (e.g. ecog 25 %, best_response 30 %).

Out-of-cohort patients (study filter of endpoints.md) come from the same model: other histology
5 %, index margin R1/R2 5 %, extrapulmonary disease 6 %, index before 2009 5 % and after 2021 5 %.
"""
from __future__ import annotations

import bisect
import dataclasses
import datetime
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

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
    """Every parameter of the generating model; see the module docstring for what and why."""

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


# Descriptive mixes that no analysis depends on (kept out of CohortModel to keep it readable).
_SEX = {"LMS": (("female", 0.70), ("male", 0.298), ("diverse", 0.002)),
        "SyS": (("female", 0.50), ("male", 0.498), ("diverse", 0.002)),
        "UPS": (("female", 0.40), ("male", 0.598), ("diverse", 0.002)),
        "other": (("female", 0.50), ("male", 0.498), ("diverse", 0.002))}
_AGE = {"LMS": (58, 10), "SyS": (40, 13), "UPS": (62, 11), "other": (52, 14)}
_SITE = {
    ("LMS", "female"): (("uterus", 0.45), ("retroperitoneum", 0.20), ("extremity", 0.15),
                        ("trunk", 0.08), ("visceral", 0.12)),
    ("LMS", "other"): (("retroperitoneum", 0.35), ("extremity", 0.30), ("trunk", 0.15),
                       ("visceral", 0.20)),
    ("SyS", "other"): (("extremity", 0.75), ("trunk", 0.12), ("head_neck", 0.06), ("other", 0.07)),
    ("UPS", "other"): (("extremity", 0.70), ("trunk", 0.20), ("retroperitoneum", 0.05),
                       ("head_neck", 0.05)),
    ("other", "other"): (("extremity", 0.50), ("trunk", 0.20), ("retroperitoneum", 0.10),
                         ("visceral", 0.10), ("head_neck", 0.05), ("other", 0.05)),
}
_GRADE = {"SyS": (("G2", 0.30), ("G3", 0.65), ("GX", 0.05)),
          "other": (("G1", 0.05), ("G2", 0.30), ("G3", 0.60), ("GX", 0.05))}
_PRIMARY_MARGIN = (("R0", 0.70), ("R1", 0.22), ("R2", 0.03), ("RX", 0.05))
_RADIOTHERAPY = {True: (("none", 0.85), ("adjuvant", 0.15)),  # uterus
                 False: (("none", 0.50), ("neoadjuvant", 0.20), ("adjuvant", 0.30))}
_SIDE = {True: (("left", 0.47), ("right", 0.53)),  # one lesion
         False: (("left", 0.30), ("right", 0.35), ("bilateral", 0.35))}
_APPROACH = (("vats", 0.45), ("thoracotomy", 0.38), ("robotic", 0.07), ("sternotomy", 0.03),
             ("conversion", 0.07))
_RESECTION = {True: (("wedge", 0.70), ("segmentectomy", 0.12), ("lobectomy", 0.17),
                     ("pneumonectomy", 0.01)),
              False: (("wedge", 0.60), ("segmentectomy", 0.05), ("lobectomy", 0.08),
                      ("pneumonectomy", 0.01), ("combined", 0.26))}
_ECOG = ((0, 0.60), (1, 0.32), (2, 0.07), (3, 0.01))
_REGIMEN = {
    "primary": (("doxorubicin_ifosfamide", 0.60), ("doxorubicin", 0.20), ("ifosfamide", 0.12),
                ("other", 0.08)),
    "pm": (("doxorubicin_ifosfamide", 0.45), ("doxorubicin", 0.20), ("ifosfamide", 0.10),
           ("gemcitabine_docetaxel", 0.15), ("trabectedin", 0.05), ("other", 0.05)),
    "palliative_1": (("doxorubicin", 0.35), ("doxorubicin_dacarbazine", 0.10),
                     ("doxorubicin_trabectedin", 0.08), ("doxorubicin_ifosfamide", 0.10),
                     ("gemcitabine_docetaxel", 0.10), ("trabectedin", 0.07), ("pazopanib", 0.07),
                     ("eribulin", 0.04), ("ifosfamide", 0.03), ("gemcitabine", 0.02),
                     ("dacarbazine", 0.01), ("other", 0.03)),
    "palliative_2": (("trabectedin", 0.25), ("pazopanib", 0.25), ("gemcitabine_docetaxel", 0.20),
                     ("eribulin", 0.10), ("ifosfamide", 0.08), ("gemcitabine", 0.05),
                     ("dacarbazine", 0.03), ("other", 0.04)),
}
_REGIMEN_OTHER = tuple((text, 0.2) for text in (  # free text without identifiers, ≤ 100 chars
    "cyclophosphamide", "epirubicin", "high-dose ifosfamide", "temozolomide", "regorafenib"))
_MAJOR_COMPLICATIONS = {"IIIa", "IIIb", "IVa", "IVb", "V"}
_RESPONSE = {"measurable": (("CR", 0.02), ("PR", 0.18), ("SD", 0.40), ("PD", 0.30), ("NE", 0.10)),
             "adjuvant": (("NE", 1.0),)}
_CAUSE_OF_DEATH = {True: (("sarcoma", 0.85), ("treatment", 0.02), ("other", 0.04),
                          ("unknown", 0.09)),  # after a recurrence
                   False: (("sarcoma", 0.30), ("treatment", 0.05), ("other", 0.35),
                           ("unknown", 0.30))}
_EVENT_ORDER = {"recurrence": 0, "contact": 1, "death": 2}
_NORMAL = NormalDist()


class _Stream:
    """One patient's uniform random numbers, consumed in order.

    Drawing a block per patient from the seeded generator up front and reading it with plain
    Python is much faster than scalar numpy calls. A patient who needs more draws takes them from
    the shared generator, in patient order, so the cohort stays a function of the seed alone.
    """

    __slots__ = ("_u", "_k", "_rng")

    def __init__(self, uniforms: list[float], rng: np.random.Generator):
        self._u, self._k, self._rng = uniforms, 0, rng

    def random(self) -> float:
        if self._k == len(self._u):
            self._u.extend(self._rng.random(32).tolist())
        self._k += 1
        return self._u[self._k - 1]

    def chance(self, p: float) -> bool:
        return self.random() < p

    def integer(self, low: int, high: int) -> int:
        """Uniform on low..high inclusive."""
        return low + min(int(self.random() * (high - low + 1)), high - low)

    def normal(self, mean: float = 0.0, sd: float = 1.0) -> float:
        return mean + sd * _NORMAL.inv_cdf(min(max(self.random(), 1e-12), 1 - 1e-12))

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.random())

    def pick(self, shares: Shares):
        codes, cumulative = _cumulative(shares)
        return codes[min(bisect.bisect_right(cumulative, self.random()), len(codes) - 1)]

    def blank_or(self, value, share: float):
        return None if self.chance(share) else value


_CUMULATIVE_CACHE: dict[Shares, tuple[tuple, list[float]]] = {}


def _cumulative(shares: Shares):
    cached = _CUMULATIVE_CACHE.get(shares)
    if cached is None:
        codes = tuple(code for code, _ in shares)
        cumulative = list(itertools.accumulate(p for _, p in shares))
        cached = _CUMULATIVE_CACHE[shares] = (codes, cumulative)
    return cached


def _day(ordinal: int | None) -> datetime.date | None:
    return None if ordinal is None else datetime.date.fromordinal(ordinal)


def _centre_codes(centres: int | Sequence[str]) -> list[str]:
    if isinstance(centres, int):
        if not 1 <= centres <= len(CENTRE_CODES):
            raise ValueError(f"centres must be 1..{len(CENTRE_CODES)}, got {centres}")
        return list(CENTRE_CODES[:centres])
    codes = list(centres)
    if not codes or len(set(codes)) != len(codes):
        raise ValueError("centres must be a non-empty list of distinct codes")
    for code in codes:
        if not re.fullmatch(r"[A-Z]{2,8}", code):
            raise ValueError(f"centre code {code!r} is not 2–8 capital letters")
    return codes


def _index_segments(model: CohortModel, data_cut: datetime.date):
    """(first ordinal, last ordinal, share) of the index-date distribution, cut at the data cut."""
    window_start, window_end = model.study_window
    segments = [
        (model.index_start, window_start - datetime.timedelta(days=1),
         model.index_before_window_share),
        (window_start, window_end,
         1 - model.index_before_window_share - model.index_after_window_share),
        (window_end + datetime.timedelta(days=1), model.index_end, model.index_after_window_share),
    ]
    kept = [(first.toordinal(), min(last, data_cut).toordinal(), share)
            for first, last, share in segments if first <= data_cut and share > 0]
    if not kept:
        raise ValueError(f"data cut {data_cut} is before the first possible index date")
    total = sum(share for *_, share in kept)
    return tuple((first, last, share / total) for first, last, share in kept)


def _pseudonym_suffixes(rng: np.random.Generator, n: int) -> list[str]:
    numbers = rng.choice(len(CROCKFORD_BASE32) ** PSEUDONYM_SUFFIX_LENGTH, size=n, replace=False)
    suffixes = []
    for number in numbers.tolist():
        chars = []
        for _ in range(PSEUDONYM_SUFFIX_LENGTH):
            number, digit = divmod(number, len(CROCKFORD_BASE32))
            chars.append(CROCKFORD_BASE32[digit])
        suffixes.append("".join(chars))
    return suffixes


def generate_cohort(*, patients: int, centres: int | Sequence[str], seed: int,
                    model: CohortModel = CohortModel(),
                    data_cut: datetime.date = DEFAULT_DATA_CUT) -> dict[str, list[dict]]:
    """A synthetic registry: {table: [row dict keyed by COLUMNS[table]]}, deterministic in seed.

    Values are datetime.date, int, bool, str codes or None (blank). See the module docstring for
    the model; `model` overrides its parameters, `data_cut` is the date nothing is later than.
    """
    if patients < 0:
        raise ValueError("patients must be ≥ 0")
    codes = _centre_codes(centres)
    segments = _index_segments(model, data_cut)
    rng = np.random.default_rng(seed)
    weights = 1 / np.sqrt(np.arange(1, len(codes) + 1))
    centre_index = rng.choice(len(codes), size=patients, p=weights / weights.sum()).tolist()
    suffixes = _pseudonym_suffixes(rng, patients)
    uniforms = rng.random((patients, 96)).tolist()
    blank = dict(model.blank_shares)
    cohort = {table: [] for table in TABLES}
    for i in range(patients):
        centre = codes[centre_index[i]]
        _simulate_patient(cohort, _Stream(uniforms[i], rng), f"{centre}-{suffixes[i]}", centre,
                          model, blank, segments, data_cut.toordinal())
    return cohort


def _therapy(patient_id, start, end, regimen, intent, cycles, response, s, blank):
    return {
        "patient_id": patient_id, "start_date": _day(start), "end_date": _day(end),
        "regimen": regimen,
        "regimen_other": s.pick(_REGIMEN_OTHER) if regimen == "other" else None,
        "intent": intent,
        "cycles": s.blank_or(cycles, blank["systemic_therapies.cycles"]),
        "best_response": s.blank_or(response, blank["systemic_therapies.best_response"]),
    }


def _line(patient_id, start, last, kind, intent, s, blank, cycles_range=(3, 6)):
    """A systemic line of 21-day cycles starting at `start`; still running at `last` → no end."""
    cycles = s.integer(*cycles_range)
    end = start + 21 * cycles - s.integer(0, 7)
    no_target = intent in ("primary_adjuvant", "pm_adjuvant")  # nothing left to measure
    response = s.pick(_RESPONSE["adjuvant" if no_target else "measurable"])
    if end > last:
        end, cycles = None, None
    return _therapy(patient_id, start, end, s.pick(_REGIMEN[kind]), intent, cycles, response, s,
                    blank)


def _operation(patient_id, date, lesions, diameter, margin, s, blank, model):
    approach = s.pick(_APPROACH)
    clavien = s.pick(model.clavien_dindo)
    stay = s.normal(math.log(4 if approach in ("vats", "robotic") else 7), 0.35)
    stay = min(round(math.exp(stay)) + (7 if clavien in _MAJOR_COMPLICATIONS else 0), 365)
    return {
        "patient_id": patient_id, "surgery_date": _day(date), "side": s.pick(_SIDE[lesions == 1]),
        "approach": approach, "resection_type": s.pick(_RESECTION[lesions == 1]),
        "lesions_resected": lesions, "max_lesion_diameter_mm": diameter,
        "diameter_source": s.blank_or(s.pick((("pathology", 0.9), ("ct", 0.1))),
                                      blank["metastasectomies.diameter_source"]),
        "margin": margin,
        "lymph_node_sampling": s.blank_or(s.chance(0.55),
                                          blank["metastasectomies.lymph_node_sampling"]),
        "clavien_dindo": clavien,
        "hospital_stay_days": s.blank_or(stay, blank["metastasectomies.hospital_stay_days"]),
    }


def _lesions(s: _Stream, model: CohortModel) -> tuple[int, int]:
    diameter = round(math.exp(s.normal(math.log(model.diameter_median_mm), model.diameter_sigma)))
    lesions = 1 if s.chance(model.single_lesion_share) else min(
        2 + int(s.exponential(model.extra_lesions_mean)), 100)
    return lesions, min(max(diameter, 1), 200)


def _simulate_patient(cohort, s: _Stream, pid: str, centre: str, model: CohortModel,
                      blank: dict, segments, cut: int) -> None:
    # --- who, and when the lung metastases were found and resected
    histology = s.pick(model.histology)
    sex = s.pick(_SEX[histology])
    mean, sd = _AGE[histology]
    age = min(max(round(s.normal(mean, sd)), 25), 80)
    first, last_day = s.pick(tuple(((first, last), share) for first, last, share in segments))
    index = s.integer(first, last_day)
    gap = s.integer(0, model.lung_mets_to_pm_max_days)
    lung_dx = index - gap
    synchronous = s.chance(model.synchronous_share)
    if synchronous:
        dfi = s.integer(-gap, 91)  # lung first is possible, but the primary is known by the PM
    else:
        dfi = 92 + min(round(math.exp(s.normal(
            math.log(model.metachronous_dfi_median_months * DAYS_PER_MONTH),
            model.metachronous_dfi_sigma))), 20 * 365)
    dx = lung_dx - dfi

    # --- the primary tumour and its treatment (every date on or before the index PM)
    uterine = histology == "LMS" and sex == "female"
    site = s.pick(_SITE[(histology, "female" if uterine else "other")])
    lines = []
    surgery = rt_end = None
    radiotherapy = "none"
    if synchronous:
        if s.chance(0.85):
            surgery = min(dx + s.integer(14, 56), index)
    else:
        radiotherapy = s.pick(_RADIOTHERAPY[site == "uterus"])
        neo_chemo = s.chance(0.12)
        t = dx + s.integer(14, 35)
        neo_cycles = s.integer(3, 6)
        neo_end = t + 21 * neo_cycles - s.integer(0, 7)
        rt_neo_end = (neo_end + s.integer(14, 28) if neo_chemo else t) + 35 + s.integer(0, 7)
        planned = rt_neo_end if radiotherapy == "neoadjuvant" else neo_end if neo_chemo else t
        planned_surgery = planned + s.integer(21, 42)
        if planned_surgery > lung_dx - 14:  # no time for neoadjuvant treatment before the mets
            neo_chemo, planned_surgery = False, dx + s.integer(14, 56)
            radiotherapy = "none" if radiotherapy == "neoadjuvant" else radiotherapy
        if neo_chemo:
            lines.append(_therapy(pid, t, neo_end, s.pick(_REGIMEN["primary"]),
                                  "primary_neoadjuvant", neo_cycles,
                                  s.pick(_RESPONSE["measurable"]), s, blank))
        if radiotherapy == "neoadjuvant":
            rt_end = rt_neo_end
        if s.chance(0.96):
            surgery = planned_surgery
            if radiotherapy == "adjuvant":
                rt_end = surgery + s.integer(56, 100)
            start = surgery + s.integer(28, 56)
            if s.chance(0.15) and start < lung_dx:
                cycles = s.integer(4, 6)
                end = start + 21 * cycles - s.integer(0, 7)
                if end > lung_dx:  # stopped when the lung metastases were found
                    end = min(lung_dx + s.integer(0, 14), index)
                    cycles = max(1, math.ceil((end - start) / 21))
                lines.append(_therapy(pid, start, end, s.pick(_REGIMEN["primary"]),
                                      "primary_adjuvant", cycles, "NE", s, blank))
        elif radiotherapy == "adjuvant":
            radiotherapy = "none"
        if rt_end is not None and rt_end > index:
            radiotherapy, rt_end = "none", None
    if s.chance(blank["primary_tumours.radiotherapy"]):
        radiotherapy = rt_end = None
    size = round(math.exp(s.normal(math.log(75), 0.6)))
    deep_only = site in ("uterus", "retroperitoneum", "visceral")
    primary = {
        "patient_id": pid, "diagnosis_date": _day(dx), "site": site,
        "size_mm": s.blank_or(min(max(size, 1), 500), blank["primary_tumours.size_mm"]),
        "depth": s.blank_or("deep" if deep_only or s.chance(0.85) else "superficial",
                            blank["primary_tumours.depth"]),
        "grade": s.blank_or(s.pick(_GRADE["SyS" if histology == "SyS" else "other"]),
                            blank["primary_tumours.grade"]),
        "surgery_date": _day(surgery),
        "margin": None if surgery is None else s.blank_or(s.pick(_PRIMARY_MARGIN),
                                                          blank["primary_tumours.margin"]),
        "radiotherapy": radiotherapy, "radiotherapy_end_date": _day(rt_end),
        "local_recurrence_before_pm": None if surgery is None else s.blank_or(
            not synchronous and s.chance(0.12),
            blank["primary_tumours.local_recurrence_before_pm"]),
    }

    # --- TFI from the recorded dates, exactly as endpoints.md derives it
    ends = [surgery, rt_end] + [line["end_date"] and line["end_date"].toordinal() for line in lines]
    ends = [e for e in ends if e is not None and e <= lung_dx]
    tfi_gt_12m = bool(ends) and (lung_dx - max(ends)) / DAYS_PER_MONTH > 12

    # --- the index operation
    lesions, diameter = _lesions(s, model)
    index_margin = s.pick(model.index_margin)
    index_pm = _operation(pid, index, lesions, diameter, index_margin, s, blank, model)
    extrapulmonary = s.chance(model.extrapulmonary_share)
    cohort["patients"].append({
        "patient_id": pid, "centre": centre, "sex": sex,
        "birth_year": datetime.date.fromordinal(index).year - age, "histology": histology,
        "lung_mets_diagnosis_date": _day(lung_dx), "extrapulmonary_disease_at_pm": extrapulmonary,
        "ecog": s.blank_or(s.pick(_ECOG), blank["patients.ecog"]),
    })
    cohort["primary_tumours"].append(primary)

    # --- survival: exact PH in x (module docstring)
    x = {"size_gt_2cm": diameter > 20, "multiple_lesions": lesions > 1, "tfi_gt_12m": tfi_gt_12m,
         "histology_sys": histology == "SyS", "histology_ups": histology == "UPS",
         "histology_other": histology == "other", "extrapulmonary_disease_at_pm": extrapulmonary,
         "index_margin_r1_r2": index_margin != "R0"}
    t_os = s.exponential(1 / model.os_rate(x))
    t_rec = s.exponential(1 / model.recurrence_rate(x))
    loss = s.exponential(model.loss_to_follow_up_mean_months)
    censor = min(cut - index, round(min(loss, 1e5) * DAYS_PER_MONTH))
    d_os = round(min(t_os, 1e5) * DAYS_PER_MONTH)
    dead = d_os <= censor
    last = index + (d_os if dead else censor)  # the last known date
    before_end = (lambda day: day < last) if dead else (lambda day: day <= last)

    operations = [index_pm]
    events = []  # (ordinal, event, recurrence_site, cause_of_death)
    palliative_after = None
    if t_rec < t_os and index + round(t_rec * DAYS_PER_MONTH) <= last:
        recurrence = index + round(t_rec * DAYS_PER_MONTH)
        site_1 = s.pick(model.recurrence_site)
        events.append((recurrence, "recurrence", site_1, None))
        palliative_after = recurrence
        repeat = recurrence + s.integer(21, 84)
        if site_1 == "lung" and s.chance(model.repeat_pm_share) and before_end(repeat):
            operations.append(_operation(pid, repeat, *_lesions(s, model),
                                         s.pick(model.index_margin), s, blank, model))
            palliative_after = None
            second = repeat + 1 + round(
                s.exponential(model.second_recurrence_mean_months) * DAYS_PER_MONTH)
            if second <= last:
                site_2 = s.pick(model.recurrence_site)
                events.append((second, "recurrence", site_2, None))
                palliative_after = second
                third = second + s.integer(21, 84)
                if site_2 == "lung" and s.chance(model.third_pm_share) and before_end(third):
                    operations.append(_operation(pid, third, *_lesions(s, model),
                                                 s.pick(model.index_margin), s, blank, model))
                    palliative_after = None
    if dead:
        cause = s.pick(_CAUSE_OF_DEATH[bool(events)])
        if d_os <= 30 and s.chance(model.early_death_clavien_v_share):
            index_pm["clavien_dindo"], cause = "V", "treatment"
        events.append((last, "death", None, cause))
    else:
        events.append((last, "contact", None, None))
    contact = index
    while len(events) < 12:
        contact += 1 + round(s.exponential(365.25 / model.contacts_per_year))
        if contact >= last:
            break
        events.append((contact, "contact", None, None))

    # --- systemic therapy around the PM and after recurrence
    if gap >= 56 and s.chance(model.pm_neoadjuvant_share):
        start, end = lung_dx + s.integer(0, 14), index - s.integer(14, 28)
        lines.append(_therapy(pid, start, end, s.pick(_REGIMEN["pm"]), "pm_neoadjuvant",
                              max(1, round((end - start) / 21)), s.pick(_RESPONSE["measurable"]),
                              s, blank))
    elif s.chance(model.pm_adjuvant_share):
        start = index + s.integer(28, 70)
        if start <= last:
            lines.append(_line(pid, start, last, "pm", "pm_adjuvant", s, blank))
    if palliative_after is not None and s.chance(model.palliative_share):
        start = palliative_after + s.integer(14, 56)
        if start <= last:
            lines.append(_line(pid, start, last, "palliative_1", "palliative", s, blank, (2, 8)))
            end = lines[-1]["end_date"]
            if end is not None and s.chance(model.second_palliative_line_share):
                start = end.toordinal() + s.integer(14, 60)
                if start <= last:
                    lines.append(_line(pid, start, last, "palliative_2", "palliative", s, blank,
                                       (2, 8)))

    cohort["metastasectomies"].extend(operations)
    cohort["systemic_therapies"].extend(sorted(lines, key=lambda line: line["start_date"]))
    for day, event, site, cause in sorted(events, key=lambda e: (e[0], _EVENT_ORDER[e[1]])):
        cohort["follow_up"].append({"patient_id": pid, "event_date": _day(day), "event": event,
                                    "recurrence_site": site, "cause_of_death": cause})


def write_workbook(cohort: dict[str, list[dict]], path) -> None:
    """Write the cohort as an import workbook: one sheet per table (named as in TABLES), header
    row COLUMNS[table]; dates as Excel dates (yyyy-mm-dd), booleans yes/no, blanks empty."""
    from openpyxl import Workbook  # imported here: generating a cohort needs no openpyxl

    workbook = Workbook(write_only=True)
    for table in TABLES:
        sheet = workbook.create_sheet(table)
        columns = COLUMNS[table]
        sheet.append(columns)
        for row in cohort[table]:
            # A date value gets openpyxl's 'yyyy-mm-dd' number format on its own in write-only
            # mode (and styled cells are never reused for the next value).
            sheet.append([("yes" if value else "no") if isinstance(value, bool) else value
                          for value in (row[column] for column in columns)])
    workbook.save(path)
