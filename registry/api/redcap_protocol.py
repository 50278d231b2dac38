"""The REDCap API's conventions, shared by the endpoint's exports, imports and log: its request
fields, its error messages and the shapes of its answers (JSON, CSV, XML).

REDCap clients send every request as a form (application/x-www-form-urlencoded or
multipart/form-data); any other body, one too large, or one that cannot be parsed is answered with
a REDCap error (4xx) here, never a server error.
"""
import csv
import datetime
import io
from xml.sax.saxutils import escape

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import HttpResponse, JsonResponse, QueryDict
from django.utils import timezone
from rest_framework import exceptions

from registry.transfer.exporting.writers import neutral

# csvDelimiter as REDCap names its choices.
DELIMITERS = {",": ",", "comma": ",", "tab": "\t", ";": ";", "|": "|", "^": "^"}
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


class RedcapError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.message, self.status = message, status


def form_fields(request):
    """The request's form fields, or an empty QueryDict when its body is not a readable form (the
    view answers such a body with `body_error`; the error's own format is then REDCap's default)."""
    try:
        return request.POST
    except (exceptions.ParseError, exceptions.UnsupportedMediaType, SuspiciousOperation):
        return QueryDict()


def body_error(exc):
    """The RedcapError for an exception raised while the request body was read, or None."""
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return RedcapError("The REDCap API takes its parameters as a form (application/x-www-form-urlencoded or "
                           "multipart/form-data): this request's body is not one.", status=415)
    if isinstance(exc, RequestDataTooBig):
        return RedcapError("The request is too large for this server: import the records in smaller batches.",
                           status=413)
    if isinstance(exc, TooManyFieldsSent):
        return RedcapError("The request has too many parameters.", status=400)
    if isinstance(exc, (exceptions.ParseError, SuspiciousOperation)):
        return RedcapError("The request's form data could not be read.", status=400)
    return None


def param_list(post, name):
    """An array parameter as REDCap accepts it: name[]=a&name[]=b, name[0]=a&name[1]=b or name=a,b."""
    values = list(post.getlist(f"{name}[]"))
    indexed = sorted((key for key in post if key.startswith(f"{name}[") and key[len(name) + 1:-1].isdigit()),
                     key=lambda key: int(key[len(name) + 1:-1]))
    values += [post[key] for key in indexed]
    values += [item for value in post.getlist(name) for item in value.split(",")]
    return [value.strip() for value in values if value.strip()]


def flag(post, name):
    """A true/false parameter (REDCap sends 'true'/'false'; PyCap Python's True/False)."""
    return post.get(name, "").strip().lower() in ("true", "1", "yes")


def error_format(post):
    return post.get("returnFormat") or post.get("format") or "xml"


def error_response(message, *, fmt, status=400):
    if fmt == "json":
        return JsonResponse({"error": message}, status=status)
    if fmt == "csv":
        return HttpResponse(f"ERROR: {message}", status=status, content_type="text/csv; charset=utf-8")
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  <error>{escape(message)}</error>\n</hash>',
                        status=status, content_type="text/xml; charset=utf-8")


def csv_delimiter(post):
    """The csvDelimiter parameter as the character it names (default ',')."""
    name = post.get("csvDelimiter", "") or ","
    if name not in DELIMITERS:
        raise RedcapError('The value of the parameter "csvDelimiter" is not valid: use one of , tab ; | ^')
    return DELIMITERS[name]


def table_response(rows, columns, fmt, *, headers=None, single=False, delimiter=","):
    """Rows as REDCap's JSON (a list, or one object for project info) or CSV (header line first)."""
    if fmt == "json":
        return JsonResponse(rows[0] if single else rows, safe=False, json_dumps_params={"ensure_ascii": False})
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(headers or columns)
    # Text a spreadsheet would run as a formula is made inert, as in the dataset export.
    writer.writerows([[neutral(row.get(column, "")) for column in columns] for row in rows])
    return HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")


def timestamp(post, name):
    """A date-time parameter (YYYY-MM-DD HH:MM:SS, as REDCap takes it, in the server's time zone),
    or None when it is absent."""
    text = post.get(name, "").strip()
    if not text:
        return None
    for pattern in TIMESTAMP_FORMATS:
        try:
            moment = datetime.datetime.strptime(text, pattern)
        except ValueError:
            continue
        return timezone.make_aware(moment)
    raise RedcapError(f'The value of the parameter "{name}" is not a date and time of the format '
                      "YYYY-MM-DD HH:MM:SS")


def local_minute(moment):
    """A time as REDCap's log shows it: YYYY-MM-DD HH:MM, the server's time zone."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")
