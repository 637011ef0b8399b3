"""bench/adaptation.py's simulated teams and the page it renders from its results file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench import adaptation
from scripts import render_docs
from steps.lib.complaint_labels import load_complaint_labels


def test_the_shifted_team_also_flags_questions_and_the_brand_team_sees_only_its_brands():
    labelled, _ = load_complaint_labels()
    views = adaptation.team_views(labelled)
    questions = labelled[(labelled["split"] == "train") & (labelled["code"] == "N1")]
    pool = views["questions_too"]["pool"].set_index("text")["label"]
    assert (pool.loc[questions["text"]] == 1).all()  # the guide says 0; this team says 1
    assert len(views["questions_too"]["pool"]) == (labelled["split"] == "train").sum()
    brands = labelled[labelled["source"] == "embedded_other_brands"]
    assert set(views["other_brands"]["judge"]["text"]) == set(brands.loc[brands["split"] == "validation", "text"])


def test_the_page_and_chart_come_from_the_results_file_alone(tmp_path):
    points = [
        {"team": "questions_too", "verdicts": 0, "seed": 0, "replay": 1000, "reference": False},
        {"team": "questions_too", "verdicts": 50, "seed": 1, "replay": 1000, "reference": False},
        {"team": "questions_too", "verdicts": 50, "seed": 2, "replay": 1000, "reference": False},
        {"team": "questions_too", "verdicts": 4796, "seed": 1, "replay": 1000, "reference": True},
    ]
    for point, f1 in zip(points, (0.80, 0.82, 0.84, 0.90), strict=True):
        point |= {"macro_f1": f1, "false_alarm_rate": 0.1, "miss_rate": 0.2}
    provenance = {"git_commit": "abc", "cpu": "AMD EPYC", "cpu_flags": "avx2", "cores": "2"}
    provenance |= {"load_at_start": "0.5", "date": "2026-12-06T19:00:00+00:00", "model_uri": "models:/m@champion"}
    record = {"provenance": provenance, "settings": {"epochs": 2.0, "learning_rate": 2e-5, "replay": 1000}}
    out = tmp_path / "adaptation.json"
    out.write_text(json.dumps(record | {"points": points}))
    adaptation.main(["--out", str(out), "--render-only"], standalone_mode=False)
    page = out.with_suffix(".md").read_text()
    assert "| questions_too | 50 | 1000 | 2 | 0.830 (0.820-0.840) | 0.100 (0.100-0.100) |" in page
    assert "| questions_too | 4,796 (all the team's labels) | 1000 | 1 | 0.900 |" in page
    assert out.with_suffix(".png").stat().st_size > 10_000


class NearHalf:
    """A stand-in champion: its score is the tweet's number / 10, its threshold 0.5."""

    threshold = 0.5

    def predict_proba(self, texts):
        return np.array([int(text.split()[-1]) / 10 for text in texts])


def test_the_queue_picks_the_traffic_nearest_the_threshold_with_the_team_labels():
    words = ["refund", "lounge", "delay", "crew", "seat", "bag", "meal", "gate", "wifi", "app"]
    traffic = pd.DataFrame({"text": [f"{word} {i}" for i, word in enumerate(words)], "label": [0, 1] * 5})
    verdicts = adaptation.queue_order(NearHalf(), traffic, 3)
    assert verdicts["text"].tolist() == ["bag 5", "seat 4", "meal 6"]  # 0.5; 0.4 and 0.6 tie: input order
    assert verdicts["label"].tolist() == [1, 0, 0]


def test_the_page_keeps_the_queue_block_rendered_from_its_own_file(tmp_path):
    out = tmp_path / "adaptation.json"
    out.with_suffix(".md").write_text("old\n<!-- rendered: adaptation_queue -->\nkept table\n<!-- /rendered -->\n")
    provenance = {"git_commit": "abc", "cpu": "AMD EPYC", "cpu_flags": "avx2", "cores": "2"}
    provenance |= {"load_at_start": "0.5", "date": "2026-12-06T19:00:00+00:00", "model_uri": "models:/m@champion"}
    point = {"team": "t", "verdicts": 0, "seed": 0, "replay": 250, "reference": False}
    point |= {"macro_f1": 0.8, "false_alarm_rate": 0.1, "miss_rate": 0.2}
    record = {"provenance": provenance, "settings": {"epochs": 4.0, "learning_rate": 5e-5, "replay": 250}}
    page = adaptation.page(record | {"points": [point]}, out)
    assert "<!-- rendered: adaptation_queue -->\nkept table\n<!-- /rendered -->" in page


def test_the_queue_renderer_reads_how_many_verdicts_the_queue_needs(tmp_path):
    points = [{"team": "t", "picking": "none", "verdicts": 0, "seed": 0, "macro_f1": 0.80}]
    f1 = {("queue", 50): 0.86, ("random", 50): 0.83, ("queue", 100): 0.88, ("random", 100): 0.86}
    f1 |= {("queue", 200): 0.89, ("random", 200): 0.885}
    for (picking, size), value in f1.items():
        points.append({"team": "t", "picking": picking, "verdicts": size, "seed": 1, "macro_f1": value})
    points.append({"team": "t", "picking": "queue", "verdicts": 50, "seed": 2, "macro_f1": 0.1})  # unpaired
    for point in points:
        point |= {"false_alarm_rate": 0.1, "miss_rate": 0.2, "picked_label_share": 0.3}
    settings = {"epochs": 4.0, "learning_rate": 5e-5, "replay": 250, "traffic": 2000}
    settings |= {"sizes": [50, 100, 200], "seeds": [1, 2], "teams": ["t"]}
    provenance = {"git_commit": "abc", "cpu": "AMD EPYC", "cores": "2", "date": "2026-12-07T04:00:00+00:00"}
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    record = {"provenance": provenance, "settings": settings, "points": points}
    (results / "adaptation_queue.json").write_text(json.dumps(record))
    block = render_docs.RENDERERS["adaptation_queue"].render(tmp_path)
    assert "| 50 | 1 | 0.830 | 0.860 | 50 |" in block  # random's 0.83 at 50: the queue had it at 50
    assert "| 100 | 1 | 0.860 | 0.880 | 50 |" in block
    assert "| 200 | 1 | 0.885 | 0.890 | 200 |" in block
    assert "stopped after 3 of its 6 paired points" in block
