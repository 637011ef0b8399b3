"""`label_queue`: which recent tweets the team should label next, so each verdict teaches `adapt` the most.

Scores recent traffic with the champion (and the challenger, when one is registered) through their
pyfunc, ranks the tweets by closeness to the champion's threshold, disagreement of the two models
and novelty against the tweets already labelled (steps.lib.label_queue), and logs the `size` best as
the artifact `label_queue.csv` (rank, text, an empty `label`, the scores with the champion's threshold and
version, the priority's parts). The
team fills `label` (1 = must answer, 0 = need not), in the dashboard or in the file; the verdicts
feed `adapt -P verdicts=<the labelled file or feedback.db>` (docs/design.md, "What to label next").
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient

from steps.lib.cli import WHOLE_NUMBER
from steps.lib.gate import score_splits
from steps.lib.label_queue import Candidates, rank_queue
from steps.lib.registry import CHALLENGER_URI, CHAMPION_URI
from steps.lib.tracking import StepError, log_step_params, run_step
from steps.lib.traffic import read_feedback_store, read_traffic

NO_CHALLENGER = "none"
QUEUE_ARTIFACT = "label_queue.csv"
FEEDBACK_SUFFIXES = (".db", ".sqlite")


def is_feedback_store(path: str) -> bool:
    return Path(path).suffix.lower() in FEEDBACK_SUFFIXES


def recent_tweets(path: str) -> tuple[list[str], int, str]:
    """The tweets to rank, the rows left out for want of a text, and the file read.

    An empty feedback store gets its own sentence: a team opening the queue before any traffic was
    collected should hear that, not a table's row count.
    """
    store = Path(path).expanduser()
    if path and is_feedback_store(path) and store.is_file() and read_feedback_store(store).empty:
        raise StepError(f"{path} holds no tweets yet: there is nothing to queue until the team scores some")
    traffic = read_traffic(path)
    return traffic.texts, traffic.skipped, traffic.source


def labelled_texts(path: str) -> list[str]:
    """The texts the team has already given a verdict on (none when no file is named).

    Args:
        path: the dashboard's feedback store, or a CSV/Parquet file with a `text` column (a verdicts
            file, or an earlier queue); empty for none.
    """
    if not path:
        return []
    file = Path(path).expanduser()
    if is_feedback_store(path) and file.is_file():
        return read_feedback_store(file)["text"].astype(str).tolist()  # an empty store: nothing labelled yet
    return read_traffic(path).texts


def unset_alias(uri: str) -> bool:
    """True when `uri` is `models:/<name>@<alias>` of a registered model that has no such alias now.

    A champion just promoted has no challenger: that is a state of the registry, not a mistake.
    """
    name, _, alias = uri.removeprefix("models:/").partition("@")
    if not uri.startswith("models:/") or not alias:
        return False
    try:
        return alias not in MlflowClient().get_registered_model(name).aliases
    except MlflowException:  # no such model: the URI is wrong, not merely unset
        return False


def check_champion(uri: str) -> None:
    """A one-line error naming the champion's URI when nothing loadable is there, before anything is scored."""
    try:
        get_model_info(uri)
    except Exception as error:  # MlflowException, OSError: the URI names nothing loadable
        raise StepError(f"champion_uri {uri} cannot be loaded: {str(error).splitlines()[0]}") from None


def challenger_to_use(uri: str) -> str | None:
    """The challenger's URI, or None when there is none to ask (`none`, or its alias unset).

    Without a challenger the queue ranks without disagreement and says so; a URI that names no
    model at all is an error.
    """
    if uri.strip().lower() == NO_CHALLENGER:
        return None
    if unset_alias(uri):
        print(f"no {uri} registered: ranking without champion/challenger disagreement", flush=True)
        return None
    try:
        get_model_info(uri)
    except Exception as error:  # MlflowException, OSError: the URI names nothing loadable
        raise StepError(f"challenger_uri {uri} cannot be loaded: {str(error).splitlines()[0]}") from None
    return uri


