"""bench/adaptation.py's simulated teams and the page it renders from its results file."""

from __future__ import annotations

import json

from bench import adaptation
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
