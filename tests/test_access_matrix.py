"""Who may open what: one matrix over every URL pattern of the site, generated from the URL
configuration, so a page added anywhere without a row here fails
`test_every_url_pattern_is_in_a_matrix`.

The REST and REDCap endpoints have their own, finer matrix (every method, token clients) in
tests/registry/api/test_api_access.py; this module checks that the two together cover every pattern, and owns
everything else: the data-entry pages, import and export, the dashboard, the account pages, the
security log and the admin.

Each cell is the status of a GET or a POST for one role: a number, LOGIN (sent to sign in) or
ADMIN_LOGIN (sent to the admin's sign-in page). Roles: anonymous; a nurse of the case's centre
(MUC); a nurse of another centre (BER); a PI of MUC; a monitor of MUC (reads and verifies, changes
no clinical data); a coordinator; and a deactivated user, a coordinator of MUC who signed in and
was deactivated afterwards. Deleting (patient_delete,
record_delete, with a reason), restoring a deleted follow-up (deleted_record_restore), importing (a real CSV
file), exporting (the pooled zip), marking a record complete (record_status), signing with the PI's
password, verifying a field and freezing the registry (freeze_list) are real POSTs.
A refused request, and every GET, must leave the clinical tables as they were.
"""
import datetime
import zlib

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from registry import services
from registry.models import (
    DeletedRecord,
    ExportLog,
    FollowUp,
    ImportRun,
    Job,
    Metastasectomy,
    Patient,
    PrimaryTumour,
    Query,
    QueryMessage,
    SystemicTherapy,
)
from registry.services import queries
from registry.transfer import jobs
from tests import factories as f
from tests.registry.api.test_api_access import EXPECTED as API_EXPECTED

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "nurse", "other_nurse", "pi", "monitor", "coordinator", "deactivated"]
LOGIN, ADMIN_LOGIN = "login", "admin-login"
MODELS = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp, ImportRun, ExportLog, Query, QueryMessage)


