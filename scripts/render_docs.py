"""Render the docs' figures from the result files in the repository, so no number is copied by hand.

\b
    python scripts/render_docs.py            # rewrite every rendered block of README.md and docs/*.md
    python scripts/render_docs.py --check    # exit 1, naming each block that differs from its files

A rendered block is marked in the Markdown source:

\b
    <!-- rendered: serving_headline -->
    ...what this script writes, ending in one line that names the file it came from...
    <!-- /rendered -->

Each block name maps to one function below and to the result files it reads (benchmark JSON, CSV,
`docs/results/main_job.json`, the labelled set, code constants). Edit the function, not the block.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BLOCK = re.compile(r"(<!-- rendered: (?P<name>[\w.-]+) -->)(?P<body>.*?)(<!-- /rendered -->)", re.S)
DOCS = ("README.md", "docs/*.md")


@dataclass(frozen=True)
class Renderer:
    sources: tuple[str, ...]  # paths relative to the repository root
    render: Callable[[Path], str]


RENDERERS: dict[str, Renderer] = {}


def renders(name: str, *sources: str) -> Callable:
    """Register a block's renderer with the files it reads."""

    def register(function: Callable[[Path], str]) -> Callable[[Path], str]:
        RENDERERS[name] = Renderer(sources, function)
        return function

    return register


# --- formatting -------------------------------------------------------------------------------------


def read_json(root: Path, path: str) -> dict:
    return json.loads((root / path).read_text(encoding="utf-8"))


def commit(value: str) -> str:
    """`8386ff74...` -> `8386ff7`; a dirty tree stays marked."""
    return value[:7] + ("+dirty" if "+dirty" in value else "") if value else "unknown commit"


def when(value: str) -> str:
    """ISO 8601 -> `2026-12-06 05:05 UTC` (a date alone stays a date)."""
    if len(value) <= 10:
        return value
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")


def cpu(value: str) -> str:
    return value.replace("(R)", "").replace(" Processor", "").strip()


def from_file(path: str, provenance: dict | None = None, how: str = "") -> str:
    """The one provenance line each block ends with: the file, and what the file records about its run."""
    facts = []
    if provenance:
        if provenance.get("git_commit"):
            facts.append(f"commit {commit(provenance['git_commit'])}")
        if provenance.get("cpu"):
            facts.append(f"{cpu(provenance['cpu'])}, {provenance.get('cores', '?')} cores")
        if provenance.get("date"):
            facts.append(when(provenance["date"]))
    written = f" by `{how}`" if how else ""  # the script's path, never a command line (the docs' commands are tested)
    recorded = f" ({'; '.join(facts)})" if facts else ""
    return f"_Rendered from `{path}`{recorded}, written{written}._"


def num(value: float, digits: int = 1) -> str:
    """Thousands separated, fixed digits; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:,.{digits}f}"


def table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table; `align` holds `l` or `r` per column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- serving benchmark: docs/serve_benchmark.json ---------------------------------------------------

SERVE = "docs/serve_benchmark.json"


def scenario(results: list[dict], concurrency: int, batch: int) -> dict:
    return next(r for r in results if r["concurrency"] == concurrency and r["batch"] == batch)


def serve_figures(root: Path) -> dict:
    """The goals' figures, computed as bench/serve_benchmark.py computes them."""
    data = read_json(root, SERVE)
    champion, naive = data["champion"], data["naive"]
    target = scenario(champion, 4, 32)
    best = max((r for r in naive if r["batch"] == 32 and not r["errors"]), key=lambda r: r["tweets_per_s"])
    single, naive_single = scenario(champion, 1, 1), scenario(naive, 1, 1)
    rounds = []
    for champion_round, naive_round in zip(data["rounds"]["champion"], data["rounds"]["naive"], strict=True):
        round_best = max((r for r in naive_round if r["batch"] == 32), key=lambda r: r["tweets_per_s"])
        rounds.append(
            (
                scenario(champion_round, 4, 32)["tweets_per_s"] / round_best["tweets_per_s"],
                scenario(champion_round, 1, 1)["p50_ms"] / scenario(naive_round, 1, 1)["p50_ms"],
            )
        )
    return {
        "data": data,
        "target": target,
        "best": best,
        "ratio": target["tweets_per_s"] / best["tweets_per_s"],
        "single": single,
        "naive_single": naive_single,
        "p50_ratio": single["p50_ms"] / naive_single["p50_ms"],
        "rounds": rounds,
    }


@renders("serving_headline", SERVE)
def serving_headline(root: Path) -> str:
    f = serve_figures(root)
    return (
        f"The served champion answers one tweet in **{f['single']['p50_ms']:.1f} ms** (p50, one request at a time).\n"
        f"It scores **{f['target']['tweets_per_s']:,.0f} tweets/s** in 32-tweet requests, four at a time.\n"
        f"That is **{f['ratio']:.1f}x** the best of a naive FastAPI + transformers server of the same weights,"
        " measured in the same run.\n\n" + from_file(SERVE, f["data"]["provenance"], "bench/serve_benchmark.py")
    )


