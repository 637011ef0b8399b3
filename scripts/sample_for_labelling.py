"""Draw the tweets to label: stratified by source, topic, sentiment and whether a handle is addressed."""
import hashlib, sys
from pathlib import Path
import pandas as pd
sys.path.insert(0, ".")
from steps.lib.datasets import load_embedded, repair_text

SEED = 20261206
emb = load_embedded()
emb["row"] = range(len(emb))
emb["source"] = emb["source"].str.replace("crowdflower_", "embedded_")
rows = []
for name in ("negative", "positive"):
    lines = Path(f"/work/shared/data/sentiment140_100k/{name}.txt").read_text(encoding="latin-1").splitlines()
    rows.append(pd.DataFrame({"text": lines, "sentiment": name, "source": f"sentiment140_{name}", "row": range(len(lines))}))
s140 = pd.concat(rows)
frame = pd.concat([emb[["source", "row", "sentiment", "text"]], s140[["source", "row", "sentiment", "text"]]], ignore_index=True)
frame["text"] = frame["text"].astype(str).map(repair_text)
frame = frame[frame["text"].str.len() >= 3]
key = frame["text"].str.lower().str.replace(r"https?://\S+|\s+", " ", regex=True).str.strip()
frame = frame[~key.duplicated()].copy()
frame["addressed"] = frame["text"].str.contains(r"@\w+")
frame["stratum"] = frame["source"] + "|" + frame["sentiment"] + "|" + frame["addressed"].map({True: "at", False: "noat"})
quota = {
    "embedded_airline|negative|at": 650, "embedded_airline|neutral|at": 450, "embedded_airline|positive|at": 350,
    "embedded_other_brands|negative|at": 400, "embedded_other_brands|negative|noat": 250,
    "embedded_other_brands|neutral|at": 300, "embedded_other_brands|neutral|noat": 200,
    "embedded_other_brands|positive|at": 200, "embedded_other_brands|positive|noat": 150,
    "sentiment140_negative|negative|at": 300, "sentiment140_negative|negative|noat": 300,
    "sentiment140_positive|positive|at": 200, "sentiment140_positive|positive|noat": 250,
}
print(frame["stratum"].value_counts().to_string())
picked = pd.concat([frame[frame["stratum"] == s].sample(n, random_state=SEED) for s, n in quota.items()])
picked = picked.sample(frac=1, random_state=SEED).reset_index(drop=True)
picked["id"] = [f"t{i:04d}" for i in range(len(picked))]
picked[["id", "source", "row", "sentiment", "addressed", "stratum", "text"]].to_csv("labels/sample.csv", index=False)
for b in range(8):
    part = picked.iloc[b * 500:(b + 1) * 500]
    part[["id", "text"]].to_csv(f"labels/batches/batch_{b}.csv", index=False)
print(len(picked), "tweets;", hashlib.sha256(Path("labels/sample.csv").read_bytes()).hexdigest()[:12])
