"""The data dictionary's code lists: the single source for models, forms, import, API and export.

Each list holds (code, label) pairs. Codes are stored exactly as listed in
../shared/spec/data-dictionary.md; labels are what a person reads and are translated.
"""
from django.utils.translation import gettext_lazy as _

SEX = [("female", _("female")), ("male", _("male")), ("diverse", _("diverse"))]

HISTOLOGY = [
    ("LMS", _("leiomyosarcoma")),
    ("SyS", _("synovial sarcoma")),
    ("UPS", _("undifferentiated pleomorphic sarcoma")),
    ("other", _("other histology")),
]

PRIMARY_SITE = [
    ("extremity", _("extremity")),
    ("trunk", _("trunk")),
    ("retroperitoneum", _("retroperitoneum")),
    ("uterus", _("uterus")),
    ("visceral", _("visceral")),
    ("head_neck", _("head and neck")),
    ("other", _("other site")),
]

DEPTH = [("superficial", _("superficial")), ("deep", _("deep"))]

GRADE = [("G1", "G1"), ("G2", "G2"), ("G3", "G3"), ("GX", _("GX (not assessable)"))]

PRIMARY_MARGIN = [("R0", "R0"), ("R1", "R1"), ("R2", "R2"), ("RX", _("RX (not assessable)"))]

RADIOTHERAPY = [("none", _("none")), ("neoadjuvant", _("neoadjuvant")), ("adjuvant", _("adjuvant"))]

SIDE = [("left", _("left")), ("right", _("right")), ("bilateral", _("bilateral"))]

APPROACH = [
    ("vats", _("VATS")),
    ("thoracotomy", _("thoracotomy")),
    ("robotic", _("robotic")),
    ("sternotomy", _("sternotomy")),
    ("conversion", _("conversion (VATS to open)")),
]

RESECTION_TYPE = [
    ("wedge", _("wedge resection")),
    ("segmentectomy", _("segmentectomy")),
    ("lobectomy", _("lobectomy")),
    ("pneumonectomy", _("pneumonectomy")),
    ("combined", _("combined")),
]

DIAMETER_SOURCE = [("pathology", _("pathology")), ("ct", _("CT"))]

PM_MARGIN = [("R0", "R0"), ("R1", "R1"), ("R2", "R2")]

CLAVIEN_DINDO = [
    ("none", _("no complication")),
    ("I", "I"),
    ("II", "II"),
    ("IIIa", "IIIa"),
    ("IIIb", "IIIb"),
    ("IVa", "IVa"),
    ("IVb", "IVb"),
    ("V", _("V (death)")),
]
# Clavien-Dindo grades counted as a major complication (endpoints.md: >= IIIa).
MAJOR_COMPLICATION = ("IIIa", "IIIb", "IVa", "IVb", "V")

REGIMEN = [
    ("doxorubicin", _("doxorubicin")),
    ("doxorubicin_ifosfamide", _("doxorubicin + ifosfamide")),
    ("doxorubicin_dacarbazine", _("doxorubicin + dacarbazine")),
    ("doxorubicin_trabectedin", _("doxorubicin + trabectedin")),
    ("ifosfamide", _("ifosfamide")),
    ("gemcitabine_docetaxel", _("gemcitabine + docetaxel")),
    ("gemcitabine", _("gemcitabine")),
    ("trabectedin", _("trabectedin")),
    ("pazopanib", _("pazopanib")),
    ("eribulin", _("eribulin")),
    ("dacarbazine", _("dacarbazine")),
    ("other", _("other regimen")),
]

INTENT = [
    ("primary_neoadjuvant", _("neoadjuvant to the primary")),
    ("primary_adjuvant", _("adjuvant to the primary")),
    ("pm_neoadjuvant", _("before a metastasectomy")),
    ("pm_adjuvant", _("after a metastasectomy")),
    ("palliative", _("palliative")),
]

RESPONSE = [("CR", "CR"), ("PR", "PR"), ("SD", "SD"), ("PD", "PD"), ("NE", "NE")]

EVENT = [("recurrence", _("recurrence")), ("death", _("death")), ("contact", _("contact (seen alive)"))]

RECURRENCE_SITE = [
    ("lung", _("lung")),
    ("local", _("local")),
    ("distant", _("distant")),
    ("multiple", _("multiple sites")),
]

CAUSE_OF_DEATH = [
    ("sarcoma", _("sarcoma")),
    ("treatment", _("treatment-related")),
    ("other", _("other cause")),
    ("unknown", _("unknown")),
]

ROLE = [("nurse", _("study nurse")), ("coordinator", _("coordinator")), ("pi", _("principal investigator")),
        ("monitor", _("monitor"))]

# The data-management cycle of every clinical record (registry.services.status moves it).
RECORD_STATUS = [("in_progress", _("in progress")), ("complete", _("complete")), ("verified", _("verified")),
                 ("locked", _("locked"))]


# Why an optional value is absent, kept apart from a blank (not entered yet): REDCap's project-wide
# "missing data codes", with its usual codes. A record keeps them in `missing_codes` ({column: code});
# only optional columns take one, and the column itself is then empty. The analysis reads every
# code as missing (analysis/frame.py says how "not done" and "unknown" bear on the TFI).
MISSING_CODES = [("UNK", _("Unknown")), ("ND", _("Not done")), ("NA", _("Not applicable"))]


def values(choices):
    """The codes of a (code, label) list, in order."""
    return [code for code, _label in choices]