def serve_table(results: list[dict]) -> str:
    header = ["concurrency", "tweets/request", "requests", "errors", "requests/s", "tweets/s"]
    header += ["p50 ms", "p95 ms", "p99 ms", "peak RSS MB"]
    rows = [
        [
            str(r["concurrency"]),
            str(r["batch"]),
            f"{r['requests']:,}",
            str(r["errors"]),
            num(r["requests_per_s"]),
            num(r["tweets_per_s"]),
            num(r["p50_ms"]),
            num(r["p95_ms"]),
            num(r["p99_ms"]),
            num(r["peak_rss_mb"], 0),
        ]
        for r in results
    ]
    return table(header, ["r"] * len(header), rows)


def serve_benchmark_table(root: Path, server: str, caption: str) -> str:
    data = read_json(root, SERVE)
    source = data["provenance"]
    return "\n\n".join(
        [
            f"_{caption}: model `{source['model_name']}` v{source['model_version']}"
            f" (run `{source['model_run_id'][:8]}`), {data['rounds_taken']} rounds pooled,"
            f" load average {source['load_at_start']} at start._",
            serve_table(data[server]),
            from_file(SERVE, source, "bench/serve_benchmark.py"),
        ]
    )


@renders("serve_benchmark_champion", SERVE)
def serve_benchmark_champion(root: Path) -> str:
    return serve_benchmark_table(root, "champion", "Served champion (`mlflow models serve`, 1 worker)")


@renders("serve_benchmark_naive", SERVE)
def serve_benchmark_naive(root: Path) -> str:
    caption = "Naive reference (transformers + torch, one tweet per forward pass, FastAPI/uvicorn, 1 worker)"
    return serve_benchmark_table(root, "naive", caption)


@renders("serve_benchmark_goals", SERVE, "bench/serve_benchmark.py")
def serve_benchmark_goals(root: Path) -> str:
    from bench.serve_benchmark import GOAL_RATIO, GOAL_SINGLE_P50_MS, NAIVE_SINGLE_P50_XEON_MS

    f = serve_figures(root)
    p50, ratio, p50_ratio = f["single"]["p50_ms"], f["ratio"], f["p50_ratio"]
    relative_goal = GOAL_SINGLE_P50_MS / NAIVE_SINGLE_P50_XEON_MS

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    by_round = ", ".join(f"{r:.1f}x" for r, _ in f["rounds"])
    p50_by_round = ", ".join(f"{r:.2f}x" for _, r in f["rounds"])
    return "\n".join(
        [
            f"- **Throughput: {ratio:.1f}x** the naive reference's best."
            f" The champion scores {f['target']['tweets_per_s']:.1f} tweets/s (32-tweet requests, concurrency 4)."
            f" The naive reference's best is {f['best']['tweets_per_s']:.1f}"
            f" (concurrency {f['best']['concurrency']}). Round by round: {by_round}."
            f" Goal >= {GOAL_RATIO:.0f}x: {met(ratio >= GOAL_RATIO)}.",
            f"- **Single-tweet p50: {p50:.1f} ms** at concurrency 1."
            f" Goal <= {GOAL_SINGLE_P50_MS:g} ms on the Intel Xeon: {met(p50 <= GOAL_SINGLE_P50_MS)}.",
            f"- **The same p50 as a ratio: {p50_ratio:.2f}x** the naive reference's"
            f" {f['naive_single']['p50_ms']:.1f} ms in the same run. Round by round: {p50_by_round}."
            f" Goal <= {relative_goal:.2f}x on any CPU: {met(p50_ratio <= relative_goal)}.",
            "",
            from_file(SERVE, f["data"]["provenance"], "bench/serve_benchmark.py"),
        ]
    )


# --- the cost of explanations: docs/serve_benchmark_explain.json -------------------------------------

SERVE_EXPLAIN = "docs/serve_benchmark_explain.json"


@renders("serve_benchmark_explain", SERVE_EXPLAIN)
def serve_benchmark_explain(root: Path) -> str:
    """Single-tweet latency with and without explanations, from one run of the serving benchmark."""
    data = read_json(root, SERVE_EXPLAIN)
    source = data["provenance"]
    plain, explained = scenario(data["champion"], 1, 1), scenario(data["champion_explained"], 1, 1)
    header = ["single-tweet requests", "requests", "errors", "requests/s", "p50 ms", "p95 ms", "p99 ms"]

    def row(name: str, r: dict) -> list[str]:
        figures = [num(r["requests_per_s"]), num(r["p50_ms"]), num(r["p95_ms"]), num(r["p99_ms"])]
        return [name, f"{r['requests']:,}", str(r["errors"]), *figures]

    rows = [row("plain", plain), row("`params.explain: true`", explained)]
    ratio = explained["p50_ms"] / plain["p50_ms"]
    words = data["words_per_tweet_median"]
    lines = [
        f"_Served model `{source['model_name']}` v{source['model_version']} (run `{source['model_run_id'][:8]}`),"
        f" concurrency 1, {data['rounds_taken']} rounds pooled, load average {source['load_at_start']} at start._",
        table(header, ["l"] + ["r"] * (len(header) - 1), rows),
        f"- **With explanations: {explained['p50_ms']:.1f} ms** p50, {ratio:.1f}x the {plain['p50_ms']:.1f} ms"
        f" without, in the same run. The tweets have a median of {words:g} words: each is one more tweet scored.",
    ]
    if data.get("warning"):
        lines.append(f"- {data['warning']}.")
    return "\n\n".join([*lines[:2], "\n".join(lines[2:]), from_file(SERVE_EXPLAIN, source, "bench/serve_benchmark.py")])


