"""Learning curves of `adapt`: how many verdicts a team must give before the champion decides its way.

\b
    python bench/adaptation.py [--model-uri models:/tweet-sentiment@champion] [--out docs/adaptation.json]

Teams are simulated from the complaint set (labels/complaints.csv): verdicts are drawn from its
training split, and each model is judged on its validation split, never on test (the defaults of
`adapt` were chosen from these curves). Two teams:

- `questions_too`: a team whose definition is shifted: it also wants questions for information
  flagged (reason code N1 relabelled 1), on every source;
- `other_brands`: the guide's own definition, verdicts and judgement on non-airline brands only.

For each N in --sizes and each seed, N verdicts are drawn (stratified), learned exactly as `adapt`
learns them by default (steps.lib.adaptation, with `adapt`'s own defaults: replay, rate, epochs),
and the result decides at the champion's kept threshold. N = 0 is the champion itself. The
reference is the champion fine-tuned the same way on every training tweet of the team. A row
without replay at the largest N shows what the replay costs or saves. Writes the figures with their provenance
(JSON) and a chart (PNG).

`--queue-vs-random` measures instead what the labelling queue (steps.lib.label_queue) saves: per seed, a
stretch of recent traffic (`--traffic` tweets drawn from the team's pool) is scored by the champion; N
verdicts are the queue's N first tweets (no challenger, nothing labelled before) or N tweets drawn at
random from the same traffic, as a team labelling whatever arrives would; both are learned the same
way and judged on the same validation tweets. Written to `--queue-out`, which scripts/render_docs.py
renders into docs/adaptation.md ("verdicts needed to reach the same macro F1").
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import torch

from harness.provenance import provenance
from steps import adapt as adapt_step
from steps.lib.adaptation import (
    adaptation_settings,
    decision_figures,
    download_transformer,
    fine_tune_registered,
    learning_rows,
)
from steps.lib.cli import parse
from steps.lib.complaint_labels import load_complaint_labels
from steps.lib.fine_tune import FineTuning
from steps.lib.label_queue import Candidates, rank_queue
from steps.lib.tracking import configure_tracking
from steps.lib.transformer_data import subsample

REPO = Path(__file__).resolve().parent.parent
QUESTION_CODE = "N1"


def team_views(labelled: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """Per simulated team, the pool its verdicts are drawn from (training split) and its judge (validation)."""
    shifted = labelled.assign(label=np.where(labelled["code"] == QUESTION_CODE, 1, labelled["label"]))
    brands = labelled[labelled["source"] == "embedded_other_brands"]
    views = {}
    for team, frame in (("questions_too", shifted), ("other_brands", brands)):
        views[team] = {
            "pool": frame.loc[frame["split"] == "train", ["text", "label"]].reset_index(drop=True),
            "judge": frame.loc[frame["split"] == "validation", ["text", "label"]].reset_index(drop=True),
        }
    return views


def judged(classifier, judge: pd.DataFrame) -> dict[str, float]:
    """The figures of the classifier's decisions at its kept threshold on the judge's tweets."""
    proba = classifier.predict_proba(judge["text"].tolist())
    return decision_figures(judge["label"].to_numpy(), proba >= classifier.threshold)


def one_point(
    registered, replay_pool, verdicts, settings: FineTuning, replay: int, workdir: Path
) -> tuple[object, float]:
    """One adaptation, as a run nested under the bench's run (its loss curve and settings in the UI)."""
    rows = learning_rows(verdicts, replay_pool, replay, settings.seed)
    with mlflow.start_run(nested=True, run_name=f"adapt-{len(verdicts)}-seed{settings.seed}-replay{replay}"):
        mlflow.log_params({"verdicts": len(verdicts), "seed": settings.seed, "replay": replay})
        classifier, _, _, seconds = fine_tune_registered(registered, rows, settings, workdir)
    return classifier, seconds


