"""Behavioural testing in the spirit of CheckList (Ribeiro et al., ACL 2020): expand, run, score.

The suite itself is data (`behaviour_suite.yaml`): templates, fillers and expectations. This module
only knows the three test types (MFT, INV, DIR) and two perturbations (typo, elongation), so a new
test is a YAML entry, never new code. Predictions come through the model's pyfunc, the code path
`mlflow models serve` runs, so the suite tests what clients get.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

SUITE_PATH = Path(__file__).resolve().parents[1] / "behaviour_suite.yaml"
TEST_TYPES = ("MFT", "INV", "DIR")
MFT_EXPECTATIONS = ("negative", "not_negative")
DIR_EXPECTATIONS = ("not_lower", "not_higher")
PERTURBATIONS = ("typo", "elongate")
CASE_COLUMNS = ["test", "capability", "type", "text", "variant", "expect", "tolerance"]
_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"(?<![@#\w/.:])[A-Za-z]+(?![\w/.:])")
_VOWEL = re.compile(r"[aeiou]", re.IGNORECASE)

Predict = Callable[[list[str]], pd.DataFrame]


class SuiteError(ValueError):
    """The suite file is malformed: names the test and the problem."""


def load_suite(path: str | Path = SUITE_PATH) -> dict:
    """Read and check the suite file; a mistake names the test it is in.

    Every test is checked before any case is generated, so a broken entry fails at once, not halfway
    through scoring.

    Args:
        path: the suite's YAML file (default: `steps/behaviour_suite.yaml`).

    Returns:
        The suite, `fillers` and `defaults` defaulted to empty, with `digest` (12 hex digits of the
        file's SHA-256) added so results can name the suite they came from.

    Raises:
        SuiteError: the file is missing, holds no non-empty `tests` list, or a test is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"behaviour suite not found: {path}")
    suite = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(suite, dict) or not suite.get("tests"):
        raise SuiteError(f"{path}: expected a mapping with `fillers` and a non-empty `tests` list")
    suite.setdefault("fillers", {})
    suite.setdefault("defaults", {})
    suite["digest"] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    for test in suite["tests"]:
        _check_test(test, suite["fillers"])
    return suite


def _check_test(test: dict, fillers: dict) -> None:
    name = test.get("name", "<unnamed>")
    problems = []
    if test.get("type") not in TEST_TYPES:
        problems.append(f"type must be one of {', '.join(TEST_TYPES)}")
    if not test.get("capability"):
        problems.append("capability is missing")
    if test.get("type") == "MFT" and test.get("expect") not in MFT_EXPECTATIONS:
        problems.append(f"an MFT needs expect: {' or '.join(MFT_EXPECTATIONS)}")
    if test.get("type") == "DIR" and test.get("expect") not in DIR_EXPECTATIONS:
        problems.append(f"a DIR test needs expect: {' or '.join(DIR_EXPECTATIONS)}")
    if test.get("type") in ("INV", "DIR") and not (test.get("pairs") or test.get("vary") or test.get("perturb")):
        problems.append("an INV/DIR test needs pairs, or templates with vary or perturb")
    if test.get("type") == "MFT" and not test.get("templates"):
        problems.append("an MFT needs templates")
    if test.get("perturb") and test["perturb"] not in PERTURBATIONS:
        problems.append(f"perturb must be one of {', '.join(PERTURBATIONS)}")
    templates = list(test.get("templates") or []) + [t for pair in test.get("pairs") or [] for t in pair]
    if any(len(pair) != 2 for pair in test.get("pairs") or []):
        problems.append("each pair must be [original, variant]")
    unknown = {slot for template in templates for slot in _SLOT.findall(template)} - set(fillers)
    if unknown:
        problems.append(f"unknown filler(s) {', '.join(sorted(unknown))}")
    if test.get("vary") and not all(f"{{{test['vary']}}}" in template for template in test.get("templates") or []):
        problems.append(f"every template must contain the varied slot {{{test.get('vary')}}}")
    if problems:
        raise SuiteError(f"test {name}: {'; '.join(problems)}")


def fill(template: str, values: dict[str, str]) -> str:
    return _SLOT.sub(lambda match: values[match.group(1)], template)


