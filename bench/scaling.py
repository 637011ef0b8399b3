"""Scaling study: how each step's time and memory, and batch-scoring throughput, grow with data.

Runs the real steps (`python -m steps.<step>`, the command of each MLproject entry point) on
10k to 100k tweets, each in its own process so its CPU time and peak resident memory are exact
(`wait4`'s rusage), then scores the prepared tweets with the logged pyfunc directly and with
`score_batch` on Spark local mode. Writes CSVs and a chart to docs/ and projects the full
1.6M-tweet Sentiment140 file from the measured growth (a projection, labelled as such: rows
are never replicated to fake size).

\b
    python -m bench.scaling                       # baseline steps, embedded + Sentiment140 sample
    python -m bench.scaling --extra-step train_lstm --extra-step "train_bert:--max-train-samples 5000"
    python -m bench.scaling --sizes 2000 --no-spark   # a quick smoke run
"""

from __future__ import annotations

import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np
import pandas as pd

from harness.provenance import provenance
from steps.lib.cli import WHOLE_NUMBER, WHOLE_NUMBERS, seed_option
from steps.lib.registry import CHAMPION_URI

REPO = Path(__file__).resolve().parent.parent

SENTIMENT140_SAMPLE = REPO.parent / "shared" / "data" / "sentiment140_100k"
FULL_SIZE = 1_600_000
EMBEDDED_ROWS = 38_158  # before cleaning; prepare_data keeps about 35k of them


@dataclass
class Dataset:
    """One measured configuration: where the tweets come from and how prepare_data is called."""

    name: str  # "embedded" or "sentiment140"
    rows: int  # tweets fed to prepare_data (what the projection scales)
    prepare_args: list[str]  # for the embedded corpus, prepare_data cleans all 38k rows, then samples


@dataclass
class StepResult:
    dataset: str
    rows: int
    step: str
    seconds: float  # wall clock: inflated when other jobs share the cores
    cpu_seconds: float  # user + system time of the step's process: the work itself, what is projected
    peak_rss_mib: float
    run_id: str
    metrics: dict = field(default_factory=dict)


def run_measured(step: str, args: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, str]:
    """Run one step in its own process: wall seconds, CPU seconds, peak RSS (MiB) and its run id."""
    command = [sys.executable, "-m", f"steps.{step}", *args]
    started = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{tail}")
    found = re.search(rf"==> {step}: run ([0-9a-f]+)", log.read_text())
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, found.group(1) if found else ""