@click.command(help=__doc__)
@click.option("--model-uri", default="models:/tweet-sentiment@champion", show_default=True)
@click.option("--sizes", default="0,50,100,200,500,1000", show_default=True, help="verdicts per team, comma-separated")
@click.option("--seeds", default="1,2,3", show_default=True, help="one draw and one training per seed")
@click.option("--teams", default="questions_too,other_brands", show_default=True)
@click.option("--out", default=str(REPO / "docs" / "adaptation.json"), show_default=True)
@click.option("--render-only", is_flag=True, help="redraw the chart and the page from --out, measure nothing")
@click.option("--queue-vs-random", is_flag=True, help="compare queue picking with random picking (not the curves)")
@click.option("--traffic", default=2000, show_default=True, help="recent tweets per seed the queue picks from")
@click.option("--queue-out", default=str(REPO / "docs" / "results" / "adaptation_queue.json"), show_default=True)
@click.option("--note", default="", help="recorded in the provenance, e.g. why a reduced configuration ran")
def main(
    model_uri: str,
    sizes: str,
    seeds: str,
    teams: str,
    out: str,
    render_only: bool,
    queue_vs_random: bool,
    traffic: int,
    queue_out: str,
    note: str,
) -> None:
    if queue_vs_random:
        configure_tracking()
        torch.set_num_threads(os.cpu_count() or 1)
        compare_picking(
            model_uri, parse_list(sizes), parse_list(seeds), teams.split(","), traffic, Path(queue_out), note
        )
        return
    if render_only:
        publish(json.loads(Path(out).read_text()), Path(out))
        return
    configure_tracking()
    torch.set_num_threads(os.cpu_count() or 1)
    defaults = parse(adapt_step.main)  # the command's own defaults
    replay = defaults["replay"]
    record = {
        "provenance": provenance(model_uri),
        "settings": {"epochs": defaults["epochs"], "learning_rate": defaults["learning_rate"], "replay": replay},
        "points": [],
    }
    labelled, digest = load_complaint_labels()
    record["provenance"]["complaint_set_sha256_12"] = digest
    views = team_views(labelled)
    replay_pool = labelled.loc[labelled["split"] == "train", ["text", "label"]].reset_index(drop=True)
    sizes_list = [int(size) for size in sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name="bench-adaptation") as run:
        mlflow.set_tags({"trial": "adaptation_curves", "model_uri": model_uri})
        record["provenance"]["mlflow_run_id"] = run.info.run_id
        workdir = Path(tmp)
        registered = download_transformer(model_uri, workdir / "champion")
        for team in teams.split(","):
            view = views[team]
            base = judged(registered_classifier(registered, workdir), view["judge"])
            record["points"].append(
                {"team": team, "verdicts": 0, "seed": 0, "replay": replay, "reference": False} | base
            )
            print(f"{team}: champion {base}", flush=True)
            for size in [size for size in sizes_list if size > 0]:
                for seed in [int(seed) for seed in seeds.split(",")]:
                    settings = training_settings(seed)
                    verdicts = subsample(view["pool"], size, seed)
                    classifier, seconds = one_point(registered, replay_pool, verdicts, settings, replay, workdir)
                    figures = judged(classifier, view["judge"])
                    point = {"team": team, "verdicts": size, "seed": seed, "replay": replay, "reference": False}
                    point["seconds"] = seconds
                    record["points"].append(point | figures)
                    print(f"{team}: N={size} seed={seed} {figures} ({seconds:.0f} s)", flush=True)
                    save(record, out)
            largest, settings = max(sizes_list), training_settings(1)
            classifier, seconds = one_point(
                registered, replay_pool, subsample(view["pool"], largest, 1), settings, 0, workdir
            )
            point = {"team": team, "verdicts": largest, "seed": 1, "replay": 0, "reference": False, "seconds": seconds}
            record["points"].append(point | judged(classifier, view["judge"]))
            classifier, seconds = one_point(registered, replay_pool, view["pool"], settings, replay, workdir)
            reference = {"team": team, "verdicts": len(view["pool"]), "seed": 1, "replay": replay, "reference": True}
            record["points"].append(reference | {"seconds": seconds} | judged(classifier, view["judge"]))
            print(f"{team}: all {len(view['pool'])} labels {record['points'][-1]}", flush=True)
            save(record, out)
        publish(record, Path(out))
        for path in (Path(out), Path(out).with_suffix(".png"), Path(out).with_suffix(".md")):
            mlflow.log_artifact(str(path))


