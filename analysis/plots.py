"""Kaplan-Meier and forest plots: inline SVG drawn by this module, PNG drawn by matplotlib.

Both renderers take the same plain data (built by analysis/dashboard.py from the survival report),
so the two formats of a figure cannot disagree:

    km = {"title", "endpoint", "horizon", "risk_times", "groups": [{"label", "n", "events",
          "median", "curve": {"time", "survival", "ci_lower", "ci_upper", "censored"}, "at_risk"}],
          "logrank_p"}
    forest = {"title", "rows": [{"label", "hr", "ci95", "p", "estimable"}]}

Either may carry "source" (analysis.provenance.footer: the data, plan and software): the PNG's
metadata then name it; an SVG gets it with ``with_source``.

The SVG is self-contained (no CSS, no script, no external font): the same string is inlined in the
page and served as the download. It is accessible: ``role="img"``, ``aria-label``, ``<title>`` and
``<desc>``; the numbers themselves are in HTML tables next to each figure.

Large cohorts have thousands of steps; vertices are rounded to 0.1 px and collinear points dropped
(`simplify`), which changes nothing visible and keeps a 10,000-patient curve a few kilobytes.
"""
import io
import math
from xml.sax.saxutils import escape

import numpy as np
from django.utils.translation import gettext as _

# Okabe-Ito: distinguishable with every common colour-vision deficiency, and in greyscale print.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
INK, MUTED, GRID = "#1d2733", "#5b6876", "#e3e8ee"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, Arial, sans-serif"'

# Kaplan-Meier layout (SVG user units = CSS px at 100 %).
KM_WIDTH, KM_LEFT, KM_RIGHT, KM_PLOT_HEIGHT = 640, 104, 20, 250
LEGEND_ROW, RISK_ROW, LEGEND_PER_ROW = 17, 17, 2


def colour(index):
    return PALETTE[index % len(PALETTE)]


# --- geometry (pure; unit-tested) -------------------------------------------------------------

def step_vertices(times, values, *, start=1.0, end=None):
    """Vertices of a right-continuous step function that is ``start`` before the first time.

    The line stops at the last time (or at ``end`` if that is earlier): a Kaplan-Meier curve is
    not drawn past the last follow-up. ``None`` in ``values`` ends the line there (undefined CI),
    except before the first value: a log(-log) bound is undefined while S(t) = 1, and the band
    is drawn at ``start`` there.
    """
    points, level, last = [(0.0, start)], start, None
    for time, value in zip(times, values):
        if value is None and last is None:
            continue
        if value is None or (end is not None and time > end):
            break
        if value != level:
            points += [(time, level), (time, value)]
            level = value
        last = time
    if end is not None and last is not None and len(times) and times[-1] > end:
        last = end  # the curve goes on beyond the axis: draw it to the edge
    if last is not None and last > points[-1][0]:
        points.append((last, level))
    return points


def simplify(points):
    """Drop repeated points and the middle of collinear horizontal or vertical runs."""
    out = []
    for point in points:
        if out and point == out[-1]:
            continue
        if len(out) >= 2 and ((out[-2][0] == out[-1][0] == point[0]) or (out[-2][1] == out[-1][1] == point[1])):
            out[-1] = point
            continue
        out.append(point)
    return out


def censor_marks(curve, end=None):
    """(time, survival) of every time with censored patients, up to ``end``."""
    return [(t, s) for t, s, c in zip(curve["time"], curve["survival"], curve["censored"])
            if c and s is not None and (end is None or t <= end)]


def at_risk(curve, times):
    """Number at risk at each of ``times``: patients whose time is >= t (0 after the last).

    The KM table has a row at every distinct time, so the first row at or after t has the
    number still followed at t.
    """
    counts = []
    for when in times:
        row = next((i for i, t in enumerate(curve["time"]) if t >= when), None)
        counts.append(0 if row is None else curve["at_risk"][row])
    return counts


class Scale:
    """A linear map from data to SVG units, rounded to half a unit (finer is invisible)."""

    def __init__(self, d0, d1, p0, p1):
        self.d0, self.d1, self.p0, self.p1 = d0, d1, p0, p1

    def __call__(self, value):
        return round(2 * (self.p0 + (value - self.d0) * (self.p1 - self.p0) / (self.d1 - self.d0))) / 2

    def many(self, values):
        """The same for an array (a curve of 10,000 patients has thousands of vertices)."""
        pixels = self.p0 + (np.asarray(values, dtype=float) - self.d0) * (self.p1 - self.p0) / (self.d1 - self.d0)
        return np.round(2 * pixels) / 2


