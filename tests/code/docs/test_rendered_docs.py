"""The docs' rendered blocks are what scripts/render_docs.py makes of the result files, and its --check notices.

Fast and offline: the renderer reads files of the repository only (no tracking store, no server).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[3]


def load_renderer():
    spec = importlib.util.spec_from_file_location("render_docs", REPO / "scripts" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


render_docs = load_renderer()
BLOCKS = render_docs.blocks(REPO)


def test_the_docs_hold_rendered_blocks_and_every_name_is_known() -> None:
    assert BLOCKS, "no rendered block in README.md or docs/*.md"
    unknown = [f"{doc.relative_to(REPO)}: {name}" for doc, name in BLOCKS if name not in render_docs.RENDERERS]
    assert not unknown, f"blocks without a renderer in scripts/render_docs.py: {unknown}"


@pytest.mark.parametrize(("doc", "name"), BLOCKS, ids=[f"{d.relative_to(REPO)}:{n}" for d, n in BLOCKS])
def test_rendered_block_equals_what_its_files_give(doc: Path, name: str) -> None:
    text = doc.read_text(encoding="utf-8")
    bodies = [m["body"] for m in render_docs.BLOCK.finditer(text) if m["name"] == name]
    expected = render_docs.rendered_body(name, REPO)
    sources = ", ".join(render_docs.RENDERERS[name].sources)
    for body in bodies:
        assert body == expected, (
            f"{doc.relative_to(REPO)}: block {name} differs from what {sources} give; "
            "run `python scripts/render_docs.py` (never edit a rendered block by hand)"
        )


def copy_docs(root: Path) -> None:
    """The documents and every file a renderer reads, in a scratch repository root."""
    for doc, _ in BLOCKS:
        target = root / doc.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(doc, target)
    for renderer in render_docs.RENDERERS.values():
        for source in renderer.sources:
            target = root / source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, target)


def test_check_names_the_blocks_a_changed_result_file_makes_stale(tmp_path: Path) -> None:
    copy_docs(tmp_path)
    runner = CliRunner()
    clean = runner.invoke(render_docs.main, ["--check", "--root", str(tmp_path)])
    assert clean.exit_code == 0, clean.output

    benchmark = tmp_path / "docs" / "serve_benchmark.json"
    figures = json.loads(benchmark.read_text())
    figures["champion"][0]["p50_ms"] = 99.9  # one tweet at concurrency 1: the headline figure
    benchmark.write_text(json.dumps(figures))

    stale = runner.invoke(render_docs.main, ["--check", "--root", str(tmp_path)])
    assert stale.exit_code == 1, stale.output
    assert "README.md: block serving_headline (from docs/serve_benchmark.json)" in stale.output
    assert "docs/serving.md: block serve_benchmark_champion" in stale.output
    assert "main_job" not in stale.output  # blocks of other files stay fresh
    before = (tmp_path / "README.md").read_text()

    rewritten = runner.invoke(render_docs.main, ["--root", str(tmp_path)])
    assert rewritten.exit_code == 0, rewritten.output
    assert "99.9 ms" in (tmp_path / "README.md").read_text() and "99.9 ms" not in before
    assert runner.invoke(render_docs.main, ["--check", "--root", str(tmp_path)]).exit_code == 0


def test_a_hand_edit_inside_a_block_is_stale(tmp_path: Path) -> None:
    copy_docs(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("tweets/s**", "tweets/s (hand-edited)**", 1))
    result = CliRunner().invoke(render_docs.main, ["--check", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "README.md: block serving_headline" in result.output
