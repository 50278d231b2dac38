"""Warnings of the survival report: what a reader must know before quoting a number.

Each is ``{code, message, model}`` in the report's ``warnings`` list; ``model`` names the model
or section a warning applies to (None: the whole report), so the dashboard shows it beside
that estimate. Codes are stable (``event_at_time_zero``, ``ph_violated``, ...); messages are
for people.
"""


def warn(report, code, message, model=None):
    """Append one warning to ``report["warnings"]`` (created when missing)."""
    report.setdefault("warnings", []).append({"code": code, "message": message, "model": model})
