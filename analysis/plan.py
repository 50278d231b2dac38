"""The analysis plan: every parameter of ../shared/spec/endpoints.md in one immutable value.

A PI may change cut-offs, windows and cohort filters; every result names the plan it was
computed with (`plan.name`) and its `hash`, so two results can be told apart or matched.

    plan = AnalysisPlan()                                  # the defaults of endpoints.md
    plan = plan.replace(size_cutoff_mm=30, name="30 mm")   # a variant
    AnalysisPlan.from_json(plan.to_json()) == plan         # round trip
"""
import dataclasses
import datetime
import hashlib
import json
import math
from dataclasses import dataclass

from django.conf import settings

from registry.index_date import INDEX_RULES

# Factors a Cox model can use, named as in the report. "histology" stands for its dummies
# (one per histology of the plan other than the reference, LMS).
FACTORS = (
    "size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology", "sex_male", "age_per_10y",
    "grade_G3", "bilateral", "peri_pm_systemic", "synchronous",
)
ENDPOINTS = ("dfs", "os")
HISTOLOGIES = ("LMS", "SyS", "UPS", "other")
MARGINS = ("R0", "R1")  # the margins a plan may call complete (R2 leaves tumour behind)
CENTRE_ADJUSTMENTS = ("none", "stratified", "robust")
# How the paper pack's analysis data are de-identified (analysis/paper): "intervals" keeps no calendar
# date (as the dataset export's option of that name), "none" keeps the index date.
PACK_DEIDENTIFY = ("intervals", "none")
CENTRE_FACTORS = tuple(factor for factor in FACTORS if factor != "histology")  # one column each
# The smallest value of each bounded number (the API's schema states them too).
MINIMUMS = {"size_cutoff_mm": 0, "tfi_cutoff_months": 0, "systemic_window_months": 0, "landmark_months": 0,
            "lesions_cutoff": 1}


class PlanError(ValueError):
    """An analysis plan that cannot be used; the message says which parameter and why."""


@dataclass(frozen=True)
class AnalysisPlan:
    """Parameters of the endpoints, derived variables, study cohort and models (endpoints.md).

    Cut-offs compare with ">" (size_gt_2cm is diameter > size_cutoff_mm); the synchronous
    cut-off with "<=" (dfi_months <= synchronous_cutoff_months). Months are days / (365.25/12).
    """

    name: str = "endpoints.md v1"
    size_cutoff_mm: float = 20.0
    lesions_cutoff: int = 1
    tfi_cutoff_months: float = 12.0
    synchronous_cutoff_months: float = 3.0
    systemic_window_months: float = 6.0
    # study cohort, applied in this order after "no metastasectomy"
    histologies: tuple = ("LMS", "SyS", "UPS")
    require_r0: bool = True  # the index margin must be complete (complete_margins)
    index_rule: str = "first_pm"  # or "first_complete_pm" (registry/index_date.py)
    complete_margins: tuple = ("R0",)
    exclude_extrapulmonary: bool = True
    period_start: datetime.date = datetime.date(2009, 1, 1)
    period_end: datetime.date = datetime.date(2021, 12, 31)
    # models and reported rates
    multivariable_covariates: tuple = ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology")
    multivariable_endpoints: tuple = ("dfs",)
    rate_times_months: tuple = (12.0, 36.0, 60.0)
    # endpoints.md v2: therapy effects without immortal time, centres
    landmark_months: float = 6.0
    centre_adjustment: str = "none"  # the multivariable models: "stratified" or "robust" by centre
    centre_factor: str = "size_gt_2cm"  # the factor whose per-centre HRs are compared


    # cut-off search (report "cutoff_search"): cut-offs between these quantiles of each factor
    cutoff_search_range: tuple = (0.1, 0.9)
    # the paper pack (analysis/paper): the language of its tables, figures and methods, and how its
    # analysis data are de-identified (PACK_DEIDENTIFY)
    language: str = "en"
    pack_deidentify: str = "intervals"

    def __post_init__(self):
        for f in dataclasses.fields(self):  # lists given to the constructor become tuples (hashable)
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        _validate(self)

    # --- serialisation ---------------------------------------------------------------------

    def to_dict(self):
        """Plain JSON-ready data: dates as ISO strings, tuples as lists."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self, **kwargs):
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data):
        """A plan from a dict; missing keys take the defaults, unknown keys and bad types raise PlanError."""
        if not isinstance(data, dict):
            raise PlanError(f"an analysis plan is a JSON object, not {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise PlanError(f"unknown plan parameter(s): {', '.join(unknown)}; "
                            f"known: {', '.join(known)}")
        return cls(**{name: _coerce(name, known[name].default, value) for name, value in data.items()})

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PlanError(f"the analysis plan is not valid JSON: {error}") from error
        except RecursionError:  # arrays or objects nested deeper than the parser goes
            raise PlanError("the analysis plan is not valid JSON: it is nested too deeply") from None
        return cls.from_dict(data)

    @property
    def hash(self):
        """First 12 hex digits of the sha256 of the canonical JSON (sorted keys, no spaces)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def replace(self, **changes):
        """A copy with some parameters changed (validated like from_dict)."""
        return self.from_dict({**self.to_dict(), **changes})


