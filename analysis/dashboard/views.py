"""The survival dashboard: thin views over analysis.dashboard (computation and cache) and
analysis.plots (figures). Who sees which centres is decided by registry.access only.

- PIs and coordinators see the pooled registry (access.analysis_centre_codes = every centre) and
  may narrow it to one centre with ?centre=CODE;
- a nurse sees her own centre(s); asking for another centre's view gets 404, as everywhere in
  the registry (its existence is not confirmed);
- anonymous visitors are sent to sign in.
?freeze=NAME computes everything from that data freeze instead of the live registry, for the same
centres (an unknown name is 404); the page then says which freeze, when and its hash.
Every download of results (figures, tables, the report) is recorded with the centres and the number
of patients it covers, the paper pack (row-level data) with its patients (registry.security.audit);
the pages themselves are not. Each download names its data (freeze or live data version), plan and
software (analysis.provenance): the figures in their metadata, the CSV tables in a last comment
line, the report in its keys.
"""
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from analysis import dashboard, provenance
from analysis.dashboard import tables
from analysis.models import SavedPlan
from analysis.plan import AnalysisPlan, PlanError
from registry import access, selectors
from registry.security import audit

# --- request parsing ----------------------------------------------------------------------------

def analysis_centres(request):
    """None (every centre) or the tuple of centre codes the results pool for this request."""
    allowed = access.analysis_centre_codes(request.user)
    requested = request.GET.get("centre")
    if requested:
        if (allowed != access.ALL and requested not in allowed) or not selectors.centres([requested]).exists():
            raise Http404  # another centre's view: do not even say whether it exists
        return (requested,)
    if allowed == access.ALL:
        return None
    if not allowed:
        raise PermissionDenied(_("You are not a member of any centre."))
    return tuple(sorted(allowed))


def base_plan(request):
    """(the saved plan named by ?plan=ID or the defaults of endpoints.md, the SavedPlan or None)."""
    saved_id = request.GET.get("plan")
    if not saved_id:
        return AnalysisPlan(), None
    if not saved_id.isdigit():
        raise Http404
    saved = get_object_or_404(SavedPlan, pk=saved_id)
    try:
        return saved.analysis_plan(), saved
    except PlanError:
        messages.error(request, _("The saved plan “%(name)s” is no longer valid; showing the defaults.") % {"name": saved})
        return AnalysisPlan(), None


def request_freeze(request):
    """The data freeze named by ?freeze=NAME (404 if there is none), or None: the live registry.
    Its centres are those of the request's scope, as for the live data (analysis_centres)."""
    name = request.GET.get("freeze")
    if not name:
        return None
    freeze = selectors.freeze_named(name)
    if freeze is None:
        raise Http404
    return freeze


def request_plan(request):
    """The scope, controls and plan of a request (refusing what access.py refuses)."""
    centres = analysis_centres(request)
    base, saved = base_plan(request)
    form, plan, factor = dashboard.controls(request.GET, base)
    return {"centres": centres, "form": form, "plan": plan, "factor": factor, "saved": saved,
            "figure_options": dashboard.figure_options(form), "freeze": request_freeze(request)}


def compute(request):
    """Everything a dashboard request needs: scope, controls, plan and the (cached) results."""
    state = request_plan(request)
    return {**state, "results": dashboard.results(state["plan"], state["centres"], state["factor"], state["freeze"])}


def with_cache_header(response, results):
    response["X-Dashboard-Cache"] = results["cache"]
    response["X-Data-Version"] = results["report"]["data_version"]
    return response


# --- pages --------------------------------------------------------------------------------------

@login_required
@require_GET
def dashboard_page(request):
    state = compute(request)
    context = page_context(request, state)
    context["saved_plans"] = SavedPlan.objects.select_related("owner")[:50]
    context["centre_choices"] = centre_choices(request.user)
    context["freeze_choices"] = selectors.freezes()[:50]
    return with_cache_header(render(request, "analysis/dashboard.html", context), state["results"])


@login_required
@require_GET
def print_page(request):
    """The whole report as one print-ready HTML page (figures inline, numbers open)."""
    state = compute(request)
    context = {**page_context(request, state), "plan_json": state["plan"].to_json(indent=2)}
    return with_cache_header(render(request, "analysis/print.html", context), state["results"])


def page_context(request, state):
    results, plan = state["results"], state["plan"]
    report = results["report"]
    figures = dashboard.page_figures(results, state["figure_options"])
    return {
        **state, **figures, "report": report, "query": request.GET.urlencode(), "live_query": live_query(request),
        "generated_at": parse_datetime(report["generated_at"]), "poll_seconds": dashboard.poll_seconds(),
        "strata_note": dashboard.strata_note(results["strata"]),
        "univariable": dashboard.univariable_rows(report, plan),
        "multivariable": dashboard.multivariable_rows(report, plan),
        "subgroups": dashboard.subgroup_rows(report, plan),
        "endpoint_rows": dashboard.endpoint_rows(report),
        "complication_percent": dashboard.percent(report["complications"]["proportion"]),
        "table1": dashboard.table1_rows(report["table1"], state["plan"]),
        "plan_changes": dashboard.plan_changes(plan),
        "software": provenance.software_text(report.get("software")),
        "may_pack": state["freeze"] is not None and access.can_export_pooled(request.user),
        "cohort_steps": tables.cohort_steps(report["cohort"], plan),
        "scope_label": dashboard.scope_label(state["centres"]),
        "therapy_rows": tables.therapy_rows(report),
        "therapy_warnings": tables.warnings_for(report, "therapy_effects"),
        "ph_rows": tables.ph_rows(report),
        "ph_warnings": [w for w in tables.warnings_for(report) if w["code"] == "ph_violated"],
        "heterogeneity_rows": tables.heterogeneity_rows(report),
        "cif_rows": tables.cif_rows(report, plan),
        "cause_specific_rows": tables.cause_specific_rows(report, plan),
        # every other warning at the top, above the numbers (these two stand beside their tables)
        "general_warnings": [w for w in tables.warnings_for(report)
                             if w["code"] not in ("ph_violated", "immortal_time_bias")],
    }