def _assignments(templates: list[str], fillers: dict, rng: random.Random) -> list[dict[str, str]]:
    """Every combination of the slots these templates use, in a seeded random order."""
    slots = sorted({slot for template in templates for slot in _SLOT.findall(template)})
    combos = [dict(zip(slots, values, strict=True)) for values in itertools.product(*(fillers[s] for s in slots))]
    rng.shuffle(combos)
    return combos


def typo(text: str, rng: random.Random) -> str:
    """Swap two different adjacent inner letters of one word (handles and URLs untouched).

    Args:
        text: the text to perturb.
        rng: the test's seeded generator, so a suite always makes the same typos.

    Returns:
        The text with one swap, or the text itself when no word has such a pair.
    """
    spots = [
        (match, at)
        for match in _WORD.finditer(text)
        for at in range(1, len(match.group(0)) - 2)
        if match.group(0)[at] != match.group(0)[at + 1]
    ]
    if not spots:
        return text
    match, at = rng.choice(spots)
    word = match.group(0)
    swapped = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    return text[: match.start()] + swapped + text[match.end() :]


def elongate(text: str, rng: random.Random) -> str:
    """Stretch the first vowel of one word, as in "soooo laaate" (handles and URLs untouched).

    Args:
        text: the text to perturb.
        rng: the test's seeded generator (which word, how long the stretch).

    Returns:
        The stretched text, or the text itself when no word has a vowel.
    """
    words = [m for m in _WORD.finditer(text) if _VOWEL.search(m.group(0))]
    if not words:
        return text
    match = rng.choice(words)
    word = match.group(0)
    vowel = _VOWEL.search(word)
    stretched = word[: vowel.end()] + vowel.group(0) * rng.randint(3, 5) + word[vowel.end() :]
    return text[: match.start()] + stretched + text[match.end() :]


_PERTURB = {"typo": typo, "elongate": elongate}


def _template_cases(test: dict, template: str, fillers: dict, rng: random.Random) -> list[tuple[str, str | None]]:
    """(text, variant) cases of one template, in a seeded random order."""
    cases = []
    for values in _assignments([template], fillers, rng):
        text = fill(template, values)
        if test["type"] == "MFT":
            cases.append((text, None))
        elif test.get("perturb"):
            variant = _PERTURB[test["perturb"]](text, rng)
            if variant != text:
                cases.append((text, variant))
        else:
            slot = test["vary"]
            others = [value for value in fillers[slot] if value != values[slot]]
            for other in rng.sample(others, min(test["variants"], len(others))):
                cases.append((text, fill(template, {**values, slot: other})))
    return cases


def _pair_cases(pair: list[str], fillers: dict, rng: random.Random) -> list[tuple[str, str | None]]:
    original, variant = pair
    return [(fill(original, values), fill(variant, values)) for values in _assignments(pair, fillers, rng)]


def _round_robin(groups: list[list], limit: int) -> list:
    """Take one case from each template in turn, so a template with many slots cannot crowd out the rest."""
    taken = []
    for batch in itertools.zip_longest(*groups):
        taken.extend(case for case in batch if case is not None)
        if len(taken) >= limit:
            break
    return taken[:limit]


def generate_cases(suite: dict) -> pd.DataFrame:
    """Expand every test of the suite into cases (deterministic for a given suite and seed).

    Each test draws from a generator seeded with the suite's `seed` and its own name, so adding or
    editing one test never changes the cases of another.

    Args:
        suite: as `load_suite` returns it.

    Returns:
        One row per case, columns `CASE_COLUMNS`, at most `max_cases` per test (taken from its
        templates in turn), duplicates dropped; `variant` is None for an MFT, and `expect` is
        `same_label` for a test that sets none (INV).
    """
    rows = []
    for raw in suite["tests"]:
        test = {**suite["defaults"], **raw}
        rng = random.Random(f"{suite.get('seed', 0)}:{test['name']}")
        if test.get("pairs"):
            groups = [_pair_cases(pair, suite["fillers"], rng) for pair in test["pairs"]]
        else:
            groups = [_template_cases(test, template, suite["fillers"], rng) for template in test["templates"]]
        seen = set()
        for text, variant in _round_robin(groups, int(test.get("max_cases", 10**9))):
            if (text, variant) in seen:
                continue
            seen.add((text, variant))
            expect = test.get("expect", "same_label")
            rows.append([test["name"], test["capability"], test["type"], text, variant, expect, test["tolerance"]])
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def _predict_unique(texts: list[str], predict: Predict) -> dict[str, tuple[str, float]]:
    """Score each distinct text once; the pyfunc answers label and proba_negative per row."""
    unique = list(dict.fromkeys(texts))
    output = predict(unique)
    return dict(zip(unique, zip(output["label"], output["proba_negative"].astype(float), strict=True), strict=True))