def plan_from_query(params, base=None):
    """The plan `base` (default: endpoints.md) with parameters from a query string applied:
    {parameter name: [value, ...]}, the values as a URL carries them (text; a list parameter
    comma-separated or repeated). The one way the dashboard and the API read a plan from a URL;
    PlanError names the parameter that cannot be used."""
    base = base or AnalysisPlan()
    known = base.to_dict()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise PlanError(f"unknown plan parameter(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return base.replace(**{name: _from_text(name, getattr(base, name), values) for name, values in params.items()})


def split_list(value):
    """'a, b,c' -> ['a', 'b', 'c'] (a comma-separated query parameter)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _from_text(name, default, texts):
    """Query-string text as the JSON value from_dict expects (the last value counts)."""
    def number(text):
        try:
            value = float(text)
        except ValueError:
            raise PlanError(f"plan parameter {name!r} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise PlanError(f"plan parameter {name!r} must be a finite number, got {text!r}")
        return value

    if isinstance(default, tuple):
        items = [item for text in texts for item in split_list(text)]
        return [number(item) for item in items] if default and isinstance(default[0], float) else items
    text = texts[-1]
    if isinstance(default, bool):
        if text.lower() not in TRUE | FALSE:
            raise PlanError(f"plan parameter {name!r} must be true or false, got {text!r}")
        return text.lower() in TRUE
    if isinstance(default, (int, float)):
        return number(text)  # from_dict refuses a fractional value for a whole-number parameter
    return text


TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def _coerce(name, default, value):
    """The JSON value as the type of the default; PlanError naming the parameter otherwise."""
    def bad(expected):
        return PlanError(f"plan parameter {name!r} must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise bad("a whole number")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, datetime.date):
        if isinstance(value, datetime.date):
            return value
        try:
            return datetime.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad("an ISO date (YYYY-MM-DD)") from None
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        item_default = default[0] if default else ""
        return tuple(_coerce(f"{name}[]", item_default, item) for item in value)
    raise bad(type(default).__name__)  # pragma: no cover - every field has a typed default


def _validate(plan):
    """Raise PlanError for values no analysis can use."""
    def check(condition, message):
        if not condition:
            raise PlanError(message)

    for name, minimum in MINIMUMS.items():
        check(getattr(plan, name) >= minimum, f"plan parameter {name!r} must be >= {minimum}")
    check(bool(plan.name.strip()), "plan parameter 'name' must not be blank")
    check(plan.histologies and set(plan.histologies) <= set(HISTOLOGIES)
          and len(set(plan.histologies)) == len(plan.histologies),
          f"plan parameter 'histologies' must list distinct codes of {', '.join(HISTOLOGIES)}")
    check(plan.period_start <= plan.period_end, "plan period_start is after period_end")
    check(set(plan.multivariable_covariates) <= set(FACTORS),
          f"plan parameter 'multivariable_covariates' must name factors of {', '.join(FACTORS)}")
    check(plan.multivariable_covariates != (), "plan parameter 'multivariable_covariates' is empty")
    for name in ("multivariable_covariates", "multivariable_endpoints", "rate_times_months"):
        values = getattr(plan, name)
        check(len(set(values)) == len(values), f"plan parameter {name!r} names a value twice")
    check(set(plan.multivariable_endpoints) <= set(ENDPOINTS),
          f"plan parameter 'multivariable_endpoints' must name endpoints of {', '.join(ENDPOINTS)}")
    check(all(t > 0 for t in plan.rate_times_months), "plan 'rate_times_months' must be > 0")
    check(plan.index_rule in INDEX_RULES, f"plan parameter 'index_rule' must be one of {', '.join(INDEX_RULES)}")
    check(plan.complete_margins and set(plan.complete_margins) <= set(MARGINS) and "R0" in plan.complete_margins
          and len(set(plan.complete_margins)) == len(plan.complete_margins),
          "plan parameter 'complete_margins' must be [R0] or [R0, R1]")
    check(plan.centre_adjustment in CENTRE_ADJUSTMENTS,
          f"plan parameter 'centre_adjustment' must be one of {', '.join(CENTRE_ADJUSTMENTS)}")
    check(plan.centre_factor in CENTRE_FACTORS,
          "plan parameter 'centre_factor' must name a one-column factor of " + ", ".join(FACTORS))


    languages = [code for code, _name in settings.LANGUAGES]
    check(plan.language in languages, f"plan parameter 'language' must be one of {', '.join(languages)}")
    check(plan.pack_deidentify in PACK_DEIDENTIFY,
          f"plan parameter 'pack_deidentify' must be one of {', '.join(PACK_DEIDENTIFY)}")

    low_high = plan.cutoff_search_range
    check(len(low_high) == 2 and 0 < low_high[0] < low_high[1] < 1,
          "plan parameter 'cutoff_search_range' must be two proportions 0 < low < high < 1")