# --- queue picking against random picking: docs/results/adaptation_queue.json -----------------------

ADAPTATION_QUEUE = "docs/results/adaptation_queue.json"


def paired(points: pd.DataFrame) -> pd.DataFrame:
    """The points whose seed and size were measured both ways: a run stopped early compares like with like."""
    picked = points[points["picking"].isin(["queue", "random"])]
    both = picked.groupby(["seed", "verdicts"])["picking"].transform("nunique") == 2
    return picked[both]


def picking_means(points: pd.DataFrame, picking: str) -> pd.DataFrame:
    """Per number of verdicts, the seeds' mean, min and max of each figure for one way of picking."""
    rows = points[points["picking"] == picking]
    return rows.groupby("verdicts")[["macro_f1", "false_alarm_rate", "miss_rate", "picked_label_share"]].agg(
        ["mean", "min", "max", "count"]
    )


def verdicts_to_reach(means: pd.Series, target: float) -> int | None:
    """The fewest verdicts whose mean macro F1 reaches `target` (None: none of the measured sizes does)."""
    reached = means[means >= target - 1e-12]
    return int(reached.index.min()) if len(reached) else None


@renders("adaptation_queue", ADAPTATION_QUEUE)
def adaptation_queue(root: Path) -> str:
    data = read_json(root, ADAPTATION_QUEUE)
    settings, points = data["settings"], pd.DataFrame(data["points"])
    parts = []
    for team in settings["teams"]:
        rows_of_team = points[points["team"] == team]
        start = rows_of_team[rows_of_team["picking"] == "none"]["macro_f1"].iloc[0]
        measured = paired(rows_of_team)
        queue, random = picking_means(measured, "queue"), picking_means(measured, "random")

        def cell(frame: pd.DataFrame, size: int, metric: str) -> str:
            low, mean, high, count = (frame.loc[size, (metric, key)] for key in ("min", "mean", "max", "count"))
            return f"{mean:.3f} ({low:.3f}-{high:.3f})" if count > 1 else f"{mean:.3f}"

        rows = []
        for size in random.index:
            needed = verdicts_to_reach(queue[("macro_f1", "mean")], random.loc[size, ("macro_f1", "mean")])
            rows.append(
                [
                    f"{size:,}",
                    str(int(random.loc[size, ("macro_f1", "count")])),
                    cell(random, size, "macro_f1"),
                    cell(queue, size, "macro_f1"),
                    f"{needed:,}" if needed is not None else f"more than {max(queue.index):,}",
                    f"{random.loc[size, ('picked_label_share', 'mean')]:.2f} / "
                    f"{queue.loc[size, ('picked_label_share', 'mean')]:.2f}",
                    f"{cell(random, size, 'false_alarm_rate')} / {cell(queue, size, 'false_alarm_rate')}",
                    f"{cell(random, size, 'miss_rate')} / {cell(queue, size, 'miss_rate')}",
                ]
            )
        header = ["verdicts", "seeds", "macro F1, random picking", "macro F1, the queue"]
        header += ["the queue's verdicts to reach it (fewest measured)"]
        header += ["share labelled 1, random / queue", "false alarm rate, random / queue", "miss rate, random / queue"]
        parts.append(
            f"Team `{team}`; the champion before any verdict: macro F1 {start:.3f}.\n\n"
            + table(header, ["r", "r", "l", "l", "r", "r", "l", "l"], rows)
        )
    planned = len(settings["teams"]) * len(settings["seeds"]) * len(settings["sizes"])
    done = len(paired(points)) // 2
    stopped = f" The run was stopped after {done} of its {planned} paired points." if done < planned else ""
    scope = (
        f"Per seed (mean, and range in brackets), {settings['traffic']:,} tweets of the team's pool are the "
        f"recent traffic; both ways of picking choose from them, learn as `adapt` does ({settings['epochs']:g} epochs "
        f"at {settings['learning_rate']:g}, replay {settings['replay']}) and are judged on the same validation tweets. "
        f"{data['provenance'].get('note', '')}{stopped}"
    ).strip()
    return (
        "\n\n".join(parts)
        + "\n\n"
        + scope
        + "\n\n"
        + from_file(ADAPTATION_QUEUE, data["provenance"], "bench/adaptation.py")
    )


# --- the main job's quality figures: docs/results/main_job.json ---------------------------------------

MAIN_JOB = "docs/results/main_job.json"