def label_queue(input: str, labelled: str, champion_uri: str, challenger_uri: str, size: int, output: str) -> None:
    """Rank recent traffic, log the queue's `size` best tweets as `label_queue.csv`, print where it is.

    Args:
        input: recent tweets: .csv/.parquet with `text`, or feedback.db.
        labelled: texts already labelled (feedback.db, or a file with `text`); empty for none.
        champion_uri: the model serving today; its threshold is the one the queue is near.
        challenger_uri: the model it is compared with (`none`: rank without it).
        size: how many tweets to queue.
        output: also write the queue here (a .csv path); empty to log it on the run only.
    """
    if size < 1:
        raise StepError(f"size must be >= 1 tweet, got {size}")
    if output and not Path(output).expanduser().resolve().parent.is_dir():
        raise StepError(f"output {output}: its folder does not exist")
    texts, skipped, source = recent_tweets(input)
    known = labelled_texts(labelled)
    check_champion(champion_uri)
    challenger = challenger_to_use(challenger_uri)
    log_step_params(
        {"input": input, "labelled": labelled, "champion_uri": champion_uri, "challenger_uri": challenger_uri}
        | {"size": size, "output": output}
    )
    mlflow.set_tags({"input_source": source, "label_queue.challenger": challenger or NO_CHALLENGER})
    uris = {"champion": champion_uri} | ({"challenger": challenger} if challenger else {})
    scored = {role: score_splits(uri, {"traffic": texts}, role)["traffic"] for role, uri in uris.items()}
    champion, other = scored["champion"], scored.get("challenger")
    candidates = Candidates(
        texts, champion.proba, champion.threshold, other.proba if other else None, champion.model_version
    )
    queue = rank_queue(candidates, known, size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / QUEUE_ARTIFACT
        queue.to_csv(path, index=False)
        mlflow.log_artifact(str(path))
    if output:
        queue.to_csv(Path(output).expanduser(), index=False)
    mlflow.log_metrics(
        {
            "rows": float(len(texts)),
            "rows_skipped": float(skipped),
            "labelled_known": float(len(known)),
            "queued": float(len(queue)),
            "queue_mean_closeness": float(queue["closeness"].mean()),
            "queue_mean_novelty": float(queue["novelty"].mean()),
        }
        | ({"queue_mean_disagreement": float(queue["disagreement"].mean())} if challenger else {})
    )
    where = f"artifact {QUEUE_ARTIFACT}" + (f" and {output}" if output else "")
    print(
        f"queued {len(queue)} of {len(texts):,} recent tweets ({skipped} without text left out, {len(known):,} "
        f"already labelled) around the champion's threshold {candidates.threshold:.3f}: {where}",
        flush=True,
    )
    print(
        "  fill `label` (1 = must answer, 0 = need not), then: mlflow run . -e adapt --env-manager local "
        "-P verdicts=<the labelled file or feedback.db>",
        flush=True,
    )
    for row in queue.head(3).itertuples():
        print(f"  {row.rank}. P(negative) {row.proba_negative:.2f}  {row.text[:80]}", flush=True)


@click.command(help=__doc__)
@click.option(
    "--input", "input", default="", help="recent tweets: .csv/.parquet with `text` (and `label`), or feedback.db"
)
@click.option(
    "--labelled",
    default="",
    help="tweets already labelled: feedback.db, or a .csv/.parquet with `text` (empty: none)",
)
@click.option("--champion-uri", default=CHAMPION_URI, show_default=True, help="the model serving today")
@click.option(
    "--challenger-uri",
    default=CHALLENGER_URI,
    show_default=True,
    help="the model it is compared with; `none` ranks without disagreement (so does a missing default alias)",
)
@click.option("--size", type=WHOLE_NUMBER, default=50, show_default=True, help="tweets in the queue")
@click.option("--output", default="", help="also write the queue to this .csv path (empty: the run's artifact only)")
def main(**options: object) -> None:
    run_step("label_queue", lambda run: label_queue(**options))


if __name__ == "__main__":
    main()
