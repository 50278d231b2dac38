"""Recording the audit trail of requests: who read which patient-level data, which requests were
refused, refused imports and sign-in unlocks. Each is one SecurityEvent row, one INSERT.

    audit.log_read(request, patient_ids=[row["patient_id"] for row in page])   # a page of records
    audit.log_read(request, centres=["MUC"], rows=120)                          # an aggregate

A request whose view recorded something is marked, so the refusal middleware
(registry.security.middleware.RefusedRequestMiddleware) does not record it a second time.
Clinical changes are recorded by django-simple-history, in the services.
"""
from axes.helpers import get_client_ip_address

from registry import access
from registry.models import SecurityEvent

EVERY_CENTRE = "*"
MARK = "_registry_audited"


def _http_request(request):
    """The Django request behind a REST framework request (or the request itself)."""
    return getattr(request, "_request", request)


def _record(request, event, *, user=None, what="", **fields):
    """One SecurityEvent. With a request: its user, client address and URL name; the request is
    marked as recorded. Without one (a command), `user` and `what` say who and what."""
    ip_address = None
    if request is not None:
        http = _http_request(request)
        # The Django request's user: the REST framework sets it too once a token is accepted, and
        # asking the REST framework's request while it authenticates would authenticate again.
        user = getattr(http, "user", None)
        ip_address = get_client_ip_address(http)
        match = getattr(http, "resolver_match", None)
        what = what or (match.view_name if match else http.path)
        setattr(http, MARK, True)
    user = access.audit_user(user)
    if not getattr(user, "is_authenticated", False):
        user = None
    return SecurityEvent.objects.create(user=user, username=user.get_username() if user else "", event=event,
                                        ip_address=ip_address, what=what[:100], **fields)


def already_recorded(request):
    return getattr(_http_request(request), MARK, False)


def centre_of(patient_id):
    """The centre a pseudonym names (the part before the '-', e.g. MUC of MUC-7K3QZ9)."""
    return patient_id.split("-", 1)[0]


def scope_text(centres):
    """Centre codes as stored: sorted and space-separated; None (every centre) is '*'."""
    return EVERY_CENTRE if centres is None else " ".join(sorted(set(centres)))


def log_read(request, *, patient_ids=None, centres=None, rows=None, patient="", what="", user=None):
    """Record one read of patient-level data: who, when, from where, which page or endpoint
    (`what`, default the URL name) and its scope.

    `patient_ids`: the pseudonym of each row sent (one per row); their centres are the scope, the
    row count is their number, and a read of one patient's rows names that patient. Otherwise
    `centres` (None: every centre), `rows` (e.g. the patients an aggregate covers) and `patient`
    (the one patient read about, if so). The query string (the filters asked for) is kept as the
    detail. `request` None: a command run by `user`.
    """
    if patient_ids is not None:
        patient_ids = list(patient_ids)
        centres = {centre_of(pid) for pid in patient_ids}
        rows = len(patient_ids) if rows is None else rows
        patient = patient_ids[0] if len(set(patient_ids)) == 1 else ""
    query = _http_request(request).META.get("QUERY_STRING", "") if request is not None else ""
    return _record(request, SecurityEvent.READ, user=user, what=what, centres=scope_text(centres),
                   patient_id=patient, rows=rows, detail=query[:200])


def log_refused(request, status, *, patient_id=""):
    """Record a refused request: 401, 403, 404 (another centre's patient) or 429 (throttled)."""
    http = _http_request(request)
    event = SecurityEvent.THROTTLED if status == 429 else SecurityEvent.DENIED
    centres = centre_of(patient_id) if patient_id else ""
    return _record(request, event, status=status, patient_id=patient_id, centres=centres,
                   detail=f"{http.method} {http.path}"[:200])


def log_if_hidden(request, model, pk):
    """An access-scoped lookup found nothing: if the record exists all the same, it is another
    centre's, and the refusal is recorded as a 404 naming its patient. A pseudonym that exists
    nowhere is a typo or a guess, and is not recorded. (One query, on this path only.)"""
    patient_id = model.objects.filter(pk=pk).values_list("patient_id", flat=True).first()
    if patient_id is not None:
        log_refused(request, 404, patient_id=patient_id)


def log_invalid_token(request):
    """An API or REDCap token that is unknown, expired or revoked."""
    http = _http_request(request)
    return _record(request, SecurityEvent.TOKEN_INVALID, detail=f"{http.method} {http.path}"[:200])


def log_import_refused(*, user, file_name, sha256, errors, rows, dry_run):
    """A file the import refused (the file itself, or rows with errors), or whose dry run found errors."""
    detail = f"{file_name[:100]}, sha256 {sha256}, {errors} errors" + (", dry run" if dry_run else "")
    return _record(None, SecurityEvent.IMPORT_REFUSED, user=user, what="import", rows=rows, detail=detail[:200])


def log_unlock(request, username, attempts):
    """A user name's sign-in lockout lifted (`attempts`: the failure counters cleared)."""
    return _record(request, SecurityEvent.UNLOCKED,
                   detail=f"{username[:150]}: {attempts} failure counters cleared"[:200])


def log_signature_refused(request, *, reason, patient_id="", centres=""):
    """A signature refused because the signer's identity was not confirmed (`reason`: a wrong
    password, a missing or wrong code, a locked-out user name)."""
    return _record(request, SecurityEvent.SIGNATURE_REFUSED, patient_id=patient_id, centres=centres,
                   detail=reason[:200])
