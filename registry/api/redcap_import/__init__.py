"""Record imports through the REDCap endpoint (content=record with data), so a centre that keeps a
local REDCap project pushes its records with PyCap's ``import_records`` or REDCapR's
``redcap_write``: the flat layout the endpoint exports, in JSON or CSV.

Every record goes through the registry's one writer (registry.services.record_save) with every rule,
lock and audit entry of the web app (source ``redcap``), and the import is all or nothing: if any
record is refused, nothing is written and the answer is REDCap's error, one line per problem:
``"record","field","value","message"``.

Parameters as REDCap's:
- ``format`` json or csv (``csvDelimiter`` for CSV), ``type=flat``, ``returnFormat`` of the answer;
- ``overwriteBehavior``: ``normal`` (default) leaves a stored value alone where a cell is empty,
  ``overwrite`` empties it (only for the columns the data have);
- ``dateFormat`` YMD (default), DMY or MDY (YYYY-MM-DD is always understood);
- ``forceAutoNumber=true``: every record of the data is a new patient; its name in the data only
  groups its rows, and the registry issues the pseudonym (``returnContent=auto_ids`` answers with
  "new ID,name in the data" pairs). Without it every record must be a patient the user may write:
  only the registry issues pseudonyms;
- ``returnContent``: count (records imported), ids, auto_ids or nothing.
A repeating row names its record by ``redcap_repeat_instance``: a stored instance is changed, a
free number creates the record under that number (as REDCap would), ``new`` under the next one.
``<instrument>_id``, if filled in, must be the registry's ID of the record at that instance (a
safeguard against merging onto the wrong record). ``redcap_data_access_group`` names a new
patient's centre (as does ``centre``); for a stored patient it must be its own. Form status
columns (``<instrument>_complete``) are read and ignored: a record's status moves only through the
registry's data-management cycle.

A change of a record that is complete or verified needs a reason (registry.services.status), which
REDCap's protocol has no field for: send it as the parameter ``reason`` (applied to every change of
the import; from PyCap, which sends only its own fields, as ``Project(url, token,
params={"reason": "…"})``, i.e. in the query string). Without it such a change is refused, naming
the record.

Who may import: a user who may write (a nurse her centres, a coordinator every centre) with a token
that is not read-only; anyone else gets REDCap's "no import privileges" (403).
"""
import hashlib
from dataclasses import dataclass
from xml.sax.saxutils import escape

from django.http import HttpResponse, JsonResponse

from registry import access
from registry.api.redcap_import.data import read_csv, read_json
from registry.api.redcap_import.importer import DATE_ORDERS, Importer, Refused
from registry.api.redcap_protocol import RedcapError, csv_delimiter, flag
from registry.security import audit

IMPORT_DENIED = "You do not have API Import/Update privileges"
RETURN_CONTENT = ("count", "ids", "auto_ids", "nothing")


@dataclass(frozen=True)
class Options:
    overwrite: bool
    auto_number: bool
    date_order: tuple
    return_content: str
    reason: str

    @classmethod
    def of(cls, request, post):
        if post.get("type", "flat") != "flat":
            raise RedcapError(f'type={post["type"]} is not supported: this registry imports records as type=flat.')
        behaviour = post.get("overwriteBehavior", "") or "normal"
        if behaviour not in ("normal", "overwrite"):
            raise RedcapError('The value of the parameter "overwriteBehavior" is not valid: use normal or overwrite')
        date_format = (post.get("dateFormat", "") or "YMD").upper()
        if date_format not in DATE_ORDERS:
            raise RedcapError('The value of the parameter "dateFormat" is not valid: use YMD, DMY or MDY')
        returned = post.get("returnContent", "") or "count"
        if returned not in RETURN_CONTENT:
            raise RedcapError('The value of the parameter "returnContent" is not valid: use count, ids, auto_ids '
                              "or nothing")
        reason = (post.get("reason") or request.query_params.get("reason") or "").strip()
        return cls(overwrite=behaviour == "overwrite", auto_number=flag(post, "forceAutoNumber"),
                   date_order=DATE_ORDERS[date_format], return_content=returned, reason=reason)


def import_records(request, post):
    """Import the records of `data` (the view has checked content=record); the answer or a RedcapError."""
    user, token = request.user, request.auth
    if getattr(token, "read_only", False) or not access.writable_centre_codes(user):
        raise RedcapError(IMPORT_DENIED, status=403)
    data_format = post.get("format", "xml")
    if data_format not in ("json", "csv"):
        raise RedcapError(f'The value of the parameter "format" ({data_format}) is not supported for imports here: '
                          "use json or csv")
    options = Options.of(request, post)
    data = post.get("data", "")
    raw_rows = read_json(data) if data_format == "json" else read_csv(data, csv_delimiter(post))
    try:
        names = Importer(user, options).run(raw_rows)
    except Refused as refused:
        audit.log_import_refused(user=user, file_name="REDCap API import", sha256=hashlib.sha256(data.encode()).hexdigest(),
                                 errors=len(refused.problems), rows=len(raw_rows), dry_run=False)
        raise RedcapError("\n".join(problem.line() for problem in refused.problems)) from None
    return answer(names, options.return_content, post.get("returnFormat") or "xml")


def answer(names, return_content, fmt):
    """REDCap's answer to an import: `names` is [(record ID, name in the data)] of every record."""
    if return_content == "nothing":
        return HttpResponse("", content_type="text/plain; charset=utf-8")
    if return_content == "count":
        items, tag = len(names), "count"
    elif return_content == "ids":
        items, tag = [pid for pid, _given in names], "id"
    else:
        items, tag = [f"{pid},{given}" for pid, given in names], "id"
    if fmt == "json":
        return JsonResponse({"count": items} if tag == "count" else items, safe=False)
    if fmt == "csv":
        lines = [tag, *map(str, items if isinstance(items, list) else [items])]
        return HttpResponse("\n".join(lines) + "\n", content_type="text/csv; charset=utf-8")
    body = f"<count>{items}</count>" if tag == "count" else "<ids>" + "".join(
        f"<id>{escape(item)}</id>" for item in items) + "</ids>"
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8" ?>\n{body}', content_type="text/xml; charset=utf-8")
