"""Draw real tweets to label under docs/labelling.md, stratified, in 500-tweet batches for the two passes.

Output: `<out>/sample.csv` (id, source, row, sentiment, addressed, stratum, text) and
`<out>/batches/batch_<k>.csv` (id, text), the files the annotators receive. Each draw leaves out every
tweet of the earlier ones. Draws 1-3 are stratified samples; draw 4 takes every tweet left that a
pattern finds for the guide's hard cases (praise made of negative words, problems resolved and
thanked for, sarcasm): the pattern only chooses what to label, the annotators decide the label.
Draw 5 widens that pattern (capped for Sentiment140, whose matches mostly name no company) and
tops it up with a stratified sample of brand-addressed tweets, where draw 4 left the misses.
`python scripts/sample_for_labelling.py --draw 1 --out labels/draw1` reproduces `labels/draw1/sample.csv`
byte for byte (and likewise each later draw, given the earlier ones).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import pandas as pd

from steps.lib.datasets import load_embedded, repair_text

REPO = Path(__file__).resolve().parents[1]
# Quotas per stratum: source | corpus sentiment | whether a handle is addressed.
DRAWS = {
    1: {
        "seed": 20261206,
        "first_id": 0,
        "quota": {
            "embedded_airline|negative|at": 650,
            "embedded_airline|neutral|at": 450,
            "embedded_airline|positive|at": 350,
            "embedded_other_brands|negative|at": 400,
            "embedded_other_brands|negative|noat": 250,
            "embedded_other_brands|neutral|at": 300,
            "embedded_other_brands|neutral|noat": 200,
            "embedded_other_brands|positive|at": 200,
            "embedded_other_brands|positive|noat": 150,
            "sentiment140_negative|negative|at": 300,
            "sentiment140_negative|negative|noat": 300,
            "sentiment140_positive|positive|at": 200,
            "sentiment140_positive|positive|noat": 250,
        },
    },
    2: {  # weighted to airline and brand-addressed tweets, where draw 1 showed the decision is hardest
        "seed": 20261207,
        "first_id": 4000,
        "quota": {
            "embedded_airline|negative|at": 1000,
            "embedded_airline|neutral|at": 900,
            "embedded_airline|positive|at": 500,
            "embedded_other_brands|negative|at": 500,
            "embedded_other_brands|negative|noat": 200,
            "embedded_other_brands|neutral|at": 300,
            "sentiment140_negative|negative|at": 300,
            "sentiment140_negative|negative|noat": 200,
            "sentiment140_positive|positive|at": 100,
        },
    },
    3: {  # added to the training split only, as draw 2's strata: validation and test stay as they were
        "seed": 20261208,
        "first_id": 8000,
        "quota": {
            "embedded_airline|negative|at": 1000,
            "embedded_airline|neutral|at": 700,
            "embedded_airline|positive|at": 400,
            "embedded_other_brands|negative|at": 500,
            "embedded_other_brands|negative|noat": 300,
            "embedded_other_brands|neutral|at": 300,
            "embedded_other_brands|positive|at": 200,
            "sentiment140_negative|negative|at": 300,
            "sentiment140_negative|negative|noat": 200,
            "sentiment140_positive|positive|at": 100,
        },
    },
    4: {  # every tweet left that shows a hard case of the guide; added to the training split only
        "seed": 20261209,
        "first_id": 12000,
        "match": (
            r"\b(no|not|never|nothing|without|zero)\b.{0,25}\b(problems?|issues?|complain\w*|bad|wrong|delays?|hassle"
            r"|worr\w*|disappoint\w*)\b"
            r"|\b(thanks?|thank you|thx|appreciate\w*)\b.{0,60}\b(finally|fixed|sorted|resolved|found|arrived|rebooked"
            r"|refunded|took care)\b"
            r"|\b(finally|fixed|sorted|resolved|found)\b.{0,60}\b(thanks?|thank you|thx)\b"
            r"|\b(great|love|awesome|fantastic|thanks|perfect|nice|wonderful|brilliant)\b.{0,40}\b(delay\w*|cancel\w*"
            r"|lost|stuck|on hold|late|waiting)\b"
        ),
    },
    5: {  # training only: the hard-case pattern widened, with a stratified top-up where the misses are
        "seed": 20261210,
        "first_id": 13000,
        "match": (
            r"\bthanks? (a lot|for nothing|for (making|ruining|losing|leaving|the (wait|delay|hold)))"
            r"|\blove (how|that|it when)\b"
            r"|\b(way to go|good job|great job|nice job|well done|nice work|great work|bravo)\b"
            r"|\bbest \w+ ever\b|#not\b"
            r"|#fail|#sarcasm|\bas (always|usual)\b|\bjust what i (needed|wanted)\b|\boh (great|good|joy)\b"
            r"|\bwhat a (great|wonderful|fantastic)\b"
            r"|\b(back up|working again|works now|all set|problem solved|issue solved"
            r"|taken care of|got it fixed|fixed it|sorted it|sorted out|resolved)\b"
            r"|\bthanks? (so much )?for (the|your) (help|quick|fast|prompt|reply|response|assistance|support)\b"
            r"|\b(appreciate|appreciated) (the|your) (help|quick|fast|prompt|reply|response|assistance)\b"
            r"|\b(couldn'?t|could not|can'?t|cannot) (have )?(ask|asked|beat|complain|fault)\b"
            r"|\bno (complaints|regrets|worries|issues|problems)\b|\bnot (bad|too bad|disappointed)\b"
            r"|\bnever (disappoint\w*|fails?|lets? me down)\b|\bwithout a (hitch|problem|hiccup)\b"
            r"|\b(hassle|stress|trouble)[ -]free\b|\bdidn'?t (disappoint|mind)\b"
        ),
        # Sentiment140's matches are mostly mood that names no company: a sample of them is enough
        "match_cap": {"sentiment140_negative": 150, "sentiment140_positive": 150},
        "quota": {
            "embedded_airline|negative|at": 700,
            "embedded_airline|neutral|at": 200,
            "embedded_airline|positive|at": 150,
            "embedded_other_brands|negative|at": 200,
            "embedded_other_brands|neutral|at": 100,
            "embedded_other_brands|positive|at": 50,
        },
    },
}
BATCH_ROWS = 500


def dedup_key(texts: pd.Series) -> pd.Series:
    """Lower case, links and runs of space removed: the same tweet posted twice is drawn once."""
    return texts.str.lower().str.replace(r"https?://\S+|\s+", " ", regex=True).str.strip()


def candidates(sentiment140_dir: Path) -> pd.DataFrame:
    """Every repaired, distinct tweet of both corpora with its provenance and stratum."""
    embedded = load_embedded()
    embedded["row"] = range(len(embedded))
    embedded["source"] = embedded["source"].str.replace("crowdflower_", "embedded_")
    parts = [embedded[["source", "row", "sentiment", "text"]]]
    for name in ("negative", "positive"):
        lines = (sentiment140_dir / f"{name}.txt").read_text(encoding="latin-1").splitlines()
        parts.append(
            pd.DataFrame({"source": f"sentiment140_{name}", "row": range(len(lines)), "sentiment": name, "text": lines})
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["text"] = frame["text"].astype(str).map(repair_text)
    frame = frame[frame["text"].str.len() >= 3]
    frame = frame[~dedup_key(frame["text"]).duplicated()].copy()
    frame["addressed"] = frame["text"].str.contains(r"@\w+")
    frame["stratum"] = (
        frame["source"] + "|" + frame["sentiment"] + "|" + frame["addressed"].map({True: "at", False: "noat"})
    )
    return frame


@click.command()
@click.option("--draw", type=click.Choice([str(draw) for draw in DRAWS]), required=True, help="which draw to reproduce")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="folder for sample.csv and batches/")
@click.option(
    "--sentiment140-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=REPO.parent / "shared" / "data" / "sentiment140_100k",
    show_default=True,
    help="the folder holding negative.txt and positive.txt",
)
@click.option(
    "--labels-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=REPO / "labels",
    show_default=True,
    help="where the earlier draws' samples are (draw<k>/sample.csv), left out of this draw",
)
def main(draw: str, out: Path, sentiment140_dir: Path, labels_dir: Path) -> None:
    """Write the draw's sample and its batches, and print the sample's digest."""
    spec = DRAWS[int(draw)]
    frame = candidates(sentiment140_dir)
    for earlier_draw in range(1, int(draw)):
        earlier = pd.read_csv(labels_dir / f"draw{earlier_draw}" / "sample.csv")
        frame = frame[~dedup_key(frame["text"]).isin(set(dedup_key(earlier["text"])))]
        frame = frame[~frame.set_index(["source", "row"]).index.isin(earlier.set_index(["source", "row"]).index)]
    parts = []
    if "match" in spec:  # targeted: every candidate the pattern finds (negated praise, resolved, sarcasm)
        matched = frame[frame["text"].str.contains(spec["match"], case=False, regex=True)]
        for source, cap in spec.get("match_cap", {}).items():
            of_source = matched["source"] == source
            kept = matched[of_source].sample(min(cap, int(of_source.sum())), random_state=spec["seed"])
            matched = pd.concat([matched[~of_source], kept])
        parts.append(matched)
        frame = frame.drop(matched.index)
    for stratum, n in spec.get("quota", {}).items():
        parts.append(frame[frame["stratum"] == stratum].sample(n, random_state=spec["seed"]))
    picked = pd.concat(parts)
    picked = picked.sample(frac=1, random_state=spec["seed"]).reset_index(drop=True)
    picked["id"] = [f"t{spec['first_id'] + index:04d}" for index in range(len(picked))]
    (out / "batches").mkdir(parents=True, exist_ok=True)
    sample = out / "sample.csv"
    picked[["id", "source", "row", "sentiment", "addressed", "stratum", "text"]].to_csv(sample, index=False)
    for batch, start in enumerate(range(0, len(picked), BATCH_ROWS)):
        picked.iloc[start : start + BATCH_ROWS][["id", "text"]].to_csv(
            out / "batches" / f"batch_{batch}.csv", index=False
        )
    print(f"{len(picked):,} tweets in {sample}, sha256 {hashlib.sha256(sample.read_bytes()).hexdigest()[:12]}")


if __name__ == "__main__":
    main()