def _pixels(points, x, y):
    """Data points -> simplified pixel points."""
    if not points:
        return []
    times, values = zip(*points)
    return simplify(list(zip(x.many(times).tolist(), y.many(values).tolist())))


def _path(points, x, y):
    return "M" + "L".join(f"{px:g},{py:g}" for px, py in _pixels(points, x, y))


def _text(x, y, content, *, size=12, anchor="start", fill=INK, weight=None, extra=""):
    bold = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{bold}'
            f'{extra}>{escape(str(content))}</text>')


def _svg(width, height, title, description, body, ident):
    title, description = escape(title), escape(description)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{title}" aria-describedby="{ident}-desc" {FONT}>'
            f'<title>{title}</title><desc id="{ident}-desc">{description}</desc>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>{"".join(body)}</svg>')


# --- Kaplan-Meier -----------------------------------------------------------------------------

def km_description(km):
    """One sentence per group, for <desc> and alt texts."""
    parts = []
    for group in km["groups"]:
        median = _("not reached") if group["median"] is None else _("%(months)s months") % {
            "months": f"{group['median']:.1f}"}
        parts.append(_("%(group)s: %(n)s patients, %(events)s events, median %(median)s") % {
            "group": group["label"], "n": group["n"], "events": group["events"], "median": median})
    if km.get("logrank_p") is not None:
        parts.append(logrank_text(km["logrank_p"]).lower())
    return "; ".join(parts) + "." if parts else _("No group large enough to draw.")


def km_svg(km, ident="km"):
    """The Kaplan-Meier figure as an SVG string: step curves, 95% CI bands, censoring ticks,
    median lines, log-rank p and a number-at-risk table under the time axis."""
    groups, horizon = km["groups"], km["horizon"]
    legend_rows = max(1, math.ceil(len(groups) / LEGEND_PER_ROW))
    top = 14 + legend_rows * LEGEND_ROW
    bottom = top + KM_PLOT_HEIGHT
    risk_top = bottom + 62
    height = risk_top + RISK_ROW * max(1, len(groups)) + 14
    x = Scale(0, horizon, KM_LEFT, KM_WIDTH - KM_RIGHT)
    y = Scale(0, 1, bottom, top)
    body = _km_axes(x, y, km, top, bottom)
    # Overlapping bands of many groups turn to mud: off by default for more than two (the caller
    # decides, "bands"), and the more groups, the fainter each band.
    band_opacity = (0.14 if len(groups) <= 2 else 0.08) if km.get("bands", True) else 0
    for index, group in enumerate(groups):
        body += _km_group(group, colour(index), x, y, horizon, bottom, band_opacity)
    body += _km_legend(groups, top)
    if km.get("logrank_p") is not None:  # under the axis, right: never over a curve or its band
        body.append(_text(x.p1, risk_top - 8, logrank_text(km["logrank_p"]), anchor="end", weight="600"))
    body += _risk_table(km, x, risk_top)
    return _svg(KM_WIDTH, height, km["title"], km_description(km), body, ident)


def _km_axes(x, y, km, top, bottom):
    body = []
    for level in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<line x1="{x.p0}" x2="{x.p1}" y1="{y(level)}" y2="{y(level)}" stroke="{GRID}"/>')
        body.append(_text(x.p0 - 8, y(level) + 4, f"{level:.0%}", size=11, anchor="end", fill=MUTED))
    for when in km["risk_times"]:
        body.append(f'<line x1="{x(when)}" x2="{x(when)}" y1="{bottom}" y2="{bottom + 5}" stroke="{MUTED}"/>')
        body.append(_text(x(when), bottom + 18, f"{when:g}", size=11, anchor="middle", fill=MUTED))
    body.append(f'<path d="M{x.p0},{top}V{bottom}H{x.p1}" fill="none" stroke="{MUTED}"/>')
    body.append(_text((x.p0 + x.p1) / 2, bottom + 36, _("Months since first metastasectomy"), size=12,
                      anchor="middle", fill=MUTED))
    middle = (top + bottom) / 2
    body.append(_text(40, middle, probability_label(km), size=12, anchor="middle", fill=MUTED,
                      extra=f' transform="rotate(-90 40 {middle:g})"'))
    return body