def sentiment140_subset(rows: int, seed: int, folder: Path) -> Path:
    """A balanced random subset of the shared sample, written outside the repo (never replicated)."""
    if rows >= 100_000:
        return SENTIMENT140_SAMPLE
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for name in ("negative.txt", "positive.txt"):
        lines = (SENTIMENT140_SAMPLE / name).read_text(encoding="utf-8", errors="replace").splitlines()
        (folder / name).write_text("\n".join(rng.sample(lines, rows // 2)) + "\n", encoding="utf-8")
    return folder


def datasets(sizes: list[int], workdir: Path, seed: int) -> list[Dataset]:
    """Embedded corpus where it has enough rows, the Sentiment140 sample at every size."""
    plan = []
    for rows in sizes:
        if rows <= 30_000 and rows < EMBEDDED_ROWS:
            plan.append(
                Dataset(
                    "embedded",
                    rows,
                    ["--source", "embedded", "--max-rows", str(rows), "--seed", str(seed)],
                )
            )
        if SENTIMENT140_SAMPLE.is_dir() and rows <= 100_000:
            path = sentiment140_subset(rows, seed, workdir / f"sentiment140_{rows}")
            plan.append(
                Dataset("sentiment140", rows, ["--source", "txt_dir", "--path", str(path), "--seed", str(seed)])
            )
    return plan


def run_metrics(run_id: str, keys: tuple[str, ...]) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient().get_run(run_id).data.metrics
    return {key: metrics[key] for key in keys if key in metrics}


def measure_steps(plan: list[Dataset], extra_steps: list[str], env: dict[str, str], logs: Path) -> list[StepResult]:
    results = []
    for data in plan:
        label = f"{data.name} {data.rows:,}"
        seconds, cpu, peak, data_run = run_measured(
            "prepare_data", data.prepare_args, env, logs / f"{data.name}_{data.rows}_prepare.log"
        )
        prepared = run_metrics(data_run, ("rows_kept", "train_rows", "val_rows", "test_rows"))
        results.append(StepResult(data.name, data.rows, "prepare_data", seconds, cpu, peak, data_run, prepared))
        print(
            f"{label}: prepare_data {seconds:.1f}s ({cpu:.1f}s CPU), peak {peak:.0f} MiB, "
            f"kept {prepared.get('rows_kept', 0):.0f}",
            flush=True,
        )
        for spec in ("train_baseline", *extra_steps):
            step, _, extra = spec.partition(":")
            if not (REPO / "steps" / f"{step}.py").is_file():
                print(f"{label}: {step} skipped (no steps/{step}.py in this tree)", flush=True)
                continue
            args = ["--data-run-id", data_run, *shlex.split(extra)]
            log = logs / f"{data.name}_{data.rows}_{re.sub(r'[^a-z0-9]+', '_', spec)}.log"
            seconds, cpu, peak, run_id = run_measured(step, args, env, log)
            metrics = run_metrics(run_id, ("train_seconds", "predict_ms_per_1k", "val_roc_auc", "vocabulary_size"))
            name = f"{step} {extra}".strip()  # e.g. "train_baseline --char-ngrams true" stays apart
            results.append(StepResult(data.name, data.rows, name, seconds, cpu, peak, run_id, metrics))
            print(f"{label}: {name} {seconds:.1f}s ({cpu:.1f}s CPU), peak {peak:.0f} MiB, {metrics}", flush=True)
    return results


def prepared_texts(data_run_id: str, folder: Path) -> Path:
    """Every prepared tweet of a run (train+val+test) as one Parquet file with a `text` column."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(run_id=data_run_id, artifact_path="data", dst_path=str(folder)))
    frame = pd.concat([pd.read_parquet(local / f"{split}.parquet") for split in ("train", "val", "test")])
    path = folder / "tweets.parquet"
    frame[["text", "label", "source"]].reset_index(drop=True).to_parquet(path, index=False)
    return path


def score_direct(model_path: str, source: Path, output: Path, batch_size: int) -> tuple[float, float]:
    """File to file with the pyfunc in this process: load, read, predict in batches, write.

    Returns wall and CPU seconds (the pyfunc is single-threaded: CPU seconds are its idle-core time).
    """
    import mlflow

    started, cpu_started = time.perf_counter(), time.process_time()
    model = mlflow.pyfunc.load_model(model_path)
    frame = pd.read_parquet(source)
    parts = [model.predict(frame.iloc[i : i + batch_size][["text"]]) for i in range(0, len(frame), batch_size)]
    inputs = frame.rename(columns={"label": "input_label"}).reset_index(drop=True)  # as score_batch names it
    pd.concat([inputs, pd.concat(parts, ignore_index=True)], axis=1).to_parquet(output)
    return time.perf_counter() - started, time.process_time() - cpu_started


def measure_scoring(
    models: list[tuple[str, str, str, int]], workdir: Path, use_spark: bool, batch_size: int, repeats: int
) -> list[dict]:
    """Throughput of the same model on the same file: direct pyfunc vs score_batch on Spark local mode.

    Each warm measurement is the best of `repeats` (the machine is shared: the best run is the one
    least disturbed). The Spark session's first job also starts its Python workers, so it is
    reported apart as "cold".
    """
    from steps.lib.spark_scoring import DEFAULT_MASTER, build_spark, score_file

    rows, spark, startup, cores = [], None, 0.0, 1
    (workdir / "scored").mkdir(parents=True, exist_ok=True)

    def record(label: str, count: int, engine: str, seconds: float, cpu: float | None = None) -> None:
        rows.append({"model": label, "rows": count, "engine": engine, "seconds": seconds, "cpu_seconds": cpu})
        print(f"scoring {label} on {count:,}: {engine} {count / seconds:,.0f} tweets/s", flush=True)

    for label, model_path, source, count in models:
        out = workdir / "scored" / f"{re.sub(r'[^a-z0-9]+', '_', label)}_{count}"
        direct = [
            score_direct(model_path, Path(source), out.with_suffix(".parquet"), batch_size) for _ in range(repeats)
        ]
        record(label, count, "direct pyfunc", *min(direct))
        if not use_spark:
            continue
        if spark is None:
            started = time.perf_counter()
            spark = build_spark(DEFAULT_MASTER)
            startup = time.perf_counter() - started
            cold = score_file(spark, model_path, source, str(out.with_suffix(".cold")), batch_size=batch_size)
            record(label, count, f"Spark {DEFAULT_MASTER} cold", cold["seconds"])
        warm = [
            score_file(spark, model_path, source, str(out.with_suffix(f".warm{i}")), batch_size=batch_size)["seconds"]
            for i in range(repeats)
        ]
        record(label, count, f"Spark {DEFAULT_MASTER} warm", min(warm))
    if spark is not None:
        cores = spark.sparkContext.defaultParallelism
        spark.stop()
    for row in rows:
        row["tweets_per_second"] = row["rows"] / row["seconds"]
        row["tweets_per_cpu_second"] = row["rows"] / row["cpu_seconds"] if row["cpu_seconds"] else None
        row["spark_startup_seconds"] = startup if row["engine"].startswith("Spark") else 0.0
        row["cores_used"] = cores if row["engine"].startswith("Spark") else 1
    return rows


def project(rows: np.ndarray, values: np.ndarray, target: int = FULL_SIZE) -> dict[str, float]:
    """Extrapolate a measured cost to `target` rows by fitting `c + a·n^b` with `b >= 1`.

    `c` is the fixed cost (imports, MLflow logging), `a·n^b` the work that grows with the data;
    `b` is not allowed below 1 because every step touches every tweet. The exponent is chosen on
    a grid by least squares (with three sizes the fit is exact, so noise goes straight into `b`:
    the plain line `c + k·n`, reported beside it, is the optimistic reading). An extrapolation
    from a few points on a shared machine, never a measurement.
    """
    n = np.asarray(rows, float) / 1000.0
    t = np.asarray(values, float)
    best = (np.inf, 1.0, 0.0, 0.0)
    for exponent in np.arange(1.0, 3.001, 0.01):
        design = np.column_stack([np.ones_like(n), n**exponent])
        (fixed, scale), *_ = np.linalg.lstsq(design, t, rcond=None)
        if fixed < 0:  # no negative start-up cost: refit through the origin
            fixed, scale = 0.0, float(t @ n**exponent / (n**exponent @ n**exponent))
        error = float(np.sum((fixed + scale * n**exponent - t) ** 2))
        if error < best[0] - 1e-12:
            best = (error, float(exponent), float(fixed), float(scale))
    _, exponent, fixed, scale = best
    slope, intercept = np.polyfit(n, t, 1)
    return {
        "fixed": fixed,
        "exponent": exponent,
        "linear": float(intercept + slope * target / 1000.0),
        "projected": fixed + scale * (target / 1000.0) ** exponent,
    }


def projections(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step, time and peak memory at 1.6M from the Sentiment140 series (same source as the full file)."""
    rows = []
    for step, group in steps[steps["dataset"] == "sentiment140"].groupby("step", sort=False):
        if group["rows"].nunique() < 3:
            continue
        seconds = project(group["rows"].to_numpy(), group["cpu_seconds"].to_numpy())
        memory = project(group["rows"].to_numpy(), group["peak_rss_mib"].to_numpy())
        rows.append(
            {
                "step": step,
                "rows": FULL_SIZE,
                "cpu_seconds_fixed": seconds["fixed"],
                "time_exponent": seconds["exponent"],
                "cpu_seconds_if_linear": seconds["linear"],
                "cpu_seconds_projected": seconds["projected"],
                "memory_exponent": memory["exponent"],
                "peak_rss_mib_projected": memory["projected"],
                "basis": "PROJECTION from " + ", ".join(f"{r:,}" for r in sorted(group["rows"])) + " rows",
            }
        )
    return pd.DataFrame(rows)


def chart(steps: pd.DataFrame, projected: pd.DataFrame, scoring: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(18, 5.5), width_ratios=[1, 1, 0.8])
    for (dataset, step), group in steps.groupby(["dataset", "step"], sort=False):
        style = "o-" if dataset == "sentiment140" else "s--"
        for axis, column in ((axes[0], "cpu_seconds"), (axes[1], "peak_rss_mib")):
            (line,) = axis.plot(group["rows"], group[column], style, label=f"{step} ({dataset})")
            extra = projected[projected["step"] == step] if not projected.empty else projected
            if dataset == "sentiment140" and not extra.empty:
                color = line.get_color()
                if column == "cpu_seconds":  # a range: straight-line growth up to the fitted growth
                    low, high = extra["cpu_seconds_if_linear"].iloc[0], extra["cpu_seconds_projected"].iloc[0]
                else:
                    low = high = extra["peak_rss_mib_projected"].iloc[0]
                axis.plot([group["rows"].max(), FULL_SIZE], [group[column].iloc[-1], high], ":", color=color)
                axis.plot([FULL_SIZE, FULL_SIZE], [low, high], "x-", color=color)
    panels = (
        (axes[0], "CPU time per step", "CPU seconds (= wall on an idle core)"),
        (axes[1], "Peak memory per step", "MiB"),
    )
    for axis, title, unit in panels:
        axis.set(xscale="log", yscale="log", xlabel="tweets", ylabel=unit, title=f"{title} (1.6M: projected)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    if not scoring.empty:
        short = {"train_baseline": "baseline", " --char-ngrams true": " +char n-grams", "sentiment140": "S140"}
        labels = []
        for row in scoring.itertuples():
            model = row.model
            for long, brief in short.items():
                model = model.replace(long, brief)
            labels.append(f"{model}, {row.rows:,}\n{row.engine}")
        axes[2].barh(
            labels,
            scoring["tweets_per_second"],
            color=["tab:blue" if "direct" in e else "tab:orange" for e in scoring["engine"]],
        )
        axes[2].set(xlabel="tweets per second (file to file)", title="Batch scoring throughput")
        axes[2].tick_params(axis="y", labelsize=7)
    figure.suptitle("Measured on 2 CPU cores shared with other jobs; dotted lines and x marks at 1.6M are projections")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_tables(steps: pd.DataFrame, projected: pd.DataFrame, scoring: pd.DataFrame) -> None:
    view = steps[
        [
            c
            for c in ("dataset", "rows", "step", "seconds", "cpu_seconds", "peak_rss_mib", "rows_kept", "val_roc_auc")
            if c in steps
        ]
    ]
    with pd.option_context("display.width", 250, "display.float_format", "{:,.2f}".format):
        print("\nMeasured (2 shared cores):\n" + view.to_string(index=False))
        if not projected.empty:
            print("\nPROJECTION to 1.6M tweets (extrapolated, not measured):\n" + projected.to_string(index=False))
        if not scoring.empty:
            print("\nBatch scoring, file to file:\n" + scoring.to_string(index=False))


def report(steps: pd.DataFrame, scoring: pd.DataFrame, out: Path, origin: dict[str, str] | None = None) -> None:
    """Project, then write the CSVs (each row with the run's provenance) and the chart, and print the tables.

    `origin` (harness.provenance, taken at the start of the measurement) becomes columns of every CSV;
    a `--replot` keeps the columns the measured run wrote.
    """
    if origin:
        steps, scoring = steps.assign(**origin), scoring.assign(**origin)
    projected = projections(steps)
    if not scoring.empty:
        startup = scoring["spark_startup_seconds"].fillna(0)
        scoring["projected_seconds_1_6m"] = FULL_SIZE / scoring["tweets_per_second"] + startup
    out.mkdir(parents=True, exist_ok=True)
    steps.to_csv(out / "scaling_steps.csv", index=False, float_format="%.3f")
    projected = projected.assign(**origin) if origin else projected
    projected.to_csv(out / "scaling_projection.csv", index=False, float_format="%.3f")
    scoring.to_csv(out / "scaling_scoring.csv", index=False, float_format="%.3f")
    chart(steps, projected, scoring, out / "scaling.png")
    print_tables(steps, projected, scoring)
    print(f"\nwrote {out}/scaling_steps.csv, scaling_projection.csv, scaling_scoring.csv, scaling.png", flush=True)


def scoring_plan(
    plan: list[Dataset], steps: pd.DataFrame, workdir: Path, champion: str, slow_rows: int
) -> list[tuple[str, str, str, int]]:
    """(label, model, input file, rows) at the largest size of each dataset: per-tweet cost is least noisy there.

    Models other than the baseline (LSTM, transformer, the champion) score at most `slow_rows` tweets.
    """
    models = []
    for name in dict.fromkeys(data.name for data in plan):
        rows = max(data.rows for data in plan if data.name == name)
        runs = steps[(steps["dataset"] == name) & (steps["rows"] == rows)]
        folder = workdir / "texts" / f"{name}_{rows}"
        source = prepared_texts(runs.loc[runs["step"] == "prepare_data", "run_id"].iloc[0], folder)
        candidates = [
            (run.step, f"runs:/{run.run_id}/model") for run in runs.itertuples() if run.step != "prepare_data"
        ]
        if champion and name == "sentiment140":
            candidates.append(("champion", champion))
        for label, model in candidates:
            frame = pd.read_parquet(source)
            if not label.startswith("train_baseline") and len(frame) > slow_rows:
                frame = frame.head(slow_rows)
            path = folder / f"{re.sub(r'[^a-z0-9]+', '_', label)}.parquet"
            frame.to_parquet(path, index=False)
            models.append((f"{label} ({name})", model, str(path), len(frame)))
    return models


def fetch_champion(model_uri: str, tracking_uri: str, workdir: Path) -> str:
    """A local copy of the registered champion, or "" when none is registered in that store."""
    import mlflow

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        print(f"champion not scored: no tracking store at {tracking_uri}", flush=True)
        return ""  # opening a missing SQLite store would create an empty one
    mlflow.set_tracking_uri(tracking_uri)
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(workdir / "champion"))
    except Exception as error:  # any failure means: no champion to benchmark
        print(f"champion not scored: {model_uri} unavailable in {tracking_uri} ({str(error).splitlines()[0]})")
        return ""
    print(f"champion: {model_uri} from {tracking_uri}", flush=True)
    return path


@click.command(help=__doc__)
@click.option(
    "--sizes",
    type=WHOLE_NUMBERS,
    default=(10_000, 30_000, 50_000, 100_000),
    show_default=True,
    help="tweets per measured configuration (comma-separated)",
)
@click.option(
    "--extra-step",
    multiple=True,
    help="STEP[:ARGS] measured after train_baseline, e.g. 'train_lstm:--epochs 2' (repeatable)",
)
@click.option("--champion-uri", default=CHAMPION_URI, show_default=True, help="registered model scored as well")
@click.option(
    "--champion-tracking-uri",
    default=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}"),
    show_default=True,
    help="tracking store that holds the champion",
)
@click.option(
    "--slow-model-rows",
    type=WHOLE_NUMBER,
    default=10_000,
    show_default=True,
    help="rows scored with non-baseline models",
)
@click.option("--batch-size", type=WHOLE_NUMBER, default=1024, show_default=True, help="tweets per scoring batch")
@click.option(
    "--repeats", type=WHOLE_NUMBER, default=2, show_default=True, help="scoring runs per engine (the best is kept)"
)
@click.option("--no-spark/--spark", default=False, show_default=True, help="score with the direct pyfunc only")
@seed_option
@click.option("--workdir", default="", show_default=True, help="scratch folder (empty = a temporary one)")
@click.option("--out", default=str(REPO / "docs"), show_default=True, help="where the CSVs and chart go")
@click.option(
    "--replot/--no-replot", default=False, show_default=True, help="re-project and redraw from the CSVs in --out"
)
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    if args.replot:
        out = Path(args.out)
        report(pd.read_csv(out / "scaling_steps.csv"), pd.read_csv(out / "scaling_scoring.csv"), out)
        return

    import mlflow

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="scaling-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(args.champion_tracking_uri)
    origin = {f"provenance_{key}": value for key, value in provenance(args.champion_uri).items()}  # load at start
    champion = fetch_champion(args.champion_uri, args.champion_tracking_uri, workdir)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    if mlflow.get_experiment_by_name("scaling") is None:  # artifacts in the scratch folder, not ./mlruns
        mlflow.create_experiment("scaling", artifact_location=str(workdir / "artifacts"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": "scaling", "PYTHONHASHSEED": "0"}
    env |= {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TQDM_DISABLE": "1"}
    print(f"scratch: {workdir} (store {store}); {os.cpu_count()} CPU cores, shared with other work", flush=True)

    plan = datasets(sorted(args.sizes), workdir, args.seed)
    results = measure_steps(plan, args.extra_step, env, logs)
    steps = pd.DataFrame([asdict(result) for result in results])

    models = scoring_plan(plan, steps, workdir, champion, args.slow_model_rows)
    scoring = pd.DataFrame(measure_scoring(models, workdir, not args.no_spark, args.batch_size, args.repeats))

    measured = steps.drop(columns=["metrics"]).join(pd.json_normalize(steps["metrics"].tolist()))
    report(measured, scoring, Path(args.out), origin)


if __name__ == "__main__":
    main()