def main_job_provenance(saved: dict) -> str:
    source = saved["provenance"]
    return (
        f"_Rendered from `{MAIN_JOB}` (main run `{source['main_run_id'][:8]}`, commit {commit(source['git_commit'])},"
        f" {when(source['started'])}), written by `scripts/results_table.py --json`._"
    )


def main_job_table(title: str) -> Callable[[Path], str]:
    def render(root: Path) -> str:
        from scripts.results_table import TABLES, frame

        saved = read_json(root, MAIN_JOB)
        return TABLES[title](frame(saved)) + "\n\n" + main_job_provenance(saved)

    return render


for _name, _title in (
    ("main_job_quality", "Quality"),
    ("main_job_operating_point", "Operating point"),
    ("main_job_behaviour", "Behaviour (failure rates)"),
    ("main_job_calibration", "Calibration"),
):
    renders(_name, MAIN_JOB, "scripts/results_table.py")(main_job_table(_title))


def champion_run(saved: dict) -> dict:
    run_id = saved["provenance"].get("champion", {}).get("run_id")
    return next((run for run in saved["runs"] if run["run_id"] == run_id), saved["runs"][0])


@renders("quality_headline", MAIN_JOB)
def quality_headline(root: Path) -> str:
    saved = read_json(root, MAIN_JOB)
    run, champion = champion_run(saved), saved["provenance"].get("champion", {})
    metric = lambda key: run[f"metrics.{key}"]  # noqa: E731
    version = f"`{champion['model']}` v{champion['version']}, " if champion else ""
    return (
        f"The champion ({version}{run['tags.model_family']}, run `{run['run_id'][:8]}`) on the complaint test split,"
        f" at its threshold {metric('threshold'):.2f}:\n"
        f"macro F1 **{metric('test_macro_f1'):.3f}**, false alarm rate **{metric('test_false_alarm_rate'):.3f}**,"
        f" miss rate **{metric('test_miss_rate'):.3f}**, ROC AUC {metric('test_roc_auc'):.3f}.\n"
        f"All candidates: [docs/article.md](docs/article.md#results-the-complaint-trained-champion).\n\n"
        + main_job_provenance(saved)
    )


@renders("main_job_targets", MAIN_JOB)
def main_job_targets(root: Path) -> str:
    saved = read_json(root, MAIN_JOB)
    run = champion_run(saved)
    metric = lambda key: run[f"metrics.{key}"]  # noqa: E731

    def target(value: float, goal: float, at_least: bool) -> str:
        ok = value >= goal if at_least else value <= goal
        return f"{value:.3f} ({'>=' if at_least else '<='} {goal:.2f}, {'met' if ok else '**not met**'})"

    return (
        f"Against the targets, on the complaint test split at the served threshold ({metric('threshold'):.2f}):"
        f" macro F1 {target(metric('test_macro_f1'), 0.88, True)},"
        f" false alarm rate {target(metric('test_false_alarm_rate'), 0.10, False)},"
        f" miss rate {target(metric('test_miss_rate'), 0.10, False)}.\n"
        f"On the service-traffic set: accuracy {metric('service_traffic_accuracy'):.3f},"
        f" false alarms {target(metric('service_traffic_false_alarm_rate'), 0.10, False)},"
        f" misses {target(metric('service_traffic_miss_rate'), 0.10, False)}.\n\n" + main_job_provenance(saved)
    )


# --- exploratory trials: docs/trials/complaints.json --------------------------------------------------

TRIALS = "docs/trials/complaints.json"
RECIPE_ROWS = {  # arm in the file -> (the row's words, the training tweets)
    "sentiment_only": ("sentiment corpus only (the old champion's recipe)", "sentiment"),
    "complaint_only": ("complaint split only, 3 epochs", "complaints"),
    "mixture": ("one shuffled pass over both, the complaints repeated 3 times (`mixture`)", "both"),
    "sentiment_then": (
        "sentiment, then the complaints for 3 epochs at a lower rate (`sentiment_then_complaints`)",
        "both",
    ),
}


@renders("complaint_recipes", TRIALS)
def complaint_recipes(root: Path) -> str:
    data = read_json(root, TRIALS)
    arms = {recipe["arm"].split(" ")[0]: recipe for recipe in data["recipes"]}
    rows = []
    for arm, (words, tweets) in RECIPE_ROWS.items():
        validation = arms[arm]["validation"]
        best = validation["best_f1"]
        rows.append(
            [
                words,
                tweets,
                num(validation["roc_auc"], 3),
                num(best["macro_f1"], 3),
                f"{best['false_alarm']:.3f} / {best['miss']:.3f}",
            ]
        )
    big = next(stage for stage in data["complaint_stage"] if stage["variant"] == "big3")
    at_third = big["at_0.33"]
    rows.append(
        [
            "the same, with draws 1-3 (complaint stage from the saved sentiment checkpoint)",
            "both",
            num(big["val_roc_auc"], 3),
            f"{at_third['macro_f1']:.3f} at 1/3",
            f"{at_third['fa']:.3f} / {at_third['miss']:.3f} at 1/3",
        ]
    )
    header = ["transformer recipe", "training tweets", "val ROC AUC", "macro F1 at the best threshold"]
    header += ["false alarms / misses there"]
    source = data["provenance"]
    return (
        table(header, ["l", "l", "r", "r", "l"], rows)
        + f"\n\n_Rendered from `{TRIALS}` ({source['machine'].split(' (')[0]}, {source['date']})._"
    )