def _km_group(group, stroke, x, y, horizon, bottom, band_opacity):
    curve, times = group["curve"], group["curve"]["time"]
    upper = step_vertices(times, curve["ci_upper"], end=horizon)
    lower = step_vertices(times, curve["ci_lower"], end=horizon)
    body = []
    if band_opacity and len(upper) > 1 and len(lower) > 1:
        body.append(f'<path d="{_path(upper + lower[::-1], x, y)}Z" fill="{stroke}" '
                    f'fill-opacity="{band_opacity}" stroke="none"/>')
    line = step_vertices(times, curve["survival"], end=horizon)
    body.append(f'<path d="{_path(line, x, y)}" fill="none" stroke="{stroke}" stroke-width="2"/>')
    marks = censor_marks(curve, horizon)
    # One tick per position is enough (10,000 patients have thousands of censoring times).
    ticks = sorted(set(zip(x.many([t for t, _s in marks]).tolist(), y.many([s for _t, s in marks]).tolist())))
    if ticks:
        body.append(f'<path d="{"".join(f"M{px:g},{py - 4:g}v8" for px, py in ticks)}" stroke="{stroke}" '
                    f'stroke-width="1.3"/>')
    median = group.get("median")
    if median is not None and median <= horizon:
        body.append(f'<path d="M{x.p0},{y(0.5)}H{x(median)}V{bottom}" fill="none" stroke="{stroke}" '
                    f'stroke-dasharray="4 3" stroke-width="1"/>')
    return body


