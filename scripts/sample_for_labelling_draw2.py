"""A second draw of 4,000 tweets, none already drawn, weighted to airline tweets where the decision is hardest."""
import hashlib, sys
from pathlib import Path
import pandas as pd
sys.path.insert(0, ".")
from steps.lib.datasets import load_embedded, repair_text

SEED = 20261207
first = pd.read_csv("labels/draw1/sample.csv")
emb = load_embedded()
emb["row"] = range(len(emb))
emb["source"] = emb["source"].str.replace("crowdflower_", "embedded_")
rows = []
for name in ("negative", "positive"):
    lines = Path(f"/work/shared/data/sentiment140_100k/{name}.txt").read_text(encoding="latin-1").splitlines()
    rows.append(pd.DataFrame({"text": lines, "sentiment": name, "source": f"sentiment140_{name}", "row": range(len(lines))}))
frame = pd.concat([emb[["source", "row", "sentiment", "text"]], *[r[["source", "row", "sentiment", "text"]] for r in rows]], ignore_index=True)
frame["text"] = frame["text"].astype(str).map(repair_text)
frame = frame[frame["text"].str.len() >= 3]
key = frame["text"].str.lower().str.replace(r"https?://\S+|\s+", " ", regex=True).str.strip()
frame = frame[~key.duplicated()].copy()
first_key = first["text"].str.lower().str.replace(r"https?://\S+|\s+", " ", regex=True).str.strip()
frame = frame[~key[frame.index].isin(set(first_key))]
frame = frame[~frame.set_index(["source", "row"]).index.isin(first.set_index(["source", "row"]).index)]
frame["addressed"] = frame["text"].str.contains(r"@\w+")
frame["stratum"] = frame["source"] + "|" + frame["sentiment"] + "|" + frame["addressed"].map({True: "at", False: "noat"})
quota = {
    "embedded_airline|negative|at": 1000, "embedded_airline|neutral|at": 900, "embedded_airline|positive|at": 500,
    "embedded_other_brands|negative|at": 500, "embedded_other_brands|negative|noat": 200,
    "embedded_other_brands|neutral|at": 300,
    "sentiment140_negative|negative|at": 300, "sentiment140_negative|negative|noat": 200,
    "sentiment140_positive|positive|at": 100,
}
picked = pd.concat([frame[frame["stratum"] == s].sample(n, random_state=SEED) for s, n in quota.items()])
picked = picked.sample(frac=1, random_state=SEED).reset_index(drop=True)
picked["id"] = [f"t{4000 + i:04d}" for i in range(len(picked))]
picked[["id", "source", "row", "sentiment", "addressed", "stratum", "text"]].to_csv("labels/draw2/sample.csv", index=False)
for b in range(8):
    picked.iloc[b * 500:(b + 1) * 500][["id", "text"]].to_csv(f"labels/draw2/batches/batch_{b}.csv", index=False)
print(len(picked), hashlib.sha256(Path("labels/draw2/sample.csv").read_bytes()).hexdigest()[:12])
