"""Word documents of the paper pack (python-docx): tables in a journal's layout and the methods.

A table has three rules (above the header, under it, under the last row) and no others, 9 pt text,
the first column left-aligned and the numbers centred; its footnotes follow in 8 pt. Every
document's page footer names the data, the plan and the software (analysis.provenance.footer), and
so do its core properties.

The same content gives the same bytes: the core properties carry a fixed date (the freeze's
instant), and the package is written again with fixed entry dates (python-docx stamps every part
with the time of saving).
"""
import datetime
import io

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt

from analysis.paper.archive import normalised_zip

FONT = "Arial"


class Writer:
    """One document: ``heading``, ``paragraph`` (with **bold** runs), ``table``, then ``bytes``."""

    def __init__(self, *, title, footer, language, when):
        self.document = Document()
        self.when = when
        style = self.document.styles["Normal"]
        style.font.name, style.font.size = FONT, Pt(10)
        properties = self.document.core_properties
        properties.title, properties.subject, properties.comments = title, footer, footer
        properties.author = properties.last_modified_by = "Sarcoma PM registry"
        properties.language, properties.revision = language, 1
        properties.created = properties.modified = when.astimezone(datetime.UTC).replace(microsecond=0)
        paragraph = self.document.sections[0].footer.paragraphs[0]
        paragraph.text = footer
        for run in paragraph.runs:
            run.font.size = Pt(7)

    def heading(self, text, level=1):
        self.document.add_heading(text, level=level)

    def paragraph(self, text, *, size=None):
        """A paragraph; **text** between double asterisks is set in bold (as in the Markdown twin)."""
        paragraph = self.document.add_paragraph()
        for index, part in enumerate(text.split("**")):
            if part:
                run = paragraph.add_run(part)
                run.bold = index % 2 == 1
                if size:
                    run.font.size = Pt(size)
        return paragraph

    def table(self, title, header, rows, footnotes=()):
        """A titled table: ``header`` (cells), ``rows`` (lists of cells; a row of one cell is a
        heading spanning the table), then the footnotes."""
        self.paragraph(f"**{title}**")
        table = self.document.add_table(rows=1 + len(rows), cols=len(header))
        _rules(table)
        for cell, text in zip(table.rows[0].cells, header):
            _cell(cell, text, bold=True, first=cell is table.rows[0].cells[0])
            _rule(cell, "bottom")
        for row, cells in zip(table.rows[1:], rows):
            if len(cells) == 1:
                merged = row.cells[0].merge(row.cells[-1])
                _cell(merged, cells[0], bold=True, first=True)
                continue
            for index, (cell, text) in enumerate(zip(row.cells, cells)):
                _cell(cell, text, first=index == 0)
        for note in footnotes:
            self.paragraph(note, size=8).paragraph_format.space_after = Pt(0)
        self.document.add_paragraph()

    def bytes(self):
        buffer = io.BytesIO()
        self.document.save(buffer)
        return normalised_zip(buffer.getvalue(), self.when)


def _cell(cell, text, *, bold=False, first=False):
    paragraph = cell.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.LEFT if first else WD_ALIGN_PARAGRAPH.CENTER
    paragraph.paragraph_format.space_after = Pt(0)
    run = paragraph.add_run(str(text))
    run.bold = bold
    run.font.size = Pt(9)


def _border(edge):
    element = OxmlElement(f"w:{edge}")
    for name, value in (("val", "single"), ("sz", "6"), ("space", "0"), ("color", "000000")):
        element.set(qn(f"w:{name}"), value)
    return element


def _rules(table):
    """The rules above and under the table (the one under the header is the header cells')."""
    borders = OxmlElement("w:tblBorders")
    borders.append(_border("top"))
    borders.append(_border("bottom"))
    table._tbl.tblPr.append(borders)


def _rule(cell, edge):
    borders = OxmlElement("w:tcBorders")
    borders.append(_border(edge))
    cell._tc.get_or_add_tcPr().append(borders)
