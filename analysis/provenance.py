"""What every result names beside its numbers: the data (a freeze, or the live registry at a data
version), the analysis plan and its hash, and the software that computed it.

    provenance.source(report)     # "freeze paper (content hash 3f2a…)" or "live, data version 5c1e…"
    provenance.footer(report)     # one line for a figure's metadata or a table's footer
    provenance.csv_footer(report) # the same as a CSV file's last line: "# Source: ..."
    provenance.software()         # {"registry": "dev", "python": "3.11.2", "lifelines": "0.30.3", ...}

The registry's own version is settings.REGISTRY_VERSION (set at deployment); a report names the
software that computed it ("software"), and its footers name that, not whatever runs later. The
texts follow the active language; the numbers and hashes are the report's own.
"""
import platform
from importlib import metadata

from django.conf import settings
from django.utils.translation import gettext as _

# The packages whose code computes or draws a result, in the order the methods name them.
PACKAGES = ("numpy", "pandas", "scipy", "lifelines", "matplotlib", "python-docx", "Django")


def software():
    """{name: version} of the registry, Python and the packages that compute and draw the results."""
    versions = {"registry": settings.REGISTRY_VERSION, "python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # python-docx only matters to the paper pack
            versions[package] = None
    return versions


def software_text(versions=None):
    """"Sarcoma PM registry dev (Python 3.11.2, lifelines 0.30.3, ...)": the short form for footers, of
    ``versions`` (a report's "software") or of this installation."""
    versions = versions or software()
    parts = [f"Python {versions['python']}"] + [f"{name} {versions[name]}" for name in ("lifelines", "numpy", "pandas")
                                                if versions.get(name)]
    return _("Sarcoma PM registry %(version)s (%(parts)s)") % {"version": versions["registry"],
                                                              "parts": ", ".join(parts)}


def source(report):
    """The data a report was computed from: its freeze with the content hash, or the live registry's
    data version."""
    freeze = report.get("freeze")
    if freeze:
        return _("freeze %(name)s (content hash %(hash)s)") % {"name": freeze["name"],
                                                               "hash": freeze["content_hash"][:16]}
    return _("live, data version %(version)s") % {"version": report["data_version"]}


def plan_text(report):
    return _("plan “%(name)s” (hash %(hash)s)") % {"name": report["plan"]["name"], "hash": report["plan_hash"]}


def footer(report):
    """One line naming the data, the plan and the software of a result."""
    return _("Source: %(source)s; %(plan)s; %(software)s") % {
        "source": source(report), "plan": plan_text(report), "software": software_text(report.get("software"))}


def csv_footer(report):
    """The footer as a CSV file's last line: a comment ("# ...", R read.csv(comment.char = "#"),
    pandas read_csv(comment="#")) without commas, so a reader splitting lines on commas keeps it whole."""
    return "# " + footer(report).replace(",", ";").replace("\n", " ")
