"""The gate with a champion from another data run: scored only on validation rows it never trained on.

The champion here trains on a data run whose training split also holds the first half of the
candidate's validation rows (as a re-split of the corpus, or added feedback, would give). Scored on
those rows it would look better than it is: the gate leaves them out, or declines to compare.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import f1_score

from steps import register as register_step
from tests.code.registry.conftest import copy_data_run
from tests.code.registry.test_register_gate import GATE, STRONG, champion, in_process, train_here, version_of

pytestmark = pytest.mark.integration


def data_run_with_seen_validation(tracking, source_run_id: str) -> tuple[str, pd.DataFrame]:
    """A prepare_data run whose training split adds the first half of the source's validation rows."""
    client = MlflowClient()
    run = client.create_run(tracking.experiment_id, run_name="data-overlap", tags={"step": "prepare_data"})
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(run_id=source_run_id, artifact_path="data", dst_path=tmp))
        train, val = pd.read_parquet(local / "train.parquet"), pd.read_parquet(local / "val.parquet")
        seen = val.iloc[: len(val) // 2]
        pd.concat([train, seen], ignore_index=True).to_parquet(local / "train.parquet")
        client.log_artifacts(run.info.run_id, str(local), "data")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, seen


def register_here(tracking, data_run_id: str, model_name: str, **extra) -> SimpleNamespace:
    params = {"data_run_id": data_run_id, "model_name": model_name, **GATE, **extra}
    return in_process(tracking, register_step.main, params)


@pytest.fixture(scope="module")
def overlap(registry_tracking, prepared_run_id, model_name):
    overlap_data, seen = data_run_with_seen_validation(registry_tracking, prepared_run_id)
    incumbent = train_here(registry_tracking, overlap_data, STRONG)
    register_here(registry_tracking, overlap_data, model_name)
    assert champion(model_name).run_id == incumbent
    fresh_data = copy_data_run(registry_tracking, prepared_run_id, "data-fresh")
    candidate = train_here(registry_tracking, fresh_data, STRONG)
    return {"data": fresh_data, "seen": seen, "incumbent": incumbent, "candidate": candidate}


def test_too_few_rows_neither_saw_keeps_the_champion_and_says_why(overlap, registry_tracking, model_name):
    outcome = register_here(registry_tracking, overlap["data"], model_name)  # min_gate_rows 200 > half of val
    assert champion(model_name).run_id == overlap["incumbent"]
    tags = version_of(model_name, overlap["candidate"]).tags
    assert tags["gate.passed"] == "false" and tags["gate.rows_basis"] == "no_fair_comparison"
    assert f"{len(overlap['seen'])} of " in tags["gate.rows_note"]
    assert outcome.run.data.tags["outcome"] == "no_fair_comparison"
    assert "no fair comparison" in outcome.stdout and "min_gate_rows" in outcome.stdout


def test_the_gate_scores_both_on_the_validation_rows_the_champion_never_saw(overlap, registry_tracking, model_name):
    register_here(registry_tracking, overlap["data"], model_name, min_gate_rows=10)
    tags = version_of(model_name, overlap["candidate"]).tags
    assert tags["gate.rows_basis"] == "rows_neither_saw"
    logged = mlflow.artifacts.load_dict(f"runs:/{overlap['candidate']}/predictions/val.json")
    val = pd.DataFrame(logged["data"], columns=logged["columns"])
    unseen = ~val["text"].isin(set(overlap["seen"]["text"]))
    assert int(tags["gate.rows"]) == int(unseen.sum()) == len(val) - len(overlap["seen"])
    # The candidate's figure is its macro F1 at its threshold on exactly those rows, not on the whole split.
    expected = f1_score(val.loc[unseen, "label"], val.loc[unseen, "predicted"], average="macro")
    assert float(tags["gate.candidate_value"]) == pytest.approx(expected, abs=1e-6)
    assert not np.isclose(expected, f1_score(val["label"], val["predicted"], average="macro"))
    winner = overlap["candidate"] if tags["gate.passed"] == "true" else overlap["incumbent"]
    assert champion(model_name).run_id == winner