def walk(patterns, namespace=""):
    """(qualified name, pattern) of every URL pattern below `patterns`."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            yield f"{namespace}{pattern.name}", pattern


def row(get, post):
    """{role: (GET, POST)} from two {role: status} dicts."""
    return {role: (get[role], post[role]) for role in ROLES}


def everyone(status):
    return dict.fromkeys(ROLES, status)


def signed_in(status=200, **by_role):
    """`status` for every signed-in role unless named; the anonymous and deactivated sign in."""
    return {**everyone(status), "anonymous": LOGIN, "deactivated": LOGIN, **by_role}


# A nurse of another centre gets 404 for the centre's pages and patients (not even their existence
# is shown); a PI and a monitor read everything of MUC but every form is 403.
OWN_CENTRES = signed_in(other_nurse=404)
READ_PAGE = row(OWN_CENTRES, signed_in(405))
READERS = {"other_nurse": 404, "pi": 403, "monitor": 403}
FORM_PAGE = row(signed_in(**READERS), signed_in(**READERS))
DELETE_PAGE = row(signed_in(**READERS), signed_in(302, **READERS))
SIGNED_IN_PAGE = row(signed_in(), signed_in(405))
ADMIN_PAGE = row(everyone(ADMIN_LOGIN), everyone(ADMIN_LOGIN))

EXPECTED = {
    # data entry (registry/web/urls.py)
    "home": row(signed_in(302, coordinator=200), signed_in(405)),
    "patient_list": READ_PAGE,
    "study_progress": SIGNED_IN_PAGE,
    "follow_up_due": SIGNED_IN_PAGE,
    "patient_new": FORM_PAGE,
    "data_quality": READ_PAGE,
    "patient_detail": READ_PAGE,
    "patient_history": READ_PAGE,
    "patient_edit": FORM_PAGE,
    "record_add": FORM_PAGE,
    "record_edit": FORM_PAGE,
    "patient_delete": DELETE_PAGE,
    "record_delete": DELETE_PAGE,
    # deleted records: each reads its own centres' (the other centre's nurse sees none of MUC's); only
    # a coordinator restores one, and the other centre's nurse does not learn that it exists
    "deleted_records": row(signed_in(), signed_in(405)),
    "deleted_record_restore": row(signed_in(405), signed_in(403, other_nurse=404, coordinator=302)),
    # marking the therapy complete is the nurse's move (and the coordinator's); a monitor verifies
    "record_status": row(signed_in(405), signed_in(302, **READERS)),
    # signing: a PI of MUC only; the case is still in progress, so her signature is refused (400)
    "patient_sign": row(signed_in(403, pi=200, other_nurse=404), signed_in(403, pi=400, other_nurse=404)),
    "centre_sign": row(signed_in(403, pi=200, other_nurse=404), signed_in(403, pi=400, other_nurse=404)),
    # field verification: a monitor of MUC and a coordinator; the records are in progress (400)
    "patient_verify": row(signed_in(403, monitor=200, coordinator=200, other_nurse=404),
                          signed_in(403, monitor=400, coordinator=400, other_nurse=404)),
    "record_verify": row(signed_in(403, monitor=200, coordinator=200, other_nurse=404),
                         signed_in(403, monitor=400, coordinator=400, other_nurse=404)),
    # queries: everyone has a worklist (of their own centres); the nurse answers the monitor's query
    # on the therapy, which a PI and the monitor may not; a monitor or a coordinator raises one
    "query_list": row(signed_in(), signed_in(405)),
    "query_detail": row(OWN_CENTRES, signed_in(302, other_nurse=404, pi=403, monitor=403)),
    "query_new": row(signed_in(403, other_nurse=404, monitor=200, coordinator=200),
                     signed_in(403, other_nurse=404, monitor=302, coordinator=302)),
    # import and export
    # An upload or an export request becomes a job and the browser is sent to its page (302); the
    # other centre's nurse's upload of a row of MUC is refused there (tests/registry/transfer).
    "import_upload": row(signed_in(pi=403, monitor=403), signed_in(302, pi=403, monitor=403)),
    "export_download": row(signed_in(403, coordinator=200), signed_in(403, coordinator=302)),
    # a job is found only by the user who submitted it: the nurse's import (its problems and the
    # pseudonyms it issued), the coordinator's export (its archive)
    "job_detail": row(signed_in(404, nurse=200), signed_in(405)),
    "job_errors": row(signed_in(404, nurse=200), signed_in(405)),
    "job_pseudonyms": row(signed_in(404, nurse=200), signed_in(405)),
    "job_result": row(signed_in(404, coordinator=200), signed_in(405)),
    # the nurse's own dry run: imported now, or sent back to the upload when its file is gone
    "job_import_now": row(signed_in(405), signed_in(404, nurse=302)),
    # the survival dashboard (?centre=MUC: the nurse of BER may not choose it)
    "analysis:dashboard": READ_PAGE,
    "analysis:version": READ_PAGE,
    "analysis:print": READ_PAGE,
    "analysis:figure": READ_PAGE,
    "analysis:table": READ_PAGE,
    "analysis:json": READ_PAGE,
    "analysis:plan_json": READ_PAGE,
    "analysis:plan_save": row(signed_in(405), signed_in(302, other_nurse=404)),
    # the paper pack of a freeze holds row-level data: only those who may export the pooled dataset
    "analysis:paper_pack": row(signed_in(403, coordinator=200), signed_in(405)),
    # accounts, the security log, the language
    "login": row(everyone(200), everyone(200)),
    "logout": row(everyone(405), everyone(302)),
    "two_factor_verify": row(signed_in(302), signed_in(302)),
    "two_factor_setup": row(signed_in(), signed_in()),
    "password_change": row(signed_in(), signed_in()),
    "password_change_done": SIGNED_IN_PAGE,
    "security_log": row(signed_in(403, coordinator=200), signed_in(405)),
    "audit_export": row(signed_in(403, coordinator=200), signed_in(405)),
    # data freezes: coordinators only (the POST freezes the registry as "matrix")
    "freeze_list": row(signed_in(403, coordinator=200), signed_in(403, coordinator=302)),
    "freeze_diff": row(signed_in(403, coordinator=200), signed_in(405)),
    "freeze_diff_csv": row(signed_in(403, coordinator=200), signed_in(405)),
    "set_language": row(everyone(302), everyone(302)),
    # the admin is for staff only: nobody here is staff (tests/registry/test_admin.py covers superusers)
    "admin:login": row(everyone(200), everyone(200)),
    "admin:logout": row(everyone(302), everyone(302)),
    # the admin's import (preview, confirmation) and export of each clinical table: staff pages like the
    # rest of the admin; tests/registry/test_admin_import_export.py: only a coordinator among staff
    **{f"admin:registry_{model}_{page}": ADMIN_PAGE
       for model in ("patient", "primarytumour", "metastasectomy", "systemictherapy", "followup")
       for page in ("import", "process_import", "export")},
}


def is_admin_page(name):
    return name.startswith("admin:") and name not in EXPECTED


def test_every_url_pattern_is_in_a_matrix():
    api = {name for name, _method in API_EXPECTED}
    uncovered = [name for name, _pattern in walk(get_resolver().url_patterns)
                 if name not in EXPECTED and not is_admin_page(name)
                 and name.removeprefix("api:") not in api and name != "redcap_api"]
    assert not uncovered, "add these URL patterns to a matrix: " + repr(uncovered)


def test_no_name_in_the_matrix_is_stale():
    names = {name for name, _pattern in walk(get_resolver().url_patterns)}
    assert set(EXPECTED) <= names


@pytest.fixture
def world(case, nurse, other_nurse, pi, monitor, coordinator):
    deactivated = f.user("deactivated", memberships=[("MUC", "coordinator")])
    clients = {"anonymous": Client()}
    for role, user in [("nurse", nurse), ("other_nurse", other_nurse), ("pi", pi), ("monitor", monitor),
                       ("coordinator", coordinator), ("deactivated", deactivated)]:
        clients[role] = Client()
        clients[role].force_login(user)
    deactivated.is_active = False
    deactivated.save()
    extra = services.record_save(user=nurse, record=f.follow_up(case, event_date=datetime.date(2017, 2, 1)))
    services.record_delete(user=nurse, record=extra, reason="entered twice")  # a deletion to list and restore
    queries.query_raise(user=monitor, record=case.systemic_therapies.get(), field="cycles", text="How many cycles?")
    Job.objects.create(kind=Job.IMPORT, user=nurse, state=Job.DONE, options={"file_name": "matrix.csv"},
                       report={"ok": False, "error_count": 0})
    Job.objects.create(kind=Job.EXPORT, user=coordinator, state=Job.DONE, options={"centre": ""},
                       result=b"PK\x05\x06" + bytes(18), result_name="registry.zip")
    services.freeze_create(user=coordinator, name="matrix-base")
    return {"case": case, "clients": clients}


def cache_job_details():
    """The nurse's import job's details, which live in the cache (cleared before every request)."""
    job = Job.objects.get(kind=Job.IMPORT)
    text = zlib.compress(b"sheet,row,column,value,message\n")
    cache.set(jobs.import_details_key(job.pk), {"errors": [], "warnings": [], "errors_csv": text, "mapping_csv": text})


# Sample values for the admin's URL arguments: every admin page refuses non-staff before reading them.
ADMIN_ARGS = {"object_id": "1", "id": "1", "pk": "1", "app_label": "registry", "content_type_id": "1"}


def admin_url(name, pattern):
    """The URL of an admin page, its arguments filled with samples."""
    if pattern.name is None:  # the admin's catch-all for unknown addresses
        return "/admin/no-such-page/"
    regex = pattern.pattern.regex
    if regex.groups and not regex.groupindex:  # unnamed groups (simple-history's revision page)
        return reverse(name, args=["1"] * regex.groups)
    arguments = getattr(pattern.pattern, "converters", None) or regex.groupindex
    return reverse(name, kwargs={argument: ADMIN_ARGS[argument] for argument in arguments})


def url_for(name, pattern, case):
    therapy = case.systemic_therapies.get()
    job = Job.objects.get(kind=Job.IMPORT)
    export = Job.objects.get(kind=Job.EXPORT)
    record = f"/patients/{case.pk}/systemic-therapies/"
    urls = {
        "home": "/", "patient_list": "/patients/?centre=MUC", "patient_new": "/centres/MUC/patients/new/",
        "data_quality": "/centres/MUC/data-quality/", "patient_detail": f"/patients/{case.pk}/",
        "patient_edit": f"/patients/{case.pk}/edit/", "patient_delete": f"/patients/{case.pk}/delete/",
        "patient_history": f"/patients/{case.pk}/history/", "record_add": record + "add/",
        "record_status": f"/patients/{case.pk}/status/",
        "record_edit": f"{record}{therapy.pk}/edit/", "record_delete": f"{record}{therapy.pk}/delete/",
        "patient_sign": f"/patients/{case.pk}/sign/", "centre_sign": "/centres/MUC/sign/",
        "patient_verify": f"/patients/{case.pk}/verify/", "record_verify": f"{record}{therapy.pk}/verify/",
        "import_upload": "/transfer/import/", "export_download": "/transfer/export/",
        "job_detail": f"/transfer/jobs/{job.pk}/", "job_result": f"/transfer/jobs/{export.pk}/file",
        "job_import_now": f"/transfer/jobs/{job.pk}/import-now/",
        "job_errors": f"/transfer/jobs/{job.pk}/errors.csv", "job_pseudonyms": f"/transfer/jobs/{job.pk}/pseudonyms.csv",
        "analysis:dashboard": "/analysis/?centre=MUC", "analysis:version": "/analysis/version?centre=MUC",
        "analysis:print": "/analysis/print/?centre=MUC", "analysis:figure": "/analysis/figures/km-dfs.svg?centre=MUC",
        "analysis:table": "/analysis/data/km.csv?centre=MUC", "analysis:json": "/analysis/report.json?centre=MUC",
        "analysis:plan_json": "/analysis/plan.json?centre=MUC", "analysis:plan_save": "/analysis/plans/?centre=MUC",
        "analysis:paper_pack": "/analysis/paper-pack.zip?centre=MUC&freeze=matrix-base",
        "login": "/accounts/login/", "logout": "/accounts/logout/", "two_factor_verify": "/accounts/two-factor/",
        "two_factor_setup": "/accounts/two-factor/setup/", "password_change": "/accounts/password_change/",
        "password_change_done": "/accounts/password_change/done/",
        "security_log": "/security/", "audit_export": "/security/audit/", "set_language": "/i18n/setlang/",
        "deleted_records": "/deleted/", "deleted_record_restore": f"/deleted/{DeletedRecord.objects.get().pk}/restore/",
        "query_list": "/queries/", "query_detail": f"/queries/{Query.objects.get(origin='manual').pk}/",
        "query_new": f"{record}{therapy.pk}/queries/new/",
        "freeze_list": "/freezes/", "freeze_diff": "/freezes/diff/?freeze=matrix-base&against=live",
        "freeze_diff_csv": "/freezes/diff.csv?freeze=matrix-base&against=live",
    }
    return urls.get(name) or admin_url(name, pattern)


def post_data(name, case):
    """The body of a POST: a real change where the page makes one, else an empty form."""
    if name in ("patient_delete", "record_delete"):
        record = case if name == "patient_delete" else case.systemic_therapies.get()
        return {"version": record.version, "reason": "entered in error"}
    if name == "deleted_record_restore":
        return {"reason": "deleted by mistake"}
    if name == "record_status":
        return {"kind": "systemic-therapies", "pk": case.systemic_therapies.get().pk, "status": "complete"}
    if name in ("patient_sign", "centre_sign"):
        return {"password": "correct-horse-battery"}
    if name in ("patient_verify", "record_verify"):
        record = case if name == "patient_verify" else case.systemic_therapies.get()
        return {"fields": "sex" if name == "patient_verify" else "regimen", "version": record.version}
    if name == "import_upload":
        csv = f"patient_id,event_date,event,recurrence_site,cause_of_death\n{case.pk},2016-06-01,contact,,\n"
        return {"file": SimpleUploadedFile("follow_up.csv", csv.encode()), "table": ""}
    if name == "export_download":
        return {"file_format": "csv", "deidentify": "none", "centre": ""}
    if name == "analysis:plan_save":
        return {"name": "matrix"}
    if name == "query_detail":
        return {"action": "answer", "text": "Six cycles."}
    if name == "query_new":
        return {"field": "cycles", "text": "How many cycles?"}
    if name == "freeze_list":
        return {"name": "matrix", "rule": "all"}
    return {}


def outcome(response):
    location = response.get("Location", "")
    if response.status_code == 302 and location.startswith("/accounts/login/?next="):
        return LOGIN
    if response.status_code == 302 and location.startswith("/admin/login/?next="):
        return ADMIN_LOGIN
    return response.status_code


def clinical_state():
    return [model.objects.count() for model in MODELS] + [FollowUp.objects.filter(event_date__year=2016).count()]


PATTERNS = dict(walk(get_resolver().url_patterns))


def matrix_names():
    return sorted(name for name in PATTERNS if name in EXPECTED or is_admin_page(name))


@pytest.mark.parametrize("name", matrix_names())
def test_matrix(world, name):
    """Every role, GET and POST, each on the same data (a savepoint is rolled back after each)."""
    expected = EXPECTED.get(name, ADMIN_PAGE)
    case = world["case"]
    url = url_for(name, PATTERNS[name], case)
    problems = []
    for role in ROLES:
        for method, wanted in zip(("GET", "POST"), expected[role]):
            savepoint = transaction.savepoint()
            cache.clear()
            cache_job_details()
            before = clinical_state()
            client = world["clients"][role]
            response = client.get(url) if method == "GET" else client.post(url, post_data(name, case))
            got = outcome(response)
            if got != wanted:
                problems.append(f"{role} {method} {url}: {got}, expected {wanted}")
            refused = not isinstance(wanted, int) or wanted >= 400
            if (refused or method == "GET") and clinical_state() != before:
                problems.append(f"{role} {method} {url}: a refused request or a read changed the data")
            if role == "other_nurse" and name != "import_upload" and case.pk in response.content.decode(errors="replace").split("</header>")[-1]:
                problems.append(f"{role} {method} {url}: the other centre's case shows")
            transaction.savepoint_rollback(savepoint)
    assert not problems, "\n".join(problems)