def _km_legend(groups, top):
    body = []
    width = (KM_WIDTH - KM_LEFT - KM_RIGHT) / LEGEND_PER_ROW
    for index, group in enumerate(groups):
        left = KM_LEFT + (index % LEGEND_PER_ROW) * width
        baseline = 12 + (index // LEGEND_PER_ROW) * LEGEND_ROW
        body.append(f'<rect x="{left:g}" y="{baseline - 8}" width="14" height="4" fill="{colour(index)}"/>')
        body.append(_text(left + 20, baseline, legend_label(group), size=12))
    return body or [_text(KM_LEFT, 12, _("No group large enough to draw."), fill=MUTED)]


def legend_label(group):
    return _("%(group)s (n = %(n)s, %(events)s events)") % {"group": group["label"], "n": group["n"],
                                                            "events": group["events"]}


def probability_label(km):
    return _("%(endpoint)s probability") % {"endpoint": km["endpoint_label"]}


def _risk_table(km, x, top):
    body = [_text(8, top - 8, _("Number at risk"), size=12, weight="600")]
    for index, group in enumerate(km["groups"]):
        baseline = top + 8 + index * RISK_ROW
        body.append(_text(8, baseline, _short(group["label"]), size=11, fill=colour(index), weight="600"))
        for when, count in zip(km["risk_times"], group["at_risk"]):
            body.append(_text(x(when), baseline, count, size=11, anchor="middle"))
    return body


def _short(label, limit=15):
    return label if len(label) <= limit else label[:limit - 1] + "…"


# --- forest plot ------------------------------------------------------------------------------

FOREST_WIDTH, FOREST_ROW = 640, 24
FOREST_LABEL_X, FOREST_PLOT, FOREST_HR_X = 8, (222, 430), 442  # columns: factor, plot, HR (CI), p


def hr_range(rows):
    """(low, high) of the log-scale axis: the CIs' span, at least 0.5..2, at most 0.05..20."""
    values = [v for row in rows if row.get("estimable") for v in (row.get("ci95") or []) if v]
    low = min([0.5] + values)
    high = max([2.0] + values)
    return max(low * 0.9, 0.05), min(high * 1.1, 20.0)


def forest_ticks(low, high):
    return [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if low <= t <= high]


def forest_svg(forest, ident="forest"):
    """Hazard ratios with 95% CI on a log axis, reference line at 1, the numbers on the right."""
    rows = forest["rows"]
    top = 30
    bottom = top + FOREST_ROW * max(1, len(rows))
    height = bottom + 44
    low, high = hr_range(rows)
    x = Scale(math.log(low), math.log(high), *FOREST_PLOT)

    def px(value):
        return x(math.log(min(max(value, low), high)))

    # Stripes first: the reference line at HR 1 is drawn over them.
    body = [f'<rect x="0" y="{top + index * FOREST_ROW}" width="{FOREST_WIDTH}" height="{FOREST_ROW}" fill="#f6f8fa"/>'
            for index in range(0, len(rows), 2)]
    body += [_text(FOREST_LABEL_X, 18, _("Factor"), size=11, fill=MUTED, weight="600"),
             _text(FOREST_HR_X, 18, _("HR (95% CI)"), size=11, fill=MUTED, weight="600"),
             _text(FOREST_WIDTH - 10, 18, "p", size=11, fill=MUTED, weight="600", anchor="end"),
             f'<line x1="{px(1)}" x2="{px(1)}" y1="{top - 4}" y2="{bottom}" stroke="{MUTED}" stroke-dasharray="3 3"/>',
             f'<line x1="{FOREST_PLOT[0]}" x2="{FOREST_PLOT[1]}" y1="{bottom}" y2="{bottom}" stroke="{MUTED}"/>']
    for tick in forest_ticks(low, high):
        body.append(f'<line x1="{px(tick)}" x2="{px(tick)}" y1="{bottom}" y2="{bottom + 4}" stroke="{MUTED}"/>')
        body.append(_text(px(tick), bottom + 16, f"{tick:g}", size=11, anchor="middle", fill=MUTED))
    body.append(_text(sum(FOREST_PLOT) / 2, bottom + 34, _("Hazard ratio (log scale)"), size=11, anchor="middle",
                      fill=MUTED))
    for index, row in enumerate(rows):
        middle = top + index * FOREST_ROW + FOREST_ROW / 2
        body.append(_text(FOREST_LABEL_X, middle + 4, _short(row["label"], 34), size=12))
        body += _forest_marker(row, middle, px, low, high)
        body.append(_text(FOREST_HR_X, middle + 4, format_hr(row), size=12))
        body.append(_text(FOREST_WIDTH - 10, middle + 4, format_p(row.get("p")), size=12, anchor="end"))
    description = "; ".join(_("%(factor)s: HR %(hr)s, p %(p)s") % {"factor": row["label"], "hr": format_hr(row),
                                                                  "p": format_p(row.get("p"))} for row in rows)
    return _svg(FOREST_WIDTH, height, forest["title"], description or _("No models."), body, ident)


def _forest_marker(row, middle, px, low, high):
    if not row.get("estimable") or row.get("hr") is None:
        return []
    lo, hi = row["ci95"]
    body = []
    if lo is not None and hi is not None:
        body.append(f'<line x1="{px(lo)}" x2="{px(hi)}" y1="{middle:g}" y2="{middle:g}" stroke="{INK}" '
                    f'stroke-width="1.5"/>')
        for value, bound, sign in ((lo, low, -1), (hi, high, 1)):
            if (value < bound) if sign < 0 else (value > bound):  # CI runs off the axis: an arrow head
                tip = px(bound)
                body.append(f'<path d="M{tip:g},{middle:g}l{-sign * 6},-4v8Z" fill="{INK}"/>')
    body.append(f'<rect x="{px(row["hr"]) - 5:g}" y="{middle - 5:g}" width="10" height="10" fill="{PALETTE[0]}"/>')
    return body


# --- text formats shared with the page --------------------------------------------------------

def format_p(p):
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def logrank_text(p):
    return _("Log-rank p < 0.001") if p < 0.001 else _("Log-rank p = %(p)s") % {"p": f"{p:.3f}"}


def format_hr(row):
    if not row.get("estimable") or row.get("hr") is None:
        return _("not estimable")
    lo, hi = row.get("ci95") or (None, None)
    interval = f" ({lo:.2f}–{hi:.2f})" if lo is not None and hi is not None else ""
    firth = " Firth" if row.get("method") == "firth" else ""  # a penalised estimate under separation
    return f"{row['hr']:.2f}{interval}{firth}"


# --- PNG (matplotlib) -------------------------------------------------------------------------

def _figure(width_in, height_in):
    # The object API without pyplot: no global state, safe in a threaded server.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=150)
    FigureCanvasAgg(figure)
    return figure


def _png(figure, source=None):
    """PNG bytes; ``source`` (the data, plan and software: analysis.provenance.footer) goes into its
    metadata as "Source"."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None, **({"Source": source} if source else {})})
    return buffer.getvalue()


def with_source(svg, source):
    """The SVG with ``source`` (analysis.provenance.footer) as its <metadata>, after the title and description."""
    return svg.replace("</desc>", f"</desc><metadata>{escape(source)}</metadata>", 1) if source else svg


def km_png(km):
    """The same Kaplan-Meier figure as PNG bytes (matplotlib, same data and colours)."""
    rows = max(1, len(km["groups"]))
    figure = _figure(7.6, 4.6 + 0.22 * rows)
    axes = figure.add_axes((0.15, 0.22 + 0.035 * rows, 0.81, 0.66 - 0.035 * rows))
    horizon = km["horizon"]
    for index, group in enumerate(km["groups"]):
        curve, tint = group["curve"], colour(index)
        line = step_vertices(curve["time"], curve["survival"], end=horizon)
        axes.plot(*zip(*line), color=tint, linewidth=2, label=legend_label(group))
        upper = step_vertices(curve["time"], curve["ci_upper"], end=horizon)
        lower = step_vertices(curve["time"], curve["ci_lower"], end=horizon)
        if km.get("bands", True) and len(upper) > 1 and len(lower) > 1:
            axes.fill([p[0] for p in upper + lower[::-1]], [p[1] for p in upper + lower[::-1]], color=tint,
                      alpha=0.14 if len(km["groups"]) <= 2 else 0.08, linewidth=0)
        marks = censor_marks(curve, horizon)
        if marks:
            axes.plot(*zip(*marks), linestyle="none", marker="|", markersize=7, color=tint)
        if group.get("median") is not None and group["median"] <= horizon:
            axes.plot([0, group["median"], group["median"]], [0.5, 0.5, 0], color=tint, linestyle="--", linewidth=0.8)
    axes.set_xlim(0, horizon)
    axes.set_ylim(0, 1.02)
    axes.set_xticks(km["risk_times"])
    axes.set_yticks([0, 0.25, 0.5, 0.75, 1])
    axes.set_yticklabels(["0%", "25%", "50%", "75%", "100%"])
    axes.set_xlabel(_("Months since first metastasectomy"))
    axes.set_ylabel(probability_label(km))
    axes.grid(axis="y", color=GRID)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title(km["title"], loc="left", fontsize=11)
    if km["groups"]:
        axes.legend(loc="upper right", fontsize=8, frameon=False)
    if km.get("logrank_p") is not None:  # in the title line: never over a curve or its band
        axes.set_title(logrank_text(km["logrank_p"]), loc="right", fontsize=9, fontweight="bold")
    _png_risk_table(figure, axes, km)
    return _png(figure, km.get("source"))


def _png_risk_table(figure, axes, km):
    """Number-at-risk rows under the axis, aligned with the time ticks."""
    from matplotlib.transforms import blended_transform_factory

    below = blended_transform_factory(axes.transData, figure.transFigure)
    top = axes.get_position().y0 - 0.11
    figure.text(0.02, top, _("Number at risk"), fontsize=8, fontweight="bold")
    for index, group in enumerate(km["groups"]):
        height = top - 0.04 * (index + 1)
        figure.text(0.02, height, _short(group["label"]), fontsize=8, color=colour(index), fontweight="bold")
        for when, count in zip(km["risk_times"], group["at_risk"]):
            figure.text(when, height, str(count), fontsize=8, ha="center", transform=below)


def forest_png(forest):
    """The forest plot as PNG bytes (matplotlib)."""
    rows = forest["rows"]
    height = 1.0 + 0.3 * max(1, len(rows))
    figure = _figure(7.6, height)
    axes = figure.add_axes((0.34, 0.55 / height, 0.34, 1 - 0.95 / height))
    low, high = hr_range(rows)
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.axvline(1, color=MUTED, linestyle="--", linewidth=0.8)
    ticks = forest_ticks(low, high)
    axes.set_xticks(ticks)
    axes.set_xticklabels([f"{t:g}" for t in ticks])
    axes.minorticks_off()
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels([_short(row["label"], 34) for row in rows], fontsize=8)
    axes.set_xlabel(_("Hazard ratio (log scale)"), fontsize=8)
    axes.spines[["top", "right", "left"]].set_visible(False)
    axes.tick_params(axis="y", length=0)
    axes.set_title(forest["title"], loc="left", fontsize=10, x=-0.9, pad=14)
    for column, text, align in ((1.05, _("HR (95% CI)"), "left"), (1.62, "p", "right")):
        axes.text(column, -0.75, text, transform=axes.get_yaxis_transform(), fontsize=8, fontweight="bold",
                  ha=align, color=MUTED)
    for index, row in enumerate(rows):
        if row.get("estimable") and row.get("hr") is not None:
            lo, hi = row["ci95"]
            if lo is not None and hi is not None:
                axes.plot([max(lo, low), min(hi, high)], [index, index], color=INK, linewidth=1.2)
            axes.plot([row["hr"]], [index], marker="s", color=PALETTE[0], markersize=6)
        axes.text(1.05, index, format_hr(row), transform=axes.get_yaxis_transform(), va="center", fontsize=8)
        axes.text(1.62, index, format_p(row.get("p")), transform=axes.get_yaxis_transform(), va="center",
                  ha="right", fontsize=8)
    return _png(figure, forest.get("source"))


# --- competing risks and proportional hazards (SVG) -------------------------------------------

CIF_HEIGHT = 250


def cif_svg(cif, ident="cif"):
    """Cumulative incidence curves (rising steps from 0) on 0..horizon months, 0..1.

    cif = {"title", "horizon", "ticks" (months; default every 12), "curves": [{"label", "time", "cif"}]}"""
    top, bottom = 20, 20 + CIF_HEIGHT
    x = Scale(0, cif["horizon"], KM_LEFT, KM_WIDTH - KM_RIGHT)
    y = Scale(0, 1, bottom, top)
    body = [f'<line x1="{KM_LEFT}" x2="{KM_WIDTH - KM_RIGHT}" y1="{bottom}" y2="{bottom}" stroke="{MUTED}"/>',
            f'<line x1="{KM_LEFT}" x2="{KM_LEFT}" y1="{top}" y2="{bottom}" stroke="{MUTED}"/>']
    for value in (0, 0.25, 0.5, 0.75, 1):
        body.append(_text(KM_LEFT - 6, y(value) + 4, f"{value:.0%}", size=11, anchor="end", fill=MUTED))
    for month in cif.get("ticks") or range(0, int(cif["horizon"]) + 1, 12):
        body.append(_text(x(month), bottom + 16, f"{month:g}", size=11, anchor="middle", fill=MUTED))
    body.append(_text((KM_LEFT + KM_WIDTH - KM_RIGHT) / 2, bottom + 34, _("Months after the index PM"), size=11,
                      anchor="middle", fill=MUTED))
    for index, curve in enumerate(cif["curves"]):
        points = step_vertices(curve["time"], curve["cif"], start=0.0, end=cif["horizon"])
        body.append(f'<path d="{_path(points, x, y)}" fill="none" stroke="{colour(index)}" stroke-width="2"/>')
        body.append(f'<rect x="{KM_LEFT + 10 + 250 * index}" y="{bottom + 46}" width="14" height="3" '
                    f'fill="{colour(index)}"/>')
        body.append(_text(KM_LEFT + 30 + 250 * index, bottom + 52, curve["label"], size=12))
    description = "; ".join(_("%(label)s: %(percent)s at %(months)s months") % {
        "label": curve["label"], "percent": f"{curve['cif'][-1]:.0%}", "months": f"{curve['time'][-1]:.0f}"}
        for curve in cif["curves"] if curve["cif"]) or _("No events.")
    return _svg(KM_WIDTH, bottom + 64, cif["title"], description, body, ident)


def residual_svg(residual, ident="zph"):
    """Scaled Schoenfeld residuals of one term against time: a flat cloud around the log HR
    (dashed) when hazards are proportional. residual = {"title", "time", "scaled", "coef"}."""
    top, bottom = 20, 20 + 200
    times, values = residual["time"] or [0.0], residual["scaled"] or [0.0]
    spread = max(abs(v - residual["coef"]) for v in values) or 1.0
    x = Scale(0, max(times) or 1.0, KM_LEFT, KM_WIDTH - KM_RIGHT)
    y = Scale(residual["coef"] - spread, residual["coef"] + spread, bottom, top)
    body = [f'<line x1="{KM_LEFT}" x2="{KM_WIDTH - KM_RIGHT}" y1="{y(residual["coef"])}" y2="{y(residual["coef"])}" '
            f'stroke="{MUTED}" stroke-dasharray="3 3"/>',
            f'<line x1="{KM_LEFT}" x2="{KM_LEFT}" y1="{top}" y2="{bottom}" stroke="{MUTED}"/>',
            _text(KM_LEFT - 6, top + 10, "Beta(t)", size=11, anchor="end", fill=MUTED),
            _text((KM_LEFT + KM_WIDTH - KM_RIGHT) / 2, bottom + 20, _("Months after the index PM"), size=11,
                  anchor="middle", fill=MUTED)]
    body += [f'<circle cx="{px:g}" cy="{py:g}" r="1.6" fill="{PALETTE[0]}" fill-opacity="0.5"/>'
             for px, py in zip(x.many(times).tolist(), y.many(values).tolist())]
    return _svg(KM_WIDTH, bottom + 30, residual["title"], _("%(n)s residuals around log HR %(coef)s.") % {
        "n": len(values), "coef": f"{residual['coef']:.2f}"}, body, ident)