def live_query(request):
    """The request's query without its freeze: the same view of the live registry."""
    query = request.GET.copy()
    query.pop("freeze", None)
    return query.urlencode()


def centre_choices(user):
    """Centres whose own view the user may open (empty for a single-centre user: nothing to choose)."""
    allowed = access.analysis_centre_codes(user)
    centres = selectors.centres(None if allowed == access.ALL else allowed)
    codes = [centre.code for centre in centres]
    return codes if len(codes) > 1 else []


@login_required
@require_GET
def data_version(request):
    """The current data version, polled by the open page (static/analysis/dashboard.js)."""
    centres = analysis_centres(request)  # the page's scope, and the same refusal
    freeze = request_freeze(request)
    version = selectors.data_version(centres) if freeze is None else selectors.freeze_version(freeze)
    response = JsonResponse({"data_version": version})
    response["Cache-Control"] = "no-store"
    return response


# --- downloads ----------------------------------------------------------------------------------

@login_required
@require_GET
def figure_download(request, name, fmt):
    if name not in dashboard.FIGURES or fmt not in ("svg", "png"):
        raise Http404
    state = compute(request)
    content, content_type = dashboard.figure(state["results"], name, fmt, state["figure_options"])
    log_download(request, state["results"])
    return attachment(HttpResponse(content, content_type=content_type),
                      tables.download_name(name, state["results"], state["centres"], fmt), state["results"])


@login_required
@require_GET
def table_download(request, table):
    if table not in dashboard.CSV_TABLES:
        raise Http404
    state = compute(request)
    header, rows = dashboard.csv_rows(state["results"], table, state["figure_options"])
    log_download(request, state["results"])
    text = dashboard.csv_text(header, rows) + provenance.csv_footer(state["results"]["report"]) + "\n"
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    return attachment(response, tables.download_name(table, state["results"], state["centres"], "csv"),
                      state["results"])


@login_required
@require_GET
def json_download(request):
    state = compute(request)
    log_download(request, state["results"])
    response = HttpResponse(dashboard.json_text(state["results"]), content_type="application/json")
    return attachment(response, tables.download_name("survival-report", state["results"], state["centres"], "json"),
                      state["results"])


@login_required
@require_GET
def plan_download(request):
    """The plan as JSON, for ``python manage.py survival_report --plan plan.json`` (no results needed)."""
    plan = request_plan(request)["plan"]
    response = HttpResponse(plan.to_json(indent=2), content_type="application/json")
    return attachment(response, f"plan-{plan.hash}.json")


@login_required
@require_GET
def paper_pack_download(request):
    """The paper pack (analysis/paper) of the dashboard's freeze, plan and centres. It holds row-level
    data (de-identified), so only a user who may export the pooled dataset gets it; and only of a
    freeze, from which it can be made again byte for byte. About 8 s for 10,000 patients
    (bench/paper_pack.py): made while the browser waits, not as a job."""
    if not access.can_export_pooled(request.user):
        raise PermissionDenied(_("The paper pack holds row-level data: only coordinators may download it."))
    state = request_plan(request)
    if state["freeze"] is None:
        return HttpResponseBadRequest(_("Choose a data freeze: a paper pack is made from a freeze."))
    from analysis.paper.pack import paper_pack  # matplotlib and python-docx: only when asked

    buffer = io.BytesIO()
    result = paper_pack(freeze=state["freeze"], plan=state["plan"], out=buffer, centres=state["centres"])
    audit.log_read(request, patient_ids=result.patient_ids)  # row-level data: each patient's read is recorded
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["X-Content-SHA256"] = result.sha256
    return attachment(response, result.name)


def attachment(response, filename, results=None):
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return with_cache_header(response, results) if results else response


def log_download(request, results):
    report = results["report"]
    audit.log_read(request, centres=report["scope"]["centres_included"], rows=report["cohort"]["registered"])


# --- saved plans --------------------------------------------------------------------------------

@login_required
@require_POST
def plan_save(request):
    """Save the plan of the dashboard's current query (the form's action carries it) under a name."""
    plan = request_plan(request)["plan"]  # only someone who may open the dashboard may save its plan
    name = request.POST.get("name", "").strip()[:120]
    if not name:
        messages.error(request, _("Give the plan a name to save it."))
        return redirect(reverse("analysis:dashboard") + "?" + request.GET.urlencode())
    saved = SavedPlan.objects.create(name=name, owner=request.user, plan=plan.replace(name=name).to_dict())
    messages.success(request, _("Saved the plan “%(name)s”.") % {"name": name})
    # Reopen it by id: its cut-offs and covariates now come from the saved plan, not the query.
    query = {key: request.GET[key] for key in ("centre", "stratify", "freeze") if request.GET.get(key)}
    return redirect(reverse("analysis:dashboard") + "?" + urlencode({"plan": saved.pk, **query}))
