"""Chart the figures of `bench/serve_benchmark.py --json` for the docs: tweets/s and latency, both servers.

\b
    python scripts/chart_serve_benchmark.py                                   # docs/serve_benchmark.json
    python scripts/chart_serve_benchmark.py --json bench.json --out chart.png

Reads a benchmark run's JSON rather than measuring, so the chart in docs/captures/ always shows the
figures recorded next to it in docs/serving.md (and can be redrawn without a quiet machine).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.serve_benchmark import GOAL_RATIO  # noqa: E402  the throughput goal the benchmark checks, drawn as a line

SERVERS = {"champion": ("served champion (mlflow models serve)", "#1f77b4"), "naive": ("naive reference", "#d62728")}


def load(path: Path) -> dict:
    """The benchmark's JSON, checked for what the chart needs so a wrong file fails with its name."""
    try:
        figures = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"chart_serve_benchmark: error: cannot read {path}: {error}")
    if not isinstance(figures, dict) or not figures.get("champion"):
        sys.exit(f"chart_serve_benchmark: error: {path} has no 'champion' results (is it serve_benchmark's --json?)")
    return figures


def scenario(result: dict) -> str:
    return f"c={result['concurrency']}\n{result['batch']} tweet{'s' if result['batch'] > 1 else ''}/req"


def chart(figures: dict, out: Path) -> Path:
    """Grouped bars per scenario: throughput, with the goal (8x the naive reference's best) as a
    line, and p50 latency with the p95 as the whisker's top (log scale: it spans three decades)."""
    servers = [name for name in SERVERS if figures.get(name)]
    scenarios = [scenario(result) for result in figures["champion"]]
    width = 0.8 / len(servers)
    fig, (throughput, latency) = plt.subplots(1, 2, figsize=(13, 4.8))
    for offset, name in enumerate(servers):
        by_scenario = {scenario(result): result for result in figures[name]}
        rows = [by_scenario.get(label) for label in scenarios]
        xs = [index + (offset - (len(servers) - 1) / 2) * width for index in range(len(scenarios))]
        label, color = SERVERS[name]
        tweets = [row["tweets_per_s"] if row else 0 for row in rows]
        bars = throughput.bar(xs, tweets, width, label=label, color=color)
        throughput.bar_label(bars, labels=[f"{value:.0f}" for value in tweets], fontsize=7, padding=2)
        p50 = [row["p50_ms"] if row else 0 for row in rows]
        p95 = [row["p95_ms"] if row else 0 for row in rows]
        errors = [[0] * len(p50), [high - low for low, high in zip(p50, p95, strict=True)]]
        latency.bar(xs, p50, width, yerr=errors, capsize=3, label=label, color=color)
    if figures.get("naive"):
        goal = GOAL_RATIO * max(result["tweets_per_s"] for result in figures["naive"])
        throughput.axhline(goal, color="black", linestyle="--", linewidth=1)
        label = f"goal: {GOAL_RATIO:.0f}x the naive best ({goal:.0f} tweets/s)"
        throughput.text(len(scenarios) - 0.6, goal * 1.02, label, ha="right", va="bottom", fontsize=8)
        highest = max(result["tweets_per_s"] for name in servers for result in figures[name])
        throughput.set_ylim(0, max(goal, highest) * 1.3)
    throughput.set(title="Throughput (higher is better)", ylabel="tweets/s")
    latency.set(title="Latency per request: p50, whisker to p95 (lower is better)", ylabel="ms (log scale)")
    latency.set_yscale("log")
    for axis in (throughput, latency):
        axis.set_xticks(range(len(scenarios)), scenarios, fontsize=8)
        axis.grid(axis="y", alpha=0.3, which="both")
        axis.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{figures.get('model_uri', 'model')} on {figures.get('machine', 'this machine')}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


@click.command(help=__doc__)
@click.option(
    "--json",
    type=click.Path(path_type=Path),
    default=REPO / "docs" / "serve_benchmark.json",
    show_default=True,
    help="figures written by `bench/serve_benchmark.py --json`",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=REPO / "docs" / "captures" / "serve_benchmark.png",
    show_default=True,
    help="PNG to write",
)
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    print(f"{chart(load(args.json), args.out)}: throughput and latency of both servers from {args.json}")


if __name__ == "__main__":
    main()
