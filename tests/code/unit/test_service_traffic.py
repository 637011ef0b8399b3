"""The hand-written service-traffic set: its shape, and the rates `evaluate` reports on it."""

from __future__ import annotations

import pandas as pd
import pytest

from steps.lib.service_traffic import (
    ServiceTrafficError,
    errors_by_kind,
    load_service_traffic,
    score_service_traffic,
    service_traffic_metrics,
)

COMPLAINT_KINDS = {"complaint_explicit", "complaint_polite", "complaint_question", "complaint_sarcastic"}


def test_rates_at_the_served_labels():
    frame = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d", "e"],
            "label": [1, 1, 0, 0, 0],
            "brand": ["x"] * 5,
            "kind": ["complaint_polite", "complaint_question", "question_neutral", "thanks", "question_neutral"],
        }
    )
    served = {"a": ("negative", 0.9), "b": ("not_negative", 0.2), "c": ("negative", 0.6)}
    served |= {"d": ("not_negative", 0.1), "e": ("not_negative", 0.3)}

    def predict(texts):
        return pd.DataFrame([{"label": served[t][0], "proba_negative": served[t][1]} for t in texts])

    scored = score_service_traffic(frame, predict)
    assert scored["predicted"].tolist() == [1, 0, 1, 0, 0]
    metrics = service_traffic_metrics(scored)
    assert metrics["service_traffic_accuracy"] == pytest.approx(3 / 5)
    assert metrics["service_traffic_false_alarm_rate"] == pytest.approx(1 / 3)
    assert metrics["service_traffic_miss_rate"] == pytest.approx(1 / 2)
    table = errors_by_kind(scored).set_index("kind")
    assert table.loc["question_neutral", "errors"] == 1 and table.loc["question_neutral", "rows"] == 2


def test_a_malformed_set_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(ServiceTrafficError, match="service-traffic set not found"):
        load_service_traffic(tmp_path / "missing.csv")
    path = tmp_path / "set.csv"
    path.write_text("text,label\nhello,1\n")
    with pytest.raises(ServiceTrafficError, match=r"set.csv: missing column\(s\) brand, kind"):
        load_service_traffic(path)
    path.write_text("text,label,brand,kind\nhello,2,x,y\n")
    with pytest.raises(ServiceTrafficError, match="a label of 0 or 1"):
        load_service_traffic(path)