def parse_list(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def queue_order(champion, traffic: pd.DataFrame, size: int) -> pd.DataFrame:
    """The traffic's `size` first tweets of the queue, with their labels: the verdicts a queue-led team gives.

    The queue is greedy, so its first N tweets are the queue of size N: one ranking serves every N.
    """
    proba = champion.predict_proba(traffic["text"].tolist())
    queue = rank_queue(Candidates(traffic["text"].tolist(), proba, champion.threshold), [], size)
    return traffic.set_index("text").loc[queue["text"], ["label"]].reset_index()


def compare_picking(
    model_uri: str, sizes: list[int], seeds: list[int], teams: list[str], traffic_size: int, out: Path, note: str
) -> None:
    """Queue picking against random picking on the same traffic, team and judge: one adaptation per point."""
    defaults = parse(adapt_step.main)
    replay = defaults["replay"]
    record = {
        "provenance": provenance(model_uri),
        "settings": {"epochs": defaults["epochs"], "learning_rate": defaults["learning_rate"], "replay": replay}
        | {"traffic": traffic_size, "sizes": sizes, "seeds": seeds, "teams": teams},
        "points": [],
    }
    labelled, digest = load_complaint_labels()
    record["provenance"]["complaint_set_sha256_12"] = digest
    record["provenance"]["note"] = note
    views = team_views(labelled)
    replay_pool = labelled.loc[labelled["split"] == "train", ["text", "label"]].reset_index(drop=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name="bench-adaptation-queue") as run:
        mlflow.set_tags({"trial": "adaptation_queue_vs_random", "model_uri": model_uri})
        record["provenance"]["mlflow_run_id"] = run.info.run_id
        workdir = Path(tmp)
        registered = download_transformer(model_uri, workdir / "champion")
        champion = registered_classifier(registered, workdir)
        for team in teams:
            view = views[team]
            base = judged(champion, view["judge"])
            record["points"].append({"team": team, "picking": "none", "verdicts": 0, "seed": 0} | base)
            print(f"{team}: champion {base}", flush=True)
            for seed in seeds:
                pool = view["pool"].drop_duplicates("text")
                traffic = pool.sample(n=min(traffic_size, len(pool)), random_state=seed).reset_index(drop=True)
                queued = queue_order(champion, traffic, max(sizes))
                for size in sizes:
                    choices = {"queue": queued.head(size), "random": traffic.sample(n=size, random_state=seed)}
                    for picking, verdicts in choices.items():
                        classifier, seconds = one_point(
                            registered, replay_pool, verdicts, training_settings(seed), replay, workdir
                        )
                        figures = judged(classifier, view["judge"])
                        point = {"team": team, "picking": picking, "verdicts": size, "seed": seed}
                        point |= {"seconds": seconds, "picked_label_share": float(verdicts["label"].mean())}
                        record["points"].append(point | figures)
                        print(f"{team}: {picking} N={size} seed={seed} {figures} ({seconds:.0f} s)", flush=True)
                        save(record, str(out))
        mlflow.log_artifact(str(out))


def registered_classifier(registered, workdir: Path):
    """The champion as it is (N = 0): its weights under torch, its threshold and temperature."""
    classifier, _, _, _ = fine_tune_registered(registered, pd.DataFrame({"text": [], "label": []}), None, workdir)
    return classifier


def training_settings(seed: int) -> FineTuning:
    """Exactly what `adapt` trains with by default (its command's own defaults), with this point's seed."""
    options = parse(adapt_step.main, ["--seed", str(seed)])
    return adaptation_settings(options["epochs"], options["learning_rate"], options["batch_size"], options["seed"])


def save(record: dict, out: str) -> None:
    Path(out).write_text(json.dumps(record, indent=1) + "\n")


def publish(record: dict, out: Path) -> None:
    """The chart (PNG) and the page (Markdown) beside the JSON, both drawn from it alone."""
    chart(record, out.with_suffix(".png"))
    out.with_suffix(".md").write_text(page(record, out))


def page(record: dict, out: Path) -> str:
    """The learning curves as a table: mean and range over the seeds, the reference and the no-replay row."""
    points = pd.DataFrame(record["points"])
    source, settings = record["provenance"], record["settings"]
    lines = [
        "# Learning from verdicts: measured curves",
        "",
        f"Generated by `python bench/adaptation.py` into `{out.name}` (do not edit by hand). Model "
        f"`{source.get('model_uri')}` (version {source.get('model_version', '?')}, "
        f"run {source.get('model_run_id', '?')}); "
        f"commit {source['git_commit']}; {source['cpu']} ({source['cpu_flags']}), {source['cores']} cores, load "
        f"{source['load_at_start']} at start; {source['date']}. adapt's settings: {settings['epochs']:g} epochs at "
        f"{settings['learning_rate']:g}, replay {settings['replay']}. Judged on each team's tweets of the "
        "complaint validation split at the champion's kept threshold.",
        "",
        f"![learning curves]({out.with_suffix('.png').name})",
        "",
        "| team | verdicts | replay | seeds | macro F1 (min-max) | false alarm rate | miss rate |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for (team, verdicts, replay, reference), rows in points.groupby(["team", "verdicts", "replay", "reference"]):
        cell = partial(spread_cell, rows)
        label = f"{verdicts:,} (all the team's labels)" if reference else f"{verdicts:,}"
        lines.append(
            f"| {team} | {label} | {replay} | {len(rows)} | {cell('macro_f1')} | {cell('false_alarm_rate')} "
            f"| {cell('miss_rate')} |"
        )
    lines += [
        "",
        "## Queue or random picking",
        "",
        'The verdicts the labelling queue (`label_queue`, design.md "What to label next") needs to reach the macro '
        "F1 that random picking reaches, on the same simulated team, recent traffic and judge "
        "(`python bench/adaptation.py --queue-vs-random`, rendered by scripts/render_docs.py).",
        "",
        QUEUE_BLOCK.format(body=kept_queue_block(out.with_suffix(".md"))),
    ]
    return "\n".join(lines) + "\n"


QUEUE_BLOCK = "<!-- rendered: adaptation_queue -->{body}<!-- /rendered -->"


def kept_queue_block(page_path: Path) -> str:
    """The queue comparison's rendered block as the page holds it now: it comes from its own results file."""
    text = page_path.read_text() if page_path.exists() else ""
    found = re.search(r"<!-- rendered: adaptation_queue -->(.*?)<!-- /rendered -->", text, re.S)
    return found.group(1) if found else "\n"


def spread_cell(rows: pd.DataFrame, metric: str) -> str:
    """The seeds' mean, with their range when there are several."""
    values = rows[metric]
    spread = f" ({values.min():.3f}-{values.max():.3f})" if len(values) > 1 else ""
    return f"{values.mean():.3f}{spread}"


def chart(record: dict, path: Path) -> None:
    """Macro F1 and false alarm rate against the number of verdicts, per team: mean and range of the seeds."""
    points = pd.DataFrame(record["points"])
    curves = points[(points["replay"] == record["settings"]["replay"]) & ~points["reference"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric, title in zip(
        axes, ("macro_f1", "false_alarm_rate"), ("macro F1", "false alarm rate"), strict=True
    ):
        for team, rows in curves.groupby("team"):
            stats = rows.groupby("verdicts")[metric].agg(["mean", "min", "max"])
            x = np.maximum(stats.index.to_numpy(), 10)  # N = 0 drawn at 10 on the log axis
            axis.plot(x, stats["mean"], marker="o", label=team)
            axis.fill_between(x, stats["min"], stats["max"], alpha=0.2)
            reference = points[(points["team"] == team) & points["reference"]]
            if len(reference):
                axis.axhline(reference[metric].iloc[0], linestyle="--", linewidth=1, color=axis.lines[-1].get_color())
        axis.set_xscale("log")
        axis.set_xlabel("verdicts learned (0 drawn at 10)")
        axis.set_title(f"{title} on the team's validation tweets")
        axis.legend()
    source = record["provenance"]
    fig.suptitle(f"adapt learning curves ({source['cpu']}, {source['date'][:10]}; dashed: all of the team's labels)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
