"""Simulating a cohort from a CohortModel: one patient at a time, a function of the seed alone."""
from __future__ import annotations

import bisect
import datetime
import itertools
import math
import re
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from registry.synthetic import mixes
from registry.synthetic.model import (
    CENTRE_CODES,
    CROCKFORD_BASE32,
    DAYS_PER_MONTH,
    DEFAULT_DATA_CUT,
    PSEUDONYM_SUFFIX_LENGTH,
    TABLES,
    CohortModel,
    Shares,
)

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
        "regimen_other": s.pick(mixes.REGIMEN_OTHER) if regimen == "other" else None,
        "intent": intent,
        "cycles": s.blank_or(cycles, blank["systemic_therapies.cycles"]),
        "best_response": s.blank_or(response, blank["systemic_therapies.best_response"]),
    }


def _line(patient_id, start, last, kind, intent, s, blank, cycles_range=(3, 6)):
    """A systemic line of 21-day cycles starting at `start`; still running at `last` → no end."""
    cycles = s.integer(*cycles_range)
    end = start + 21 * cycles - s.integer(0, 7)
    no_target = intent in ("primary_adjuvant", "pm_adjuvant")  # nothing left to measure
    response = s.pick(mixes.RESPONSE["adjuvant" if no_target else "measurable"])
    if end > last:
        end, cycles = None, None
    return _therapy(patient_id, start, end, s.pick(mixes.REGIMEN[kind]), intent, cycles, response, s,
                    blank)


def _operation(patient_id, date, lesions, diameter, margin, s, blank, model):
    approach = s.pick(mixes.APPROACH)
    clavien = s.pick(model.clavien_dindo)
    stay = s.normal(math.log(4 if approach in ("vats", "robotic") else 7), 0.35)
    stay = min(round(math.exp(stay)) + (7 if clavien in mixes.MAJOR_COMPLICATIONS else 0), 365)
    return {
        "patient_id": patient_id, "surgery_date": _day(date), "side": s.pick(mixes.SIDE[lesions == 1]),
        "approach": approach, "resection_type": s.pick(mixes.RESECTION[lesions == 1]),
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
    sex = s.pick(mixes.SEX[histology])
    mean, sd = mixes.AGE[histology]
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
    site = s.pick(mixes.SITE[(histology, "female" if uterine else "other")])
    lines = []
    surgery = rt_end = None
    radiotherapy = "none"
    if synchronous:
        if s.chance(0.85):
            surgery = min(dx + s.integer(14, 56), index)
    else:
        radiotherapy = s.pick(mixes.RADIOTHERAPY[site == "uterus"])
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
            lines.append(_therapy(pid, t, neo_end, s.pick(mixes.REGIMEN["primary"]),
                                  "primary_neoadjuvant", neo_cycles,
                                  s.pick(mixes.RESPONSE["measurable"]), s, blank))
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
                lines.append(_therapy(pid, start, end, s.pick(mixes.REGIMEN["primary"]),
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
        "grade": s.blank_or(s.pick(mixes.GRADE["SyS" if histology == "SyS" else "other"]),
                            blank["primary_tumours.grade"]),
        "surgery_date": _day(surgery),
        "margin": None if surgery is None else s.blank_or(s.pick(mixes.PRIMARY_MARGIN),
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
        "ecog": s.blank_or(s.pick(mixes.ECOG), blank["patients.ecog"]),
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
        cause = s.pick(mixes.CAUSE_OF_DEATH[bool(events)])
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
        lines.append(_therapy(pid, start, end, s.pick(mixes.REGIMEN["pm"]), "pm_neoadjuvant",
                              max(1, round((end - start) / 21)), s.pick(mixes.RESPONSE["measurable"]),
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
    cohort["systemic_therapies"].extend(_distinct(sorted(lines, key=lambda line: line["start_date"])))
    for day, event, site, cause in sorted(events, key=lambda e: (e[0], mixes.EVENT_ORDER[e[1]])):
        cohort["follow_up"].append({"patient_id": pid, "event_date": _day(day), "event": event,
                                    "recurrence_site": site, "cause_of_death": cause})


def _distinct(lines):
    """Lines with distinct (start date, regimen), the key of a therapy in the import: of two lines
    drawn onto the same day with the same regimen (about 1 patient in 10,000), one starts a day
    earlier, which keeps it before any death or data cut."""
    seen = set()
    for line in reversed(lines):
        while (line["start_date"], line["regimen"]) in seen:
            line["start_date"] -= datetime.timedelta(days=1)
        seen.add((line["start_date"], line["regimen"]))
    return lines
