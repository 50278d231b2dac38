"""Synthetic multicentre cohorts with a known truth, for tests, benchmarks and demonstrations.

Pure Python and numpy (no Django): `generate_cohort` returns the five registry tables as lists of
row dicts keyed exactly like the data dictionary (../shared/spec/data-dictionary.md), each patient
with a pseudonym of the registry's form (for loading straight into a registry: `--load`);
`write_workbook` writes them as an import workbook of new patients, named by local keys
(`local_keys`: P1, P2, … in `local_id`), since only the registry issues pseudonyms on import. The same seed always gives the same cohort:
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
from registry.synthetic.model import (  # noqa: F401
    CENTRE_CODES,
    COLUMNS,
    COVARIATES,
    DAYS_PER_MONTH,
    DEFAULT_DATA_CUT,
    TABLES,
    CohortModel,
    LogHazardRatios,
)
from registry.synthetic.simulate import generate_cohort  # noqa: F401
from registry.synthetic.workbook import import_columns, local_keys, write_workbook  # noqa: F401
