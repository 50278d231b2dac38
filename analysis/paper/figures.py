"""The paper pack's figures, drawn by matplotlib at a journal's column widths: Kaplan-Meier curves
and cumulative incidence with the numbers at risk under the time axis, and the cohort flow.

They take the plain data the dashboard's figures take (analysis/dashboard/figures.py: km_figure,
cif_figure), so a paper figure and the dashboard's show the same curves. Layout is in millimetres:
a figure is ``width_mm`` wide (85 mm: one column, 180 mm: the page), its text 7 or 8 pt.

``render`` draws a figure and writes it as PDF and SVG with fixed metadata (no creation date, a
fixed SVG id salt): the same figure gives the same bytes every time, and its metadata name the data,
the plan and the software (analysis.provenance.footer). The SVG keeps its text as text; the PDF
embeds its glyphs as Type 3 fonts (a TrueType subset of DejaVu Sans took fontTools a quarter of a
second per file, most of the pack's time).
"""
import io
import textwrap

import matplotlib
from django.utils.translation import gettext as _
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from analysis.plots import INK, MUTED, colour, logrank_text, probability_label, step_vertices

WIDTHS_MM = (85, 180)
MM = 1 / 25.4  # inches
RC = {"svg.hashsalt": "paper-pack", "svg.fonttype": "none", "pdf.fonttype": 3, "font.family": "DejaVu Sans",
      "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6}


def _font(width_mm):
    return 7.0 if width_mm < 120 else 8.0


class Layout:
    """A figure of fixed size whose axes are placed in millimetres from the top left."""

    def __init__(self, width_mm, height_mm):
        self.width, self.height = width_mm, height_mm
        self.figure = Figure(figsize=(width_mm * MM, height_mm * MM))

    def axes(self, left, top, width, height):
        return self.figure.add_axes((left / self.width, 1 - (top + height) / self.height,
                                     width / self.width, height / self.height))

    def text(self, x_mm, y_mm, content, **options):
        """Text at (x, y) mm from the top left (y is the baseline)."""
        return self.figure.text(x_mm / self.width, 1 - y_mm / self.height, content, **options)


def _censor_marks(curve, horizon):
    """(time, survival) of the censored times, at most one per 1/300 of the axes: a 10,000-patient
    curve has thousands of censored times, which would print as a solid bar."""
    seen, marks = set(), []
    for time, value, censored in zip(curve["time"], curve["survival"], curve["censored"]):
        if censored and value is not None and time <= horizon:
            key = (round(300 * time / horizon), round(300 * value))
            if key not in seen:
                seen.add(key)
                marks.append((time, value))
    return marks


def _time_axis(axes, horizon, ticks, size):
    axes.set_xlim(0, horizon)
    axes.set_xticks(ticks)
    axes.set_xticklabels([f"{t:g}" for t in ticks], fontsize=size)
    axes.set_xlabel(_("Months since first metastasectomy"), fontsize=size)
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(length=2.5, pad=1.5, labelsize=size)


def _probability_axis(axes, label, size):
    axes.set_ylim(0, 1.02)
    axes.set_yticks([0, 0.25, 0.5, 0.75, 1])
    axes.set_yticklabels(["0", "0.25", "0.50", "0.75", "1.00"], fontsize=size)
    axes.set_ylabel(label, fontsize=size)


def _risk_table(layout, axes, rows, ticks, top_mm, left_mm, size):
    """Numbers at risk under the axis: a heading, then one row per group, aligned with the ticks.
    ``rows``: [(label, colour, counts at ticks)]."""
    from matplotlib.transforms import blended_transform_factory

    below = blended_transform_factory(axes.transData, layout.figure.transFigure)
    row_mm = size * 0.5
    layout.text(1, top_mm, _("Number at risk"), fontsize=size, fontweight="bold", color=INK)
    for index, (label, tint, counts) in enumerate(rows):
        y = 1 - (top_mm + row_mm * (index + 1)) / layout.height
        chars = int((left_mm - 6) / (size * 0.3528 * 0.58))  # what fits before the numbers at time 0
        layout.figure.text(1 / layout.width, y, _short(label, chars), fontsize=size, color=tint)
        for when, count in zip(ticks, counts):
            layout.figure.text(when, y, str(count), fontsize=size, ha="center", transform=below, color=INK)


def _short(label, limit):
    return label if len(label) <= limit else label[:max(limit - 1, 1)] + "…"


def _left(width_mm):
    """The left margin: the probability axis, and the labels of the numbers at risk."""
    return 25 if width_mm < 120 else 32


def _height(width_mm, table_rows, size):
    plot = min(0.6 * width_mm, 95)
    return plot, 4 + plot + 10 + size * 0.5 * (table_rows + 1) + 3


def km(data, width_mm):
    """A Kaplan-Meier figure (analysis/dashboard/figures.km_figure's data) at ``width_mm``: curves,
    95% bands for up to two groups, censoring ticks, log-rank p, numbers at risk."""
    size = _font(width_mm)
    groups, horizon, ticks = data["groups"], data["horizon"], data["risk_times"]
    left = _left(width_mm)
    plot, height = _height(width_mm, max(1, len(groups)), size)
    layout = Layout(width_mm, height)
    axes = layout.axes(left, 4, width_mm - left - 4, plot)
    for index, group in enumerate(groups):
        curve, tint = group["curve"], colour(index)
        line = step_vertices(curve["time"], curve["survival"], end=horizon)
        axes.plot(*zip(*line), color=tint, linewidth=1.0, label=f"{group['label']} (n = {group['n']:,})")
        if data.get("bands", True):
            upper = step_vertices(curve["time"], curve["ci_upper"], end=horizon)
            lower = step_vertices(curve["time"], curve["ci_lower"], end=horizon)
            if len(upper) > 1 and len(lower) > 1:  # a collection: the axis limits are set, not measured
                axes.add_collection(PolyCollection([upper + lower[::-1]], facecolors=tint, alpha=0.15, linewidths=0),
                                    autolim=False)
        strokes = [[(t, s - 0.012), (t, s + 0.012)] for t, s in _censor_marks(curve, horizon)]
        if strokes:  # one collection of short strokes draws far faster than as many markers
            axes.add_collection(LineCollection(strokes, colors=tint, linewidths=0.5), autolim=False)
    _time_axis(axes, horizon, ticks, size)
    _probability_axis(axes, probability_label(data), size)
    if groups:  # the log-rank p heads the legend: never over a curve
        p = data.get("logrank_p")
        legend = axes.legend(loc="upper right", fontsize=size, frameon=False, handlelength=1.5,
                             title=logrank_text(p) if p is not None else None, title_fontsize=size,
                             alignment="right")
        legend.get_title().set_color(INK)
    else:
        axes.text(0.5, 0.5, _("No group large enough to draw."), transform=axes.transAxes, ha="center",
                  fontsize=size, color=MUTED)
    rows = [(group["label"], colour(index), group["at_risk"]) for index, group in enumerate(groups)]
    _risk_table(layout, axes, rows, ticks, 4 + plot + 11, left, size)
    return layout.figure


def cif(data, at_risk, width_mm):
    """Cumulative incidence curves (analysis/dashboard/figures.cif_figure's data) with the patients at
    risk (event-free and followed) at the ticks under the axis (``at_risk``: counts at data["ticks"])."""
    size = _font(width_mm)
    horizon, ticks = data["horizon"], data["ticks"]
    left = _left(width_mm)
    plot, height = _height(width_mm, 1, size)
    layout = Layout(width_mm, height)
    axes = layout.axes(left, 4, width_mm - left - 4, plot)
    for index, curve in enumerate(data["curves"]):
        points = step_vertices(curve["time"], curve["cif"], start=0.0, end=horizon)
        axes.plot(*zip(*points), color=colour(index), linewidth=1.0, label=curve["label"])
    _time_axis(axes, horizon, ticks, size)
    _probability_axis(axes, _("Cumulative incidence"), size)
    if data["curves"]:
        axes.legend(loc="center right", fontsize=size, frameon=False, handlelength=1.5)
    _risk_table(layout, axes, [(_("All patients"), INK, at_risk)], ticks, 4 + plot + 11, left, size)
    return layout.figure


def flow(steps, width_mm):
    """The cohort flow: registered patients, each exclusion (in the plan's order) beside the line,
    the analysed patients. ``steps`` = {"registered", "excluded": [{"label", "n"}], "analysed"}."""
    size = _font(width_mm)
    box_w = min(0.42 * width_mm, 60)  # the main line's boxes
    side_x = box_w + min(0.12 * width_mm, 20)  # the exclusions, right of the line
    side_w = min(width_mm - side_x - 2, 80)
    chars = int(side_w / (size * 0.3528 * 0.6))
    excluded = steps["excluded"]
    row = size * 1.3 + 2
    height = 4 + 12 + 4 + max(1, len(excluded)) * (row + 3) + 4 + 12 + 4
    layout = Layout(width_mm, height)
    axes = layout.axes(0, 0, width_mm, height)
    axes.set_xlim(0, width_mm)
    axes.set_ylim(height, 0)  # millimetres from the top
    axes.axis("off")

    def box(x, y, w, h, text):
        axes.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="square,pad=0", fill=False, edgecolor=INK,
                                      linewidth=0.6))
        axes.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, color=INK)

    def arrow(x0, y0, x1, y1):
        axes.annotate("", xy=(x1, y1), xytext=(x0, y0),
                      arrowprops={"arrowstyle": "-|>", "color": INK, "linewidth": 0.6, "shrinkA": 0, "shrinkB": 0,
                                  "mutation_scale": size * 1.2})

    main_x = 2
    centre = main_x + box_w / 2
    box(main_x, 4, box_w, 12, _("Registered patients\nn = %(n)s") % {"n": f"{steps['registered']:,}"})
    y = 4 + 12 + 4
    for step in excluded:
        text = "\n".join(textwrap.wrap(step["label"], chars)[:2]) + f"\nn = {step['n']:,}"
        box(side_x, y, side_w, row, text)
        arrow(centre, y + row / 2, side_x, y + row / 2)
        y += row + 3
    bottom = y + 4 - 3
    arrow(centre, 16, centre, bottom)
    box(main_x, bottom, box_w, 12, _("Analysed\nn = %(n)s") % {"n": f"{steps['analysed']:,}"})
    return layout.figure


def render(draw, *args, title, footer, software):
    """{"pdf": bytes, "svg": bytes} of the figure ``draw(*args)`` draws: the same bytes for the same
    figure, the metadata naming its title and source (data, plan, software)."""
    files = {}
    with matplotlib.rc_context(RC):  # the fonts are chosen as the text is made: draw inside it too
        figure = draw(*args)
        for fmt, metadata in (
                ("pdf", {"Title": title, "Subject": footer, "Creator": software, "CreationDate": None}),
                ("svg", {"Title": title, "Description": footer, "Creator": software, "Date": None})):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=fmt, metadata=metadata)
            files[fmt] = buffer.getvalue()
    return files
