"""Study progress per centre and the follow-up-due worklist.

Both are scoped by registry.access: a coordinator sees every centre, everyone else the centres
they belong to. The progress page is aggregate (counts, percentages, dates); the worklist names
patients, so it records the read like every other patient list.
"""
import csv
import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from registry import access, selectors
from registry.security import audit

PAGE_SIZE = 50
DAYS_PER_MONTH = 365.25 / 12  # the analysis' month
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 640, 240, 40


def percent(part, whole):
    return round(100 * part / whole) if whole else 0


def progress_rows(user):
    """One dict per readable centre, in code order, with the page's and the CSV's columns."""
    centres = list(access.centres_readable(user))
    progress = selectors.centre_progress(access.patients_readable(user))
    queries = selectors.query_ages_by_centre(access.queries_readable(user))
    rows = []
    for centre in centres:
        found = progress.get(centre.code, {"patients": 0, "records": 0, "complete": 0, "verified": 0,
                                           "last_entry": None})
        pending = queries.get(centre.code, {"open": 0, "answered": 0, "oldest_days": None, "median_days": None})
        rows.append({"centre": centre, **found, **{f"queries_{key}": value for key, value in pending.items()},
                     "complete_percent": percent(found["complete"], found["records"]),
                     "verified_percent": percent(found["verified"], found["records"])})
    return rows


def recruitment_chart(inclusions, centres):
    """An SVG-ready description of the cumulative inclusions per centre, year by year:
    {"lines": [(centre code, [(x, y), ...], total)], "ticks": [(x, year)], "max": n, ...}."""
    if not inclusions:
        return None
    years = list(range(min(year for _c, year in inclusions), max(year for _c, year in inclusions) + 1))
    cumulative = {}
    for code in sorted({code for code, _year in inclusions} | set(centres)):
        total, points = 0, []
        for year in years:
            total += inclusions.get((code, year), 0)
            points.append(total)
        if total:
            cumulative[code] = points
    top = max(points[-1] for points in cumulative.values())
    span = max(len(years) - 1, 1)
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_MARGIN, CHART_HEIGHT - 2 * CHART_MARGIN

    def x(i):
        return round(CHART_MARGIN + inner_w * i / span, 1)

    def y(n):
        return round(CHART_MARGIN + inner_h * (1 - n / top), 1)

    lines = [(code, [(x(i), y(n)) for i, n in enumerate(points)], points[-1]) for code, points in cumulative.items()]
    step = max(1, len(years) // 8)
    return {"lines": lines, "ticks": [(x(i), years[i]) for i in range(0, len(years), step)], "max": top,
            "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_MARGIN, "right": CHART_WIDTH - CHART_MARGIN,
            "top": CHART_MARGIN, "bottom": CHART_HEIGHT - CHART_MARGIN}


@login_required
@require_GET
def study_progress(request):
    """Per centre: patients, records complete and verified (%), open queries with their median and
    oldest age, the last entry, and inclusions over time; ?format=csv downloads the table."""
    rows = progress_rows(request.user)
    if request.GET.get("format") == "csv":
        return progress_csv(rows)
    inclusions = selectors.inclusions_by_year(access.patients_readable(request.user))
    chart = recruitment_chart(inclusions, [row["centre"].code for row in rows])
    return render(request, "registry/study_progress.html", {"rows": rows, "chart": chart})


def blank_if_none(value):
    return "" if value is None else value


def progress_csv(rows):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="study-progress_{timezone.localdate():%Y-%m-%d}.csv"'
    writer = csv.writer(response)
    writer.writerow(["centre", "patients", "records", "complete_percent", "verified_percent", "open_queries",
                     "open_queries_median_age_days", "open_queries_oldest_age_days", "answered_queries", "last_entry"])
    for row in rows:
        last = row["last_entry"]
        writer.writerow([row["centre"].code, row["patients"], row["records"], row["complete_percent"],
                         row["verified_percent"], row["queries_open"], blank_if_none(row["queries_median_days"]),
                         blank_if_none(row["queries_oldest_days"]), row["queries_answered"],
                         timezone.localtime(last).isoformat(timespec="seconds") if last else ""])
    return response


def due_interval_months(request):
    """The interval from ?months= (1–60), else settings.FOLLOW_UP_DUE_MONTHS."""
    try:
        months = int(request.GET.get("months", ""))
    except ValueError:
        return settings.FOLLOW_UP_DUE_MONTHS
    return months if 1 <= months <= 60 else settings.FOLLOW_UP_DUE_MONTHS


@login_required
@require_GET
def follow_up_due(request):
    """Patients alive at their last contact whose last contact is older than the interval: the
    nurse's list of whom to ask about next."""
    months = due_interval_months(request)
    today = timezone.localdate()
    before = today - datetime.timedelta(days=round(months * DAYS_PER_MONTH))
    patients = selectors.follow_up_due(access.patients_readable(request.user).select_related("centre"),
                                       contact_before=before)
    page = Paginator(patients, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(patient, int((today - patient.last_contact).days / DAYS_PER_MONTH), access.can_write_centre(request.user, patient.centre_id))
            for patient in page]
    audit.log_read(request, patient_ids=[patient.pk for patient, _m, _w in rows])
    return render(request, "registry/follow_up_due.html", {
        "page": page, "rows": rows, "months": months, "before": before,
        "title": _("Follow-up due")})