# --- scaling: docs/scaling_*.csv ----------------------------------------------------------------------

STEPS_CSV = "docs/scaling_steps.csv"
PROJECTION_CSV = "docs/scaling_projection.csv"
SOURCES = {"embedded": "embedded", "sentiment140": "Sentiment140"}


def step_name(step: str) -> str:
    return step.replace(" --char-ngrams true", ", char n-grams")


@renders("scaling_steps", STEPS_CSV)
def scaling_steps(root: Path) -> str:
    steps = pd.read_csv(root / STEPS_CSV)
    steps["order"] = steps["dataset"].map({name: i for i, name in enumerate(SOURCES)})
    steps = steps.sort_values(["order", "rows"], kind="stable")
    rows = [
        [
            SOURCES.get(row.dataset, row.dataset),
            f"{row.rows:,}",
            step_name(row.step),
            num(row.seconds),
            num(row.cpu_seconds),
            num(row.peak_rss_mib, 0),
            num(row.val_roc_auc, 3),
        ]
        for row in steps.itertuples()
    ]
    header = ["source", "tweets", "step", "wall s", "CPU s", "peak MiB", "val ROC AUC"]
    return (
        table(header, ["l", "r", "l", "r", "r", "r", "r"], rows)
        + f"\n\n_Rendered from `{STEPS_CSV}`, written by `bench/scaling.py`._"
    )


@renders("scaling_projection", PROJECTION_CSV)
def scaling_projection(root: Path) -> str:
    projection = pd.read_csv(root / PROJECTION_CSV)
    rows = []
    for row in projection.itertuples():
        low, high = row.cpu_seconds_if_linear, row.cpu_seconds_projected
        span = f"**{low:,.0f} s**" if round(low) == round(high) else f"**{low:,.0f}–{high:,.0f} s**"
        rows.append(
            [
                step_name(row.step),
                f"{row.cpu_seconds_fixed:,.0f} s",
                f"{row.time_exponent:.2f}",
                span,
                f"**{row.peak_rss_mib_projected / 1024:.1f} GiB**",
            ]
        )
    header = ["step", "fixed cost", "fitted exponent", f"CPU time at {projection.rows.iloc[0] / 1e6:.1f}M"]
    header += [f"peak memory at {projection.rows.iloc[0] / 1e6:.1f}M"]
    basis = projection.basis.iloc[0]
    return (
        table(header, ["l", "r", "r", "r", "r"], rows)
        + f"\n\n_Rendered from `{PROJECTION_CSV}` ({basis.lower()}), written by `bench/scaling.py`._"
    )


# --- reliability: docs/reliability_*.json -------------------------------------------------------------

HOSTILE = "docs/reliability_hostile.json"
SOAK = "docs/reliability_soak.json"
DASHBOARD_LOAD = "docs/reliability_dashboard_load.json"


@renders("reliability_hostile", HOSTILE)
def reliability_hostile(root: Path) -> str:
    data = read_json(root, HOSTILE)
    rows = [
        [
            r["request"],
            f"{r['bytes'] / 1e6:,.1f} MB" if r["bytes"] >= 100_000 else f"{r['bytes']:,} bytes",
            str(r["status"]),
            num(r["seconds"], 2),
            f"{num(r['next_one_tweet_ms'])} ms",
        ]
        for r in data["requests"]
    ]
    header = ["request", "body", "status", "seconds", "the next one-tweet request"]
    return (
        table(header, ["l", "r", "r", "r", "r"], rows)
        + "\n\n"
        + from_file(HOSTILE, data["provenance"], "bench/hostile_requests.py")
    )


HOSTILE_BEFORE_ROWS_GUARD = "docs/reliability_hostile_before_rows_guard.json"


@renders("reliability_rows_before_parsing", HOSTILE_BEFORE_ROWS_GUARD, HOSTILE)
def reliability_rows_before_parsing(root: Path) -> str:
    """The bodies of millions of tiny rows, before the guard counted rows in the bytes and after."""
    before, after = read_json(root, HOSTILE_BEFORE_ROWS_GUARD), read_json(root, HOSTILE)
    then = {r["request"]: r for r in before["requests"]}
    rows = [
        [
            r["request"],
            f"{then[r['request']]['status']}, {num(then[r['request']]['seconds'], 2)} s",
            f"{r['status']}, {num(r['seconds'], 2)} s",
            f"{num(then[r['request']]['next_one_tweet_ms'])} ms / {num(r['next_one_tweet_ms'])} ms",
        ]
        for r in after["requests"]
        if r["request"] in then and "one-letter rows" in r["request"]
    ]
    header = ["request", "before: status, time to answer", "after", "the next one-tweet request, before / after"]
    runs = {"before": before, "after": after}
    warnings = [f"- {label}: {data['warning']}" for label, data in runs.items() if data.get("warning")]
    sources = [
        from_file(HOSTILE_BEFORE_ROWS_GUARD, before["provenance"], "bench/hostile_requests.py"),
        from_file(HOSTILE, after["provenance"], "bench/hostile_requests.py"),
    ]
    return "\n\n".join([table(header, ["l", "r", "r", "r"], rows), *warnings, *sources])


