"""The paper pack: a data freeze's results as a manuscript needs them (analysis/paper/pack.py).

- pack.py          the archive: what it holds, in which order, deterministic;
- tables.py        Table 1 and the Cox tables as journal rows and CSV;
- figures.py       Kaplan-Meier, cumulative incidence and cohort flow (matplotlib, PDF and SVG, mm);
- documents.py     Word documents (python-docx) with fixed metadata;
- methods.py       the methods paragraph;
- data.py          the de-identified analysis data and its dictionary;
- reproduction.py  reproduce.R and reproduce.py (scripts/), which recompute the estimates;
- archive.py       zip archives whose bytes depend on their content alone.
"""
