"""analysis/plots.py: the geometry of Kaplan-Meier and forest plots, checked by hand on tiny
curves, and the number-at-risk table checked against the survival statistics themselves."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from analysis import plots, stats
from analysis.report import curve

SVG = "{http://www.w3.org/2000/svg}"


def km_data(durations, events, label="All patients"):
    km = stats.kaplan_meier(durations, events)
    group = {"label": label, "n": km["n"], "events": km["events"], "median": km["median"], "curve": curve(km)}
    group["at_risk"] = plots.at_risk(group["curve"], [0, 12, 24, 36, 48, 60])
    return {"title": "Overall survival", "endpoint": "os", "endpoint_label": "Survival", "horizon": 60,
            "risk_times": [0, 12, 24, 36, 48, 60], "groups": [group], "logrank_p": None}


def test_step_function_drops_at_each_event_time_and_stops_at_the_last_time():
    assert plots.step_vertices([0, 2, 3, 5], [1, 0.75, 0.5, 0.5]) == [
        (0.0, 1), (2, 1), (2, 0.75), (3, 0.75), (3, 0.5), (5, 0.5)]


def test_an_event_at_time_zero_drops_at_the_origin():
    assert plots.step_vertices([0, 4], [0.8, 0.4]) == [(0.0, 1.0), (0, 1.0), (0, 0.8), (4, 0.8), (4, 0.4)]


def test_a_curve_longer_than_the_axis_is_drawn_to_its_edge():
    assert plots.step_vertices([0, 10, 70, 90], [1, 0.5, 0.25, 0.2], end=60) == [
        (0.0, 1), (10, 1), (10, 0.5), (60, 0.5)]


def test_an_undefined_band_value_ends_the_band():
    assert plots.step_vertices([0, 2, 4], [1, 0.6, None]) == [(0.0, 1), (2, 1), (2, 0.6)]


def test_simplify_keeps_the_corners_only():
    points = [(0, 10), (5, 10), (5, 10), (9, 10), (9, 20), (9, 30), (12, 30)]
    assert plots.simplify(points) == [(0, 10), (9, 10), (9, 30), (12, 30)]


def test_censoring_ticks_sit_on_the_curve_at_the_censored_times():
    data = km_data([1, 2, 2, 3, 4, 6], [1, 0, 1, 0, 1, 0])
    marks = plots.censor_marks(data["groups"][0]["curve"])
    assert [t for t, _s in marks] == [2, 3, 6]
    table = dict(zip(data["groups"][0]["curve"]["time"], data["groups"][0]["curve"]["survival"]))
    assert all(s == table[t] for t, s in marks)
    svg = ET.fromstring(plots.km_svg(data))
    ticks = next(p.get("d") for p in svg.iter(f"{SVG}path") if p.get("stroke-width") == "1.3")
    assert ticks.count("M") == 3  # two of them at the same height: both drawn


def test_numbers_at_risk_are_the_patients_still_followed_at_each_time():
    rng = np.random.default_rng(3)
    durations = np.round(rng.exponential(20, 200), 1)
    events = rng.integers(0, 2, 200)
    data = km_data(durations, events)
    expected = [int((durations >= t).sum()) for t in data["risk_times"]]
    assert data["groups"][0]["at_risk"] == expected
    # ... and the survival statistics count them the same way (the report's rates use these)
    km = stats.kaplan_meier(durations, events, times=[12, 36, 60])
    assert [at["at_risk"] for at in km["at"]] == [expected[1], expected[3], expected[5]]


def test_km_svg_is_well_formed_accessible_and_draws_the_curve_at_the_right_pixels():
    data = km_data([6, 12, 12, 24, 30], [1, 0, 1, 1, 0])
    svg = ET.fromstring(plots.km_svg(data, ident="km-test"))
    assert svg.get("role") == "img" and svg.get("aria-label") == "Overall survival"
    assert svg.find(f"{SVG}title").text == "Overall survival"
    assert "5 patients, 3 events" in svg.find(f"{SVG}desc").text
    x = plots.Scale(0, 60, plots.KM_LEFT, plots.KM_WIDTH - plots.KM_RIGHT)
    top = 14 + plots.LEGEND_ROW
    y = plots.Scale(0, 1, top + plots.KM_PLOT_HEIGHT, top)
    line = next(p.get("d") for p in svg.iter(f"{SVG}path") if p.get("stroke-width") == "2")
    # S = 1 to 6 months, 0.8 to 12, 0.6 to 24, 0.3 to 30 (one patient left: censored at 30)
    expected = [(0, 1), (6, 1), (6, 0.8), (12, 0.8), (12, 0.6), (24, 0.6), (24, 0.3), (30, 0.3)]
    assert line == "M" + "L".join(f"{x(t):g},{y(s):g}" for t, s in expected)
    ticks = next(p.get("d") for p in svg.iter(f"{SVG}path") if p.get("stroke-width") == "1.3")
    assert ticks.count("M") == 2  # censored at 12 and at 30


def test_the_risk_table_under_the_axis_shows_the_numbers_at_risk():
    data = km_data([6, 12, 12, 24, 30, 50], [1, 0, 1, 1, 0, 0])
    texts = [t.text for t in ET.fromstring(plots.km_svg(data)).iter(f"{SVG}text")]
    start = texts.index("Number at risk")
    assert texts[start + 1:start + 8] == ["All patients", "6", "5", "3", "1", "1", "0"]


def test_log_rank_p_is_printed_on_a_stratified_plot():
    data = km_data([1, 2, 3, 4, 5, 6], [1, 1, 1, 0, 1, 0])
    data["groups"].append({**data["groups"][0], "label": "second"})
    data["logrank_p"] = 0.0004
    svg = plots.km_svg(data)
    assert "Log-rank p &lt; 0.001" in svg
    assert svg.count('stroke-width="2"') == 2


def test_forest_plot_marks_each_hazard_ratio_and_says_when_a_model_is_not_estimable():
    forest = {"title": "Univariable Cox models, DFS", "rows": [
        {"label": "Largest lesion > 20 mm", "hr": 2.29, "ci95": [1.27, 4.13], "p": 0.006, "estimable": True},
        {"label": "Huge effect", "hr": 40.0, "ci95": [3.0, 500.0], "p": 0.01, "estimable": True},
        {"label": "Separation", "hr": None, "ci95": [None, None], "p": None, "estimable": False}]}
    svg = ET.fromstring(plots.forest_svg(forest))
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "2.29 (1.27–4.13)" in texts and "0.006" in texts and "not estimable" in texts
    assert len([r for r in svg.iter(f"{SVG}rect") if r.get("width") == "10"]) == 2  # one marker per estimable row
    assert plots.hr_range(forest["rows"])[1] == 20.0  # the axis is capped; the CI gets an arrow


@pytest.mark.parametrize("render", [lambda: plots.km_png(km_data([1, 5, 9, 14, 30], [1, 0, 1, 1, 0])),
                                    lambda: plots.forest_png({"title": "t", "rows": [
                                        {"label": "a", "hr": 1.5, "ci95": [1.1, 2.0], "p": 0.01, "estimable": True}]})])
def test_png_renderings_are_png(render):
    assert render().startswith(b"\x89PNG\r\n\x1a\n")


def test_p_and_hazard_ratio_formats():
    assert plots.format_p(0.0004) == "<0.001" and plots.format_p(0.0312) == "0.031" and plots.format_p(None) == "—"
    assert plots.format_hr({"hr": 0.42, "ci95": [0.19, 0.93], "estimable": True}) == "0.42 (0.19–0.93)"
    assert plots.format_hr({"hr": 9.1, "ci95": [2.1, 40.0], "estimable": True, "method": "firth"}) == \
        "9.10 (2.10–40.00) Firth"


def three_groups():
    data = km_data([1, 2, 3, 4, 5, 6], [1, 1, 1, 0, 1, 0])
    data["groups"] += [{**data["groups"][0], "label": "second"}, {**data["groups"][0], "label": "third"}]
    return data


def test_log_rank_p_stands_below_the_plotting_area_never_over_a_curve():
    data = three_groups()
    data["logrank_p"] = 0.25
    svg = ET.fromstring(plots.km_svg(data))
    axis = next(p.get("d") for p in svg.iter(f"{SVG}path") if p.get("d", "").startswith("M104,"))
    plot_bottom = float(axis.split("V")[1].split("H")[0])
    (label,) = [t for t in svg.iter(f"{SVG}text") if t.text.startswith("Log-rank p")]
    assert label.text == "Log-rank p = 0.250" and float(label.get("y")) > plot_bottom + 40


def test_ci_bands_are_drawn_unless_turned_off():
    data = three_groups()
    assert plots.km_svg(data).count("fill-opacity") == 3
    assert plots.km_svg({**data, "bands": False}).count("fill-opacity") == 0


def strata_results(times, groups=1):
    curve = {"time": times, "survival": [0.9] * len(times), "ci_lower": [0.8] * len(times),
             "ci_upper": [1.0] * len(times), "censored": [1] * len(times), "events": [0] * len(times),
             "at_risk": list(range(len(times), 0, -1))}
    group = {"n": len(times), "events": 0, "median": None, "median_ci95": [None, None], "curve": curve}
    part = {"groups": [{**group, "label": f"g{i}"} for i in range(groups)], "logrank": None}
    return {"strata": {"factor": "histology" if groups > 1 else "none", "label": "histology",
                       "endpoints": {"dfs": part, "os": part}}}


def test_the_time_axis_runs_to_the_last_follow_up_rounded_up_to_a_year_unless_set():
    from analysis.dashboard import figures

    figure = figures.km_figure(strata_results([3.0, 40.0, 97.5]), "dfs")
    assert figure["horizon"] == 108 and figure["risk_times"] == list(range(0, 109, 12))
    figure = figures.km_figure(strata_results([3.0, 40.0, 97.5]), "dfs", {"xmax": 30.0})
    assert figure["horizon"] == 30 and figure["risk_times"] == [0, 12, 24]
    long = figures.km_figure(strata_results([3.0, 250.0]), "dfs")
    assert long["horizon"] == 252 and long["risk_times"] == list(range(0, 253, 24))


def test_bands_are_off_by_default_for_more_than_two_groups_and_the_user_may_turn_them_on():
    from analysis.dashboard import figures

    assert figures.km_figure(strata_results([3.0, 40.0], groups=2), "dfs")["bands"] is True
    assert figures.km_figure(strata_results([3.0, 40.0], groups=3), "dfs")["bands"] is False
    assert figures.km_figure(strata_results([3.0, 40.0], groups=3), "dfs", {"bands": "on"})["bands"] is True
    assert figures.km_figure(strata_results([3.0, 40.0], groups=2), "dfs", {"bands": "off"})["bands"] is False