SLOW_CLIENTS = "docs/reliability_slow_clients.json"


@renders("reliability_slow_clients", SLOW_CLIENTS)
def reliability_slow_clients(root: Path) -> str:
    data = read_json(root, SLOW_CLIENTS)
    idle = data["idle"]
    rows = [
        [
            "none (idle server)",
            "",
            f"{num(idle['ping']['p50_ms'])} / {num(idle['ping']['max_ms'])}",
            f"{num(idle['one_tweet']['p50_ms'])} / {num(idle['one_tweet']['max_ms'])}",
            "",
        ]
    ]
    for case in data["cases"]:
        closed = case["closed_by_server"]
        fate = (
            f"{closed:,} closed within {case['closed_after_s_max']:.0f} s ({', '.join(case['answers'])})"
            if closed
            else f"none closed in {case['held_s']:.0f} s"
        )
        rows.append(
            [
                case["case"],
                f"{case['connections']:,}",
                f"{num(case['ping']['p50_ms'])} / {num(case['ping']['max_ms'])}",
                f"{num(case['one_tweet']['p50_ms'])} / {num(case['one_tweet']['max_ms'])}",
                fate + (f"; {case['other_clients_failed']} other calls failed" if case["other_clients_failed"] else ""),
            ]
        )
    header = ["slow clients", "connections", "`/ping` p50 / max ms", "one tweet p50 / max ms", "the slow connections"]
    warning = f"\n\n- {data['warning']}" if data.get("warning") else ""
    return (
        table(header, ["l", "r", "r", "r", "l"], rows)
        + warning
        + "\n\n"
        + from_file(SLOW_CLIENTS, data["provenance"], "bench/slow_clients.py")
    )


STORE_FAULTS = "docs/reliability_store_faults.json"
UPLOAD_STALL = "docs/reliability_upload_stall.json"
UPLOAD_PHASES = {
    "upload and decode": "the largest upload travels and Panel decodes it",
    "parse, score and download": "the largest upload is parsed, scored and its download made",
}


def hostile_rows(data: dict) -> list[list[str]]:
    command = "`python bench/hostile_requests.py`"
    rows = []
    for r in data["requests"]:
        held = f"{num(r['seconds'], 2)} s to answer; the next one-tweet request {num(r['next_one_tweet_ms'])} ms"
        rows.append([r["request"], f"HTTP {r['status']}", held + "; 0 requests lost", command])
    return rows


def slow_client_rows(data: dict) -> list[list[str]]:
    command = "`python bench/slow_clients.py`"
    idle_ping = data["idle"]["ping"]["p50_ms"]
    rows = []
    for case in data["cases"]:
        closed = case["closed_by_server"]
        answer = f"cut at {case['closed_after_s_max']:.0f} s ({', '.join(case['answers'])})" if closed else "held open"
        measured = (
            f"{case['connections']:,} at once for {case['held_s']:.0f} s: `/ping` p50 {num(case['ping']['p50_ms'])} ms "
            f"(idle {num(idle_ping)}), max {num(case['ping']['max_ms'])} ms; "
            f"{case['other_clients_failed']} other requests lost"
        )
        rows.append([f"slow clients: {case['case']}", answer, measured, command])
    return rows


def store_fault_rows(data: dict) -> list[list[str]]:
    command = "`python bench/store_faults.py`"
    rows = []
    for fault in data["faults"]:
        if "skipped" in fault:
            rows.append([fault["fault"], "not measured", f"skipped: {fault['skipped']}", command])
            continue
        answer = f"exit {fault['exit_code']}: `{fault['last_line'][:110]}`"
        rerun = "finished" if fault["rerun_exit_code"] == 0 else f"failed (exit {fault['rerun_exit_code']})"
        measured = (
            f"held {fault['held_s']:.0f} s; {fault['tracebacks']} tracebacks printed; rerun {rerun}; 0 runs reused"
        )
        rows.append([fault["fault"], answer, measured, command])
    return rows


def upload_stall_rows(data: dict) -> list[list[str]]:
    """Per phase of the largest upload, how long another session waited: the newest run against the first."""
    before, after = data["runs"][0], data["runs"][-1]
    machine = after["provenance"]
    conditions = (
        f"{machine.get('cpu_flags') or 'no AVX'} flags, load {machine.get('load_at_start', '?')} on "
        f"{machine.get('cores', '?')} cores"
    )
    rows = []
    for phase, fault in UPLOAD_PHASES.items():
        then, now = before["phases"][phase], after["phases"][phase]
        measured = (
            f"another session's request waited up to {num(now['max_ms'], 0)} ms (p99 {num(now['p99_ms'], 0)} ms; "
            f"median of {len(after['uploads'])} uploads of {after['upload_bytes'] / 2**20:,.1f} MiB); "
            f"{before['label']}: {num(then['max_ms'], 0)} ms (load {before['provenance'].get('load_at_start', '?')}); "
            f"{conditions}"
        )
        rows.append([fault, after["label"], measured, "`python bench/upload_stall.py`"])
    return rows