def _verdict(case: pd.Series) -> str:
    """Empty when the case passes, else why it failed."""
    if case["type"] == "MFT":
        return "" if case["label"] == case["expect"] else f"expected {case['expect']}, got {case['label']}"
    if case["type"] == "INV":
        same = case["label"] == case["variant_label"]
        return "" if same else f"label changed {case['label']} -> {case['variant_label']}"
    change = case["variant_proba_negative"] - case["proba_negative"]
    if case["expect"] == "not_lower" and change < -case["tolerance"]:
        return f"proba_negative fell by {-change:.3f} (tolerance {case['tolerance']})"
    if case["expect"] == "not_higher" and change > case["tolerance"]:
        return f"proba_negative rose by {change:.3f} (tolerance {case['tolerance']})"
    return ""


def run_suite(cases: pd.DataFrame, predict: Predict) -> pd.DataFrame:
    """Predict every text and variant, then judge each case; adds `passed` and `reason`.

    Args:
        cases: as `generate_cases` returns them.
        predict: texts -> the pyfunc's output (`label` and `proba_negative` per text); each distinct
            text is sent once.

    Returns:
        The cases with `label`, `proba_negative`, `variant_label`, `variant_proba_negative` (None
        without a variant), `reason` (empty when the case passed) and `passed`.
    """
    texts = cases["text"].tolist() + cases["variant"].dropna().tolist()
    scores = _predict_unique(texts, predict)
    results = cases.copy()
    results["label"] = [scores[text][0] for text in results["text"]]
    results["proba_negative"] = [scores[text][1] for text in results["text"]]
    results["variant_label"] = [scores[v][0] if isinstance(v, str) else None for v in results["variant"]]
    results["variant_proba_negative"] = [scores[v][1] if isinstance(v, str) else None for v in results["variant"]]
    results["reason"] = results.apply(_verdict, axis=1) if len(results) else []
    results["passed"] = results["reason"] == ""
    return results


def failure_rates(results: pd.DataFrame) -> dict[str, float]:
    """`behaviour_{capability}_failure_rate`, `behaviour_{type}_failure_rate`, overall rate and case count.

    Args:
        results: as `run_suite` returns them.

    Returns:
        The rates per capability and per test type (lower-cased), `behaviour_failure_rate` and
        `behaviour_cases`, as floats ready for `mlflow.log_metrics`.
    """
    failed = ~results["passed"]
    rates = {
        f"behaviour_{cap}_failure_rate": float(rate)
        for cap, rate in failed.groupby(results["capability"]).mean().items()
    }
    rates |= {
        f"behaviour_{kind.lower()}_failure_rate": float(rate)
        for kind, rate in failed.groupby(results["type"]).mean().items()
    }
    rates["behaviour_failure_rate"] = float(failed.mean())
    rates["behaviour_cases"] = float(len(results))
    return rates


def summarise_tests(results: pd.DataFrame) -> pd.DataFrame:
    """One row per test: capability, type, cases, failures, failure rate (the table a reader scans first).

    Args:
        results: as `run_suite` returns them.

    Returns:
        Columns `test`, `capability`, `type`, `cases`, `failures`, `failure_rate`, tests in suite order.
    """
    grouped = results.groupby(["test", "capability", "type"], sort=False)["passed"]
    summary = grouped.agg(cases="size", failures=lambda passed: int((~passed).sum())).reset_index()
    summary["failure_rate"] = summary["failures"] / summary["cases"]
    return summary
