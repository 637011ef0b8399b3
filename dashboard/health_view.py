"""The Model health tab: the latest drift and shadow findings beside what the testers' verdicts say.

Three sources a support lead would otherwise open one by one: the newest `monitor` run (drift verdict,
PSI per feature, its histograms), the newest `shadow` run (agreement, its charts) and the feedback
store (verdicts per day, agreement, accuracy on agreed verdicts). Every read runs in a worker thread,
so a slow tracking store never freezes the page; each problem is one sentence in its own box and the
other sources still show (docs/design.md, "Model health").
"""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime

import panel as pn

from dashboard.feedback import FeedbackStore
from dashboard.health_feedback import FeedbackFigures, FeedbackUnreadable, read_figures
from dashboard.health_runs import (
    MAKES_ONE,
    MONITOR,
    SHADOW,
    Chart,
    StepRun,
    TrackingUnavailable,
    configured_uri,
    latest_runs,
)
from dashboard.page import message_html

CHART_WIDTH = 440


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def counted(count: int, noun: str) -> str:
    """`1 tweet`, `2 tweets`: the figures read as sentences."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def feedback_html(figures: FeedbackFigures, store_name: str) -> str:
    """Counts, agreement and accuracy in sentences with ids (the browser test reads them); escaped."""
    if not figures.verdicts:
        return message_html(
            f"No verdicts yet in the feedback store {store_name}: testers give them with the Right and Wrong "
            "buttons of the Predict tab.",
            "info",
            "health-feedback",
        )
    right = sum(version.right for version in figures.by_version)
    agreed = sum(version.agreed for version in figures.by_version)
    accuracy = (
        f"{share(right, agreed)}: the model was right on {right:,} of {counted(agreed, 'agreed verdict')}"
        if agreed
        else "no agreed verdict yet (two testers agreeing, or a reviewer's decision, make one)"
    )
    lines = [
        ("Verdicts", f"{figures.verdicts:,} on {counted(figures.tweets, 'tweet')}", "health-verdicts"),
        (
            "Agreement",
            f"{counted(figures.agreed, 'tweet')} agreed, {counted(figures.conflicts, 'open conflict')}, "
            f"{figures.waiting:,} waiting for a second verdict",
            "health-agreement",
        ),
        ("Accuracy on agreed verdicts", accuracy, "health-accuracy"),
    ]
    body = "".join(
        f'<div><b>{name}:</b> <span id="{element_id}">{html.escape(value)}</span></div>'
        for name, value, element_id in lines
    )
    if len(figures.by_version) > 1:
        body += table_html(
            ("model version", "agreed", "right", "accuracy"),
            [(v.model_version, v.agreed, v.right, share(v.right, v.agreed)) for v in figures.by_version],
            "health-accuracy-by-version",
        )
    return f'<div id="health-feedback">{body}</div>'


def table_html(header: tuple[str, ...], rows: list[tuple], element_id: str) -> str:
    """A small plain table; every cell escaped."""
    head = "".join(f"<th style='padding:2px 10px'>{html.escape(name)}</th>" for name in header)
    cells = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 10px'>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table id="{element_id}"><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>'


def per_day_chart(figures: FeedbackFigures) -> dict:
    """An ECharts bar chart of verdicts per UTC day (Panel ships ECharts: works offline)."""
    return {
        "title": {"text": "Verdicts per day (UTC)", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [day for day, _ in figures.per_day]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [{"type": "bar", "name": "verdicts", "data": [count for _, count in figures.per_day]}],
    }


def when(run: StepRun) -> str:
    return run.ended.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def monitor_html(run: StepRun) -> str:
    """The drift verdict as `monitor` printed it, and each feature's PSI, drifted ones marked."""
    drifted = set(run.tags.get("drift.features", "none").split(",")) - {"none"}
    if note := run.tags.get("drift.note"):
        verdict = f"{note}, no alert"
    elif run.tags.get("drift.alert") == "true":
        verdict = f"DRIFT in {', '.join(sorted(drifted))}"
    else:
        verdict = "no drift"
    rows = int(run.metrics.get("rows", 0))
    alert = run.params.get("psi_alert", "?")
    text = (
        f"Latest monitor run {run.run_id}, finished {when(run)}: {verdict} on {rows:,} tweets "
        f"(alert above PSI {alert})."
    )
    psi = sorted((name.removeprefix("psi_"), value) for name, value in run.metrics.items() if name.startswith("psi_"))
    table = table_html(
        ("feature", "PSI", "drifted"),
        [(name, f"{value:.3f}", "yes" if name in drifted else "") for name, value in psi],
        "health-psi",
    )
    return f'<div id="health-monitor">{html.escape(text)}</div>{table}'