def soak_row(data: dict) -> list[str]:
    goals = data["goals"]
    errors = sum(data["unexpected_errors"].values()) if data["unexpected_errors"] else 0
    refused = sum(data["refused_as_expected"].values())
    measured = (
        f"{data['seconds'] / 60:.0f} min at {num(data['rate_requests_per_s'])} requests/s: {errors} requests lost, "
        f"{refused:,} bad ones refused; last minute's p99 {goals['p99_last_over_first']:.2f}x the first's; "
        f"memory +{goals['rss_growth_after_first_minute']:.1%}"
    )
    return [
        "sustained load with bad requests mixed in",
        "every good request answered",
        measured,
        "`python bench/soak.py`",
    ]


@renders("reliability_faults", HOSTILE, SLOW_CLIENTS, STORE_FAULTS, SOAK, UPLOAD_STALL)
def reliability_faults(root: Path) -> str:
    hostile, slow = read_json(root, HOSTILE), read_json(root, SLOW_CLIENTS)
    faults, soak = read_json(root, STORE_FAULTS), read_json(root, SOAK)
    stall = read_json(root, UPLOAD_STALL)
    rows = hostile_rows(hostile) + slow_client_rows(slow) + store_fault_rows(faults) + [soak_row(soak)]
    rows += upload_stall_rows(stall)
    header = ["hostile input or fault", "what the project does", "measured", "measured by"]
    sources = [
        from_file(HOSTILE, hostile["provenance"], "bench/hostile_requests.py"),
        from_file(SLOW_CLIENTS, slow["provenance"], "bench/slow_clients.py"),
        from_file(STORE_FAULTS, faults["provenance"], "bench/store_faults.py"),
        from_file(SOAK, soak["provenance"], "bench/soak.py"),
        from_file(UPLOAD_STALL, stall["runs"][-1]["provenance"], "bench/upload_stall.py"),
    ]
    return table(header, ["l", "l", "l", "l"], rows) + "\n\n" + "\n\n".join(sources)


@renders("reliability_soak", SOAK)
def reliability_soak(root: Path) -> str:
    data = read_json(root, SOAK)
    rows = [
        [
            str(m["minute"]),
            f"{m['requests']:,}",
            num(m["p50_ms"], 0),
            num(m["p95_ms"], 0),
            num(m["p99_ms"], 0),
            num(m.get("service_p99_ms"), 0),
            str(m["refused_as_expected"]),
            str(m["unexpected_errors"]),
            num(m["rss_mb"], 0),
        ]
        for m in data["minutes"]
    ]
    goals = data["goals"]
    header = ["minute", "requests", "p50 ms", "p95 ms", "p99 ms", "server p99 ms", "expected 4xx", "unexpected"]
    header += ["RSS MB"]
    return (
        table(header, ["r"] * len(header), rows)
        + "\n\n"
        + f"Goals: {goals['unexpected_errors']} unexpected errors (goal 0);"
        + f" RSS {goals['rss_growth_after_first_minute']:+.1%} after the first minute (goal < 5%);"
        + f" p99 last/first minute {goals['p99_last_over_first']:.2f}x (goal <= 1.5x).\n\n"
        + from_file(SOAK, data["provenance"], "bench/soak.py")
    )


@renders("reliability_dashboard_load", DASHBOARD_LOAD)
def reliability_dashboard_load(root: Path) -> str:
    data = read_json(root, DASHBOARD_LOAD)
    settings = data["settings"]
    actions = list(settings[0]["actions"])
    header = ["action"]
    for setting in settings:
        label = setting["setting"] if setting["setting"] == "default" else f"`{setting['setting']}`"
        header += [f"{label}: p50 s", "p95 s"]
    rows = []
    for action in actions:
        row = [action]
        expected = max(s["actions"].get(action, {}).get("count", 0) for s in settings)
        for setting in settings:
            figures = setting["actions"].get(action) or {"count": 0}
            done = figures["count"]
            if not done:
                row += [f"none of {expected}", ""]
            else:
                short = f" ({done} of {expected})" if done < expected else ""
                row += [num(figures["p50_s"]) + short, num(figures["p95_s"])]
        rows.append(row)
    rows.append(["errors"] + [cell for s in settings for cell in (f"**{len(s['errors'])}**", "")])
    rows.append(["whole script, every tester"] + [cell for s in settings for cell in (f"{s['wall_s']:.0f} s", "")])
    return (
        table(header, ["l"] + ["r"] * (len(header) - 1), rows)
        + "\n\n"
        + from_file(DASHBOARD_LOAD, data["provenance"], "bench/dashboard_load.py")
    )


