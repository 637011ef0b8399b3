"""The benchmark's naive reference, pinned in docs/design.md ("Benchmarks") so that it is no strawman.

What a typical hand-written service does with the same fine-tuned weights: plain transformers +
torch, `torch.inference_mode`, threads = cores, the same tokenizer and max length, one tweet per
forward pass, a minimal FastAPI app under uvicorn with one worker. It is started by
`bench/serve_benchmark.py` (`uvicorn --app-dir bench naive_server:app`) with
NAIVE_MODEL_DIR (a `save_pretrained` directory including the tokenizer) and NAIVE_MAX_LENGTH.
"""

from __future__ import annotations

import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

MODEL_DIR = os.environ["NAIVE_MODEL_DIR"]
MAX_LENGTH = int(os.environ.get("NAIVE_MAX_LENGTH", "128"))
NEGATIVE = 1  # label id of the negative class (1 = negative)

torch.set_num_threads(os.cpu_count() or 1)
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
model = AutoModelForSequenceClassification.from_pretrained(MODEL_DIR).eval()
app = FastAPI()


class PredictRequest(BaseModel):
    texts: list[str]


@app.get("/ping")
def ping() -> dict:
    return {}


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    """One forward pass per tweet, as a loop over the request's texts."""
    predictions = []
    with torch.inference_mode():
        for text in request.texts:
            inputs = tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            proba = float(model(**inputs).logits.softmax(dim=-1)[0, NEGATIVE])
            predictions.append({"label": "negative" if proba >= 0.5 else "not_negative", "proba_negative": proba})
    return {"predictions": predictions}