def shadow_html(run: StepRun) -> str:
    """How often champion and challenger agree, and what each flags (and gets right, with labels)."""
    metric = run.metrics.get
    text = (
        f"Latest shadow run {run.run_id}, finished {when(run)}: the two models agree on "
        f"{metric('agreement_rate', 0):.1%} of {int(metric('rows', 0)):,} tweets "
        f"({int(metric('disagreements', 0)):,} disagreements); flagged {metric('champion_flagged_share', 0):.1%} "
        f"(champion) vs {metric('challenger_flagged_share', 0):.1%} (challenger)."
    )
    if "champion_accuracy" in run.metrics and "challenger_accuracy" in run.metrics:
        text += (
            f" Accuracy on labelled tweets: {metric('champion_accuracy'):.3f} (champion) vs "
            f"{metric('challenger_accuracy'):.3f} (challenger)."
        )
    return f'<div id="health-shadow">{html.escape(text)}</div>'


def no_run_html(step: str) -> str:
    return message_html(f"No {step} run yet: `{MAKES_ONE[step]}` makes one.", "info", f"health-{step}")


def chart_panes(charts: list[Chart], run: StepRun) -> list:
    """Each chart with a plain caption naming its artifact and run (no link: the store may be private)."""
    return [
        pn.Column(
            pn.pane.PNG(chart.png, width=CHART_WIDTH, sizing_mode="fixed"),
            pn.pane.HTML(
                f'<div class="health-caption"><small>{html.escape(chart.path)}, {run.step} run '
                f"{html.escape(run.run_id)}</small></div>",
                width=CHART_WIDTH,
                sizing_mode="fixed",
            ),
            sizing_mode="fixed",
            width=CHART_WIDTH + 10,
        )
        for chart in charts
    ]


class HealthView:
    """The tab's panes, read on first opening and on Refresh."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self.loaded = False
        self.status = pn.pane.HTML("")
        self.refresh_button = pn.widgets.Button(label="Refresh", color="default", width=160, sizing_mode=None)
        self.refresh_button.on_click(self.refresh)
        self.feedback = pn.pane.HTML("")
        self.per_day = pn.pane.ECharts({}, height=260, visible=False)
        self.tracking = pn.pane.HTML("")
        self.sections = {step: pn.pane.HTML("") for step in (MONITOR, SHADOW)}
        self.charts = {step: pn.FlexBox() for step in (MONITOR, SHADOW)}

    def panel(self) -> pn.Column:
        """The feedback figures first: they need nothing optional, so they show on every dashboard."""
        return pn.Column(
            pn.Row(self.refresh_button, self.status),
            pn.pane.Markdown("### What the testers' verdicts say"),
            self.feedback,
            self.per_day,
            pn.pane.Markdown("### Drift and shadow (tracking store)"),
            self.tracking,
            self.sections[MONITOR],
            self.charts[MONITOR],
            self.sections[SHADOW],
            self.charts[SHADOW],
        )

    def watch_tab(self, tabs: pn.Tabs, index: int) -> None:
        """Read the sources the first time the tab is opened: sessions that never look cost nothing."""

        async def opened(event) -> None:
            if event.new == index and not self.loaded:
                await self.refresh()

        tabs.param.watch(opened, "active")

    async def refresh(self, event=None) -> None:
        """Read both sources at once in worker threads and show what each gave, or why it gave nothing."""
        self.loaded = True
        self.refresh_button.disabled = True
        self.status.object = '<span id="health-status">Reading…</span>'
        try:
            figures, runs = await asyncio.gather(
                asyncio.to_thread(read_figures, self.store.path, self.store.busy_timeout_s),
                asyncio.to_thread(read_runs),
                return_exceptions=True,
            )
            self.show_feedback(figures)
            self.show_runs(runs)
        finally:
            self.refresh_button.disabled = False
        read_at = datetime.now(UTC).strftime("%H:%M:%S UTC")
        self.status.object = f'<span id="health-status">Read at {read_at}.</span>'

    def show_feedback(self, figures: FeedbackFigures | BaseException) -> None:
        """The figures, or the store's problem as a sentence; anything else is a bug and is raised to the log."""
        if isinstance(figures, FeedbackUnreadable):
            self.feedback.object = message_html(str(figures), "error", "health-feedback")
            self.per_day.visible = False
            return
        if isinstance(figures, BaseException):
            raise figures
        self.feedback.object = feedback_html(figures, str(self.store.path))
        self.per_day.object = per_day_chart(figures)
        self.per_day.visible = bool(figures.per_day)

    def show_runs(self, runs: dict[str, StepRun | None] | BaseException) -> None:
        """Each step's run and charts, or the sentence saying why there are none; stale charts are cleared."""
        if isinstance(runs, TrackingUnavailable):
            self.tracking.object = message_html(str(runs), runs.kind, "health-tracking")
            for step in (MONITOR, SHADOW):
                self.sections[step].object = ""
                self.charts[step][:] = []
            return
        if isinstance(runs, BaseException):
            raise runs
        self.tracking.object = ""
        for step, render in ((MONITOR, monitor_html), (SHADOW, shadow_html)):
            run = runs[step]
            self.sections[step].object = render(run) if run else no_run_html(step)
            self.charts[step][:] = chart_panes(run.charts, run) if run else []


def read_runs() -> dict[str, StepRun | None]:
    """The configured store's newest runs (raises TrackingUnavailable with the sentence to show)."""
    return latest_runs(configured_uri())
