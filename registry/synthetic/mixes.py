"""Descriptive mixes (sex, age, sites, regimens, ...) that no analysis depends on."""
from __future__ import annotations

# Descriptive mixes that no analysis depends on (kept out of CohortModel to keep it readable).
SEX = {"LMS": (("female", 0.70), ("male", 0.298), ("diverse", 0.002)),
       "SyS": (("female", 0.50), ("male", 0.498), ("diverse", 0.002)),
       "UPS": (("female", 0.40), ("male", 0.598), ("diverse", 0.002)),
       "other": (("female", 0.50), ("male", 0.498), ("diverse", 0.002))}
AGE = {"LMS": (58, 10), "SyS": (40, 13), "UPS": (62, 11), "other": (52, 14)}
SITE = {
    ("LMS", "female"): (("uterus", 0.45), ("retroperitoneum", 0.20), ("extremity", 0.15),
                        ("trunk", 0.08), ("visceral", 0.12)),
    ("LMS", "other"): (("retroperitoneum", 0.35), ("extremity", 0.30), ("trunk", 0.15),
                       ("visceral", 0.20)),
    ("SyS", "other"): (("extremity", 0.75), ("trunk", 0.12), ("head_neck", 0.06), ("other", 0.07)),
    ("UPS", "other"): (("extremity", 0.70), ("trunk", 0.20), ("retroperitoneum", 0.05),
                       ("head_neck", 0.05)),
    ("other", "other"): (("extremity", 0.50), ("trunk", 0.20), ("retroperitoneum", 0.10),
                         ("visceral", 0.10), ("head_neck", 0.05), ("other", 0.05)),
}
GRADE = {"SyS": (("G2", 0.30), ("G3", 0.65), ("GX", 0.05)),
         "other": (("G1", 0.05), ("G2", 0.30), ("G3", 0.60), ("GX", 0.05))}
PRIMARY_MARGIN = (("R0", 0.70), ("R1", 0.22), ("R2", 0.03), ("RX", 0.05))
RADIOTHERAPY = {True: (("none", 0.85), ("adjuvant", 0.15)),  # uterus
                False: (("none", 0.50), ("neoadjuvant", 0.20), ("adjuvant", 0.30))}
SIDE = {True: (("left", 0.47), ("right", 0.53)),  # one lesion
        False: (("left", 0.30), ("right", 0.35), ("bilateral", 0.35))}
APPROACH = (("vats", 0.45), ("thoracotomy", 0.38), ("robotic", 0.07), ("sternotomy", 0.03),
            ("conversion", 0.07))
RESECTION = {True: (("wedge", 0.70), ("segmentectomy", 0.12), ("lobectomy", 0.17),
                    ("pneumonectomy", 0.01)),
             False: (("wedge", 0.60), ("segmentectomy", 0.05), ("lobectomy", 0.08),
                     ("pneumonectomy", 0.01), ("combined", 0.26))}
ECOG = ((0, 0.60), (1, 0.32), (2, 0.07), (3, 0.01))
REGIMEN = {
    "primary": (("doxorubicin_ifosfamide", 0.60), ("doxorubicin", 0.20), ("ifosfamide", 0.12),
                ("other", 0.08)),
    "pm": (("doxorubicin_ifosfamide", 0.45), ("doxorubicin", 0.20), ("ifosfamide", 0.10),
           ("gemcitabine_docetaxel", 0.15), ("trabectedin", 0.05), ("other", 0.05)),
    "palliative_1": (("doxorubicin", 0.35), ("doxorubicin_dacarbazine", 0.10),
                     ("doxorubicin_trabectedin", 0.08), ("doxorubicin_ifosfamide", 0.10),
                     ("gemcitabine_docetaxel", 0.10), ("trabectedin", 0.07), ("pazopanib", 0.07),
                     ("eribulin", 0.04), ("ifosfamide", 0.03), ("gemcitabine", 0.02),
                     ("dacarbazine", 0.01), ("other", 0.03)),
    "palliative_2": (("trabectedin", 0.25), ("pazopanib", 0.25), ("gemcitabine_docetaxel", 0.20),
                     ("eribulin", 0.10), ("ifosfamide", 0.08), ("gemcitabine", 0.05),
                     ("dacarbazine", 0.03), ("other", 0.04)),
}
REGIMEN_OTHER = tuple((text, 0.2) for text in (  # free text without identifiers, ≤ 100 chars
   "cyclophosphamide", "epirubicin", "high-dose ifosfamide", "temozolomide", "regorafenib"))
MAJOR_COMPLICATIONS = {"IIIa", "IIIb", "IVa", "IVb", "V"}
RESPONSE = {"measurable": (("CR", 0.02), ("PR", 0.18), ("SD", 0.40), ("PD", 0.30), ("NE", 0.10)),
            "adjuvant": (("NE", 1.0),)}
CAUSE_OF_DEATH = {True: (("sarcoma", 0.85), ("treatment", 0.02), ("other", 0.04),
                         ("unknown", 0.09)),  # after a recurrence
                  False: (("sarcoma", 0.30), ("treatment", 0.05), ("other", 0.35),
                          ("unknown", 0.30))}
EVENT_ORDER = {"recurrence": 0, "contact": 1, "death": 2}
