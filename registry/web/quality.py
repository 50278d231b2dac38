"""Completeness checks: what the analysis still lacks for a patient.

Plain functions over patient querysets. Every check is a database condition on annotations made
in one query (EXISTS and scalar subqueries), so a list of a thousand patients costs one query,
not one per patient, and the list can be filtered by completeness in the database.
"""
import datetime
from dataclasses import dataclass

from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.utils.translation import gettext_lazy as _

from registry.index_date import index_date
from registry.models import FollowUp, Metastasectomy, PrimaryTumour

# Follow-up older than this is "lost" for the survival analysis until a new contact is entered.
FOLLOW_UP_STALE_AFTER = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Gap:
    code: str
    message: str
    section: str  # the part of the patient page that fixes it: patient, primary-tumour, ...


GAPS = (
    Gap("no_primary_tumour", _("No primary tumour entered."), "primary-tumour"),
    Gap("no_metastasectomy", _("No metastasectomy entered."), "metastasectomies"),
    Gap("no_follow_up", _("No follow-up entered."), "follow-up"),
    Gap("follow_up_stale", _("Last follow-up is more than 12 months ago."), "follow-up"),
    Gap("ecog_blank", _("ECOG at the first metastasectomy is blank."), "patient"),
    Gap("grade_blank", _("Grade of the primary tumour is blank."), "primary-tumour"),
    Gap("primary_margin_blank", _("Margin of the primary tumour is blank."), "primary-tumour"),
)


def _conditions(today):
    cutoff = today - FOLLOW_UP_STALE_AFTER
    return {
        "no_primary_tumour": Q(has_primary_tumour=False),
        "no_metastasectomy": Q(has_metastasectomy=False),
        "no_follow_up": Q(has_follow_up=False),
        # A death closes follow-up for good: nothing more to ask for.
        "follow_up_stale": Q(has_follow_up=True, has_death=False, last_follow_up_date__lt=cutoff),
        # A missing-data code (unknown, not done, not applicable) answers the question: no gap.
        "ecog_blank": Q(ecog__isnull=True) & ~Q(missing_codes__has_key="ecog"),
        "grade_blank": Q(has_primary_tumour=True, primary_tumour__grade__isnull=True)
        & ~Q(primary_tumour__missing_codes__has_key="grade"),
        "primary_margin_blank": Q(has_primary_tumour=True, primary_tumour__margin__isnull=True)
        & ~Q(primary_tumour__missing_codes__has_key="margin"),
    }


def with_completeness(patients, *, today=None):
    """The patients annotated with one boolean `gap_<code>` per check (and the facts behind them)."""
    today = today or datetime.date.today()
    follow_ups = FollowUp.objects.filter(patient=OuterRef("pk"))
    patients = patients.annotate(
        has_primary_tumour=Exists(PrimaryTumour.objects.filter(patient=OuterRef("pk"))),
        has_metastasectomy=Exists(Metastasectomy.objects.filter(patient=OuterRef("pk"))),
        has_follow_up=Exists(follow_ups),
        has_death=Exists(follow_ups.filter(event="death")),
        last_follow_up_date=Subquery(follow_ups.order_by("-event_date").values("event_date")[:1]),
        index_date=index_date(),
        primary_tumour_pk=F("primary_tumour__pk"),
    )
    return patients.annotate(**{
        f"gap_{code}": ExpressionWrapper(condition, output_field=BooleanField())
        for code, condition in _conditions(today).items()
    })


def only_incomplete(annotated):
    """Patients from `with_completeness` with at least one gap."""
    condition = Q()
    for gap in GAPS:
        condition |= Q(**{f"gap_{gap.code}": True})
    return annotated.filter(condition)


def only_complete(annotated):
    return annotated.filter(**{f"gap_{gap.code}": False for gap in GAPS})


def incomplete(patients, *, today=None):
    """The patients with at least one gap, annotated (one query)."""
    return only_incomplete(with_completeness(patients, today=today))


def gaps(patient):
    """The gaps of one patient from `with_completeness` (reads annotations, no query)."""
    return [gap for gap in GAPS if getattr(patient, f"gap_{gap.code}")]
