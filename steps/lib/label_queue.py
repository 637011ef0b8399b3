"""What to label next: recent tweets ranked by how much the team's verdict on each would teach `adapt`.

A verdict teaches most where the model is least sure, where two models disagree, and where nothing
like the tweet has been labelled yet (docs/design.md, "What to label next"). Each tweet gets:

- `closeness`: 1 at the threshold, 0 at the far end of the score's range on its side (uncertainty
  sampling: the champion's decision on this tweet could go either way);
- `disagreement`: |champion's P(negative) - challenger's| (query by committee with the two models the
  team already has; 0 without a challenger);
- `novelty`: 1 - the highest cosine similarity of its TF-IDF vector (normalised text, word 1-2 grams)
  to any tweet already labelled or already queued (a verdict on a near-copy teaches nothing new).

The queue is picked greedily: `priority = novelty x informativeness`, where informativeness is
`closeness`, or the mean of `closeness` and `disagreement` when a challenger scored the tweets. Each
pick counts as labelled for the picks after it, so ten copies of one tweet fill one place, not ten.
Ties go to the earlier row: the same input gives the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from pyfunc.normalize import normalize_batch
from steps.lib.tracking import StepError

QUEUE_COLUMNS = (
    "rank",
    "text",
    "label",
    "proba_negative",
    "threshold",
    "model_version",
    "challenger_proba_negative",
    "closeness",
    "disagreement",
    "novelty",
    "priority",
)


@dataclass(frozen=True)
class Candidates:
    """Recent tweets and what the models said of them, aligned row by row."""

    texts: list[str]
    champion_proba: np.ndarray
    threshold: float
    challenger_proba: np.ndarray | None = None
    # The champion as the served model names itself (`family:run_id`): a verdict given on a queued tweet
    # records the model and threshold that scored it, as a verdict on the Predict tab does.
    model_version: str = ""


def closeness(proba: np.ndarray, threshold: float) -> np.ndarray:
    """1 at the threshold, falling linearly to 0 at 0 or 1, whichever end lies on the tweet's side.

    Scaled per side so a threshold of 1/3 does not make every confident "not negative" look uncertain.
    """
    proba = np.asarray(proba, dtype=float)
    span = np.where(proba >= threshold, 1.0 - threshold, threshold)
    return np.clip(1.0 - np.abs(proba - threshold) / np.maximum(span, 1e-12), 0.0, 1.0)


def disagreement(champion: np.ndarray, challenger: np.ndarray | None) -> np.ndarray:
    """How far the two models' scores lie apart: 0 everywhere without a challenger."""
    if challenger is None:
        return np.zeros(len(champion))
    return np.abs(np.asarray(champion, dtype=float) - np.asarray(challenger, dtype=float))


def tfidf_vectors(texts: list[str], labelled: list[str]) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """TF-IDF rows (L2-normalised, so a dot product is the cosine) of the candidates and the labelled tweets.

    Fitted on both together, on the served normalisation, so `@united` and `@delta` are one token and
    a URL does not make two copies of a complaint look different. Texts with no word at all get a zero row.
    """
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    normalised = normalize_batch([*texts, *labelled])
    try:
        matrix = vectorizer.fit_transform(normalised).tocsr()
    except ValueError:  # no word in any text: nothing to compare, every tweet is new
        matrix = sparse.csr_matrix((len(normalised), 1))
    return matrix[: len(texts)], matrix[len(texts) :]


def informativeness(candidates: Candidates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closeness, disagreement and their combination (closeness alone without a challenger)."""
    near = closeness(candidates.champion_proba, candidates.threshold)
    apart = disagreement(candidates.champion_proba, candidates.challenger_proba)
    combined = near if candidates.challenger_proba is None else (near + apart) / 2.0
    return near, apart, combined


def check(candidates: Candidates, size: int) -> None:
    """Refuse what cannot be ranked, in one line naming the problem."""
    if not candidates.texts:
        raise StepError("no recent tweet to rank: the input holds no tweet with a text")
    if size < 1:
        raise StepError(f"size must be >= 1 tweet, got {size}")
    if not 0.0 < candidates.threshold < 1.0:
        raise StepError(f"threshold must lie strictly between 0 and 1, got {candidates.threshold}")
    lengths = {len(candidates.texts), len(candidates.champion_proba)}
    if candidates.challenger_proba is not None:
        lengths.add(len(candidates.challenger_proba))
    if len(lengths) > 1:
        raise StepError(f"texts and scores differ in length ({sorted(lengths)})")


def rank_queue(candidates: Candidates, labelled: list[str], size: int) -> pd.DataFrame:
    """The `size` most informative tweets, best first (fewer when fewer were given).

    Args:
        candidates: recent tweets with the champion's P(negative), its threshold and, if any, the challenger's.
        labelled: texts the team has already given a verdict on.
        size: how many to queue.

    Returns:
        `QUEUE_COLUMNS`: rank (1 = label first), text, an empty `label` for the verdict (1 = the team
        must answer, 0 = it need not; the file then feeds `adapt -P verdicts=`), the champion's score,
        threshold and version, the challenger's score, the three parts of the priority, and the
        priority at the moment the tweet was picked.

    Raises:
        StepError: no tweet, a size below 1, a threshold outside (0, 1), or misaligned scores.
    """
    check(candidates, size)
    near, apart, worth = informativeness(candidates)
    vectors, known = tfidf_vectors(candidates.texts, labelled)
    nearest = np.zeros(len(candidates.texts))
    if known.shape[0]:
        nearest = np.asarray(cosine_similarity(vectors, known, dense_output=False).max(axis=1).todense()).ravel()
    picked, novelty_at_pick, priority_at_pick = [], [], []
    available = np.ones(len(candidates.texts), dtype=bool)
    for _ in range(min(size, len(candidates.texts))):
        novelty = np.clip(1.0 - nearest, 0.0, 1.0)
        priority = np.where(available, novelty * worth, -np.inf)
        best = int(np.argmax(priority))  # the first of equals: deterministic
        picked.append(best)
        novelty_at_pick.append(novelty[best])
        priority_at_pick.append(priority[best])
        available[best] = False
        nearest = np.maximum(nearest, cosine_similarity(vectors, vectors[best]).ravel())
    challenger = candidates.challenger_proba
    challenger_at_pick = np.asarray(challenger, dtype=float)[picked] if challenger is not None else np.nan
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(picked) + 1),
            "text": [candidates.texts[index] for index in picked],
            "label": "",
            "proba_negative": np.asarray(candidates.champion_proba, dtype=float)[picked],
            "threshold": candidates.threshold,
            "model_version": candidates.model_version,
            "challenger_proba_negative": challenger_at_pick,
            "closeness": near[picked],
            "disagreement": apart[picked],
            "novelty": novelty_at_pick,
            "priority": priority_at_pick,
        },
        columns=list(QUEUE_COLUMNS),
    )
