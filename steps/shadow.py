"""`shadow`: score recent traffic with the champion and the challenger, and say where they disagree.

Both models answer every tweet through their pyfunc, as `mlflow models serve` would, each at its
own served threshold. Logged on this run: how often they agree, each one's flagged share, the
disagreeing tweets with both answers, and, where the traffic carries true labels (a `label`
column, or the feedback store's), both accuracies, false alarm and miss rates. Nothing is
promoted here: the gate in `register` decides; this is what the support team would have seen.
Two charts: `shadow/agreement.png` (how the two decisions cross) and `shadow/score_scatter.png` (each
tweet's two scores against both thresholds).
"""

from __future__ import annotations

import click
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import get_model_info

from steps.lib.gate import Scored, score_splits
from steps.lib.monitoring_charts import agreement_chart, score_scatter
from steps.lib.registry import CHALLENGER_URI, CHAMPION_URI
from steps.lib.tracking import StepError, log_step_params, run_step
from steps.lib.traffic import Traffic, read_traffic

ROLES = ("champion", "challenger")


def check_model(uri: str, role: str) -> str:
    """The model's training run id, or a one-line error naming the URI before anything is scored."""
    try:
        return get_model_info(uri).run_id or "unknown"
    except Exception as error:  # MlflowException, OSError: the URI names nothing loadable
        message = str(error).splitlines()[0]
        raise StepError(f"{role}_uri {uri} cannot be loaded: {message}") from None


def rates(labels: pd.Series, flagged: np.ndarray) -> dict[str, float]:
    """Accuracy and the two error rates a support lead reads: false alarms and missed complaints."""
    truth = labels.to_numpy() == 1
    return {
        "accuracy": float(np.mean(flagged == truth)),
        "false_alarm_rate": float(np.mean(flagged[~truth])) if (~truth).any() else float("nan"),
        "miss_rate": float(np.mean(~flagged[truth])) if truth.any() else float("nan"),
    }


def compare(traffic: Traffic, scored: dict[str, Scored]) -> tuple[dict[str, float], pd.DataFrame]:
    """Agreement, flagged shares and (with labels) both models' rates; the disagreeing rows.

    Args:
        traffic: the tweets and their labels, if any.
        scored: each role's P(negative) and threshold on those tweets.

    Returns:
        The metrics to log and the table of tweets where the two decisions differ.
    """
    flagged = {role: scored[role].proba >= scored[role].threshold for role in ROLES}
    agree = flagged["champion"] == flagged["challenger"]
    metrics = {"rows": float(len(traffic.texts)), "rows_skipped": float(traffic.skipped)}
    metrics |= {"agreement_rate": float(agree.mean()), "disagreements": float((~agree).sum())}
    for role in ROLES:
        metrics[f"{role}_flagged_share"] = float(flagged[role].mean())
        metrics[f"{role}_threshold"] = scored[role].threshold
        if traffic.labels is not None:
            metrics |= {f"{role}_{key}": value for key, value in rates(traffic.labels, flagged[role]).items()}
    table = pd.DataFrame({"text": traffic.texts})
    for role in ROLES:
        table[f"{role}_label"] = np.where(flagged[role], "negative", "not_negative")
        table[f"{role}_proba_negative"] = scored[role].proba
    if traffic.labels is not None:
        table["label"] = np.where(traffic.labels == 1, "negative", "not_negative")
    return metrics, table[~agree].reset_index(drop=True)


def log_charts(scored: dict[str, Scored]) -> None:
    """The agreement table and the score scatter, as `shadow/agreement.png` and `shadow/score_scatter.png`."""
    champion, challenger = scored["champion"], scored["challenger"]
    figures = {
        "shadow/agreement.png": agreement_chart(
            champion.proba >= champion.threshold, challenger.proba >= challenger.threshold
        ),
        "shadow/score_scatter.png": score_scatter(
            champion.proba, challenger.proba, (champion.threshold, challenger.threshold)
        ),
    }
    for path, figure in figures.items():
        mlflow.log_figure(figure, path)
        plt.close(figure)


def shadow(input: str, champion_uri: str, challenger_uri: str) -> None:
    """Score the traffic with both models; log and print where they agree, disagree and (with labels) err.

    Args:
        input: recent tweets: .csv/.parquet with `text` (and `label`), or feedback.db.
        champion_uri: the model serving today.
        challenger_uri: the model it is compared with.
    """
    if champion_uri.strip() == challenger_uri.strip():
        raise StepError(f"champion_uri and challenger_uri are the same model ({champion_uri}): nothing to compare")
    traffic = read_traffic(input)
    uris = {"champion": champion_uri, "challenger": challenger_uri}
    runs = {role: check_model(uris[role], role) for role in ROLES}
    log_step_params({"input": input, "champion_uri": champion_uri, "challenger_uri": challenger_uri})
    mlflow.set_tags({f"{role}_run_id": run_id for role, run_id in runs.items()} | {"input_source": traffic.source})
    scored = {role: score_splits(uris[role], {"traffic": traffic.texts}, role)["traffic"] for role in ROLES}
    metrics, disagreements = compare(traffic, scored)
    mlflow.log_metrics(metrics)
    mlflow.log_table(disagreements, "shadow/disagreements.json")
    log_charts(scored)
    print(
        f"{len(traffic.texts)} tweets ({traffic.skipped} without text left out): the two agree on "
        f"{metrics['agreement_rate']:.1%}; flagged {metrics['champion_flagged_share']:.1%} (champion) vs "
        f"{metrics['challenger_flagged_share']:.1%} (challenger)",
        flush=True,
    )
    if traffic.labels is not None:
        for role in ROLES:
            print(
                f"  {role}: accuracy {metrics[f'{role}_accuracy']:.3f}, false alarms "
                f"{metrics[f'{role}_false_alarm_rate']:.3f}, missed complaints {metrics[f'{role}_miss_rate']:.3f}"
            )
    print(f"  {len(disagreements)} disagreeing tweets: artifact shadow/disagreements.json", flush=True)


@click.command(help=__doc__)
@click.option(
    "--input", "input", default="", help="recent tweets: .csv/.parquet with `text` (and `label`), or feedback.db"
)
@click.option("--champion-uri", default=CHAMPION_URI, show_default=True, help="the model serving today")
@click.option("--challenger-uri", default=CHALLENGER_URI, show_default=True, help="the model it is compared with")
def main(**options: object) -> None:
    run_step("shadow", lambda run: shadow(**options))


if __name__ == "__main__":
    main()