# --- the labelled set and the behaviour suite: labels/complaints.csv, steps/behaviour_suite.yaml -------

LABELS = "labels/complaints.csv"
SUITE = "steps/behaviour_suite.yaml"


def cohen_kappa(a: pd.Series, b: pd.Series) -> float:
    observed = (a == b).mean()
    expected = sum(a.eq(value).mean() * b.eq(value).mean() for value in set(a) | set(b))
    return (observed - expected) / (1 - expected)


@renders("labelled_set_counts", LABELS)
def labelled_set_counts(root: Path) -> str:
    labels = pd.read_csv(root / LABELS, usecols=["split", "label_a", "label_b", "label", "adjudicated"])
    total, complaints = len(labels), int(labels["label"].sum())
    agree = int((labels["label_a"] == labels["label_b"]).sum())
    kappa = cohen_kappa(labels["label_a"], labels["label_b"])
    splits = labels.groupby("split")["label"].agg(["size", "mean"])
    split_words = ", ".join(
        f"{name} {int(splits.loc[name, 'size']):,} ({splits.loc[name, 'mean']:.1%} complaints)"
        for name in ("train", "validation", "test")
    )
    return (
        f"{total:,} tweets: {complaints:,} the team must answer ({complaints / total:.1%}),"
        f" {total - complaints:,} it need not.\n"
        f"Splits: {split_words}.\n"
        f"The two passes agree on {agree:,} labels ({agree / total:.1%}), Cohen's kappa {kappa:.3f};"
        f" the other {total - agree:,} were adjudicated.\n\n"
        f"_Rendered from `{LABELS}` (counted by `scripts/render_docs.py`)._"
    )


@renders("behaviour_suite_size", SUITE, "steps/lib/behaviour.py")
def behaviour_suite_size(root: Path) -> str:
    from steps.lib.behaviour import generate_cases, load_suite

    cases = generate_cases(load_suite(root / SUITE))
    return (
        f"The suite expands to {len(cases):,} cases: {cases['test'].nunique()} tests over"
        f" {cases['capability'].nunique()} capabilities, of types {', '.join(sorted(cases['type'].unique()))}.\n\n"
        f"_Rendered from `{SUITE}`, expanded by `steps.lib.behaviour.generate_cases` as `evaluate` does._"
    )


SUITE_RUNS = "docs/results/suite_runs.json"


@renders("suite_runs", SUITE_RUNS)
def suite_runs(root: Path) -> str:
    """How long the suite and its fast lane took, each run with its commit, machine and load."""
    runs = read_json(root, SUITE_RUNS)["runs"]
    rows = [
        [
            run["lane"],
            f"{run['tests_passed']:,}",
            f"{int(run['seconds'] // 60)} min {int(run['seconds'] % 60)} s",
            f"{run['cpu']}, {run['cores']} cores",
            run["load"],
            commit(run["git_commit"]),
            run["date"],
        ]
        for run in runs
    ]
    header = ["lane", "passed", "pytest time", "machine", "load beside it", "commit", "date"]
    return (
        table(header, ["l", "r", "r", "l", "l", "l", "l"], rows)
        + "\n\n"
        + f"_Rendered from `{SUITE_RUNS}` (each run's own record)._"
    )


# --- the documents ------------------------------------------------------------------------------------


def documents(root: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in DOCS:
        found += sorted(root.glob(pattern))
    return found


def rendered_body(name: str, root: Path) -> str:
    return "\n" + RENDERERS[name].render(root).strip("\n") + "\n"


def render_text(text: str, root: Path) -> tuple[str, list[str]]:
    """The document with every block rendered, and the names of the blocks that changed."""
    changed: list[str] = []

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise click.ClickException(f"unknown rendered block {name!r}; known: {', '.join(sorted(RENDERERS))}")
        body = rendered_body(name, root)
        if body != match["body"]:
            changed.append(name)
        return match[1] + body + match[4]

    return BLOCK.sub(replace, text), changed


def blocks(root: Path) -> list[tuple[Path, str]]:
    """Every (document, block name) pair in the repository's docs."""
    return [(doc, m["name"]) for doc in documents(root) for m in BLOCK.finditer(doc.read_text(encoding="utf-8"))]


@click.command(help=__doc__)
@click.option("--check", is_flag=True, help="write nothing; exit 1 naming each block that differs from its files")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=REPO,
    show_default=True,
    help="repository root whose docs and result files are read",
)
def main(check: bool, root: Path) -> None:
    stale = []
    for doc in documents(root):
        text = doc.read_text(encoding="utf-8")
        new, changed = render_text(text, root)
        for name in changed:
            stale.append(f"{doc.relative_to(root)}: block {name} (from {', '.join(RENDERERS[name].sources)})")
        if changed and not check:
            doc.write_text(new, encoding="utf-8")
    verb = "stale" if check else "rewritten"
    for line in stale:
        click.echo(f"{verb}: {line}")
    if check and stale:
        sys.exit(1)
    if not stale:
        click.echo("every rendered block matches its files")


if __name__ == "__main__":
    main()
