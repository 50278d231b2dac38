"""The index date: the date of a patient's earliest metastasectomy (endpoints.md). Every endpoint,
interval and follow-up month is counted from it. This module is its one definition, in the three
forms the registry needs: for a case's records in memory, for Patient querysets in SQL, and for
columns of many patients' operations at once (the analysis frame).

An analysis plan may choose the rule "first_complete_pm" (endpoints.md v2): the index is then the
earliest operation whose margin is one of ``complete_margins`` (earlier incomplete ones are
history); a patient without any complete operation keeps the earliest one (so the cohort flow
can say "index margin not complete"). The default rule, "first_pm", is the earliest operation.
"""
import numpy as np
from django.db.models import Min, Q
from django.db.models.functions import Coalesce

INDEX_RULES = ("first_pm", "first_complete_pm")


def index_operation(metastasectomies, *, rule="first_pm", complete_margins=("R0",)):
    """The index operation of these (one patient's) metastasectomies under ``rule``, or None."""
    dated = [pm for pm in metastasectomies if pm.surgery_date is not None]
    complete = [pm for pm in dated if pm.margin in complete_margins]
    candidates = complete if rule == "first_complete_pm" and complete else dated
    return min(candidates, key=lambda pm: pm.surgery_date) if candidates else None


def index_date(*, rule="first_pm", complete_margins=("R0",)):
    """An expression for Patient querysets: the patient's index date (NULL without a metastasectomy).

    An aggregate over the join, not a correlated subquery: for 100,000 patients the subquery cost
    0.6 s more (an index probe per patient), the join's one hash aggregate 0.35 s."""
    first = Min("metastasectomies__surgery_date")
    if rule != "first_complete_pm":
        return first
    complete = Min("metastasectomies__surgery_date", filter=Q(metastasectomies__margin__in=complete_margins))
    return Coalesce(complete, first)


def index_rows(patients, surgery_dates, margins=None, *, rule="first_pm", complete_margins=("R0",)):
    """A boolean mask over operations given as arrays (patient key, datetime64 surgery date and,
    for the rule "first_complete_pm", margin): True at each patient's index operation. One sort
    of the operations, ~10 ms for 120,000 (fetching an SQL index date with every patient instead
    cost the analysis frame 0.35 s)."""
    patients, dates = np.asarray(patients), np.asarray(surgery_dates, dtype="datetime64[ns]")
    incomplete = np.zeros(len(dates), dtype=bool)
    if rule == "first_complete_pm":
        incomplete = ~np.isin(np.asarray(margins, dtype=object), list(complete_margins))
    # by patient, then complete operations first, then by date: each patient's first is its index
    order = np.lexsort((dates, incomplete, patients))
    ordered = patients[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    mask = np.zeros(len(order), dtype=bool)
    mask[order[first]] = True
    return mask & ~np.isnat(dates)
