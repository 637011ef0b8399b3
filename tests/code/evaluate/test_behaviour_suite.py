"""The behavioural suite's code: case shapes, perturbations, malformed suites and verdicts (its data: tests/data)."""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from steps.lib.behaviour import (
    SuiteError,
    elongate,
    failure_rates,
    generate_cases,
    load_suite,
    run_suite,
    summarise_tests,
    typo,
)


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return generate_cases(load_suite())


def test_case_shapes_follow_their_test_type(cases):
    mft, paired = cases[cases["type"] == "MFT"], cases[cases["type"] != "MFT"]
    assert mft["variant"].isna().all()
    assert set(mft["expect"]) == {"negative", "not_negative"}
    assert paired["variant"].notna().all()
    assert (paired["variant"] != paired["text"]).all()
    assert set(cases.loc[cases["type"] == "DIR", "expect"]) == {"not_lower", "not_higher"}
    assert not cases["text"].str.contains(r"\{\w+\}").any()  # every slot filled


def test_name_invariance_varies_airlines_cities_and_people(cases):
    names = cases[cases["capability"] == "names"]
    assert set(names["test"]) == {
        "airline_name_does_not_matter",
        "city_name_does_not_matter",
        "person_name_does_not_matter",
    }
    airline = names[names["test"] == "airline_name_does_not_matter"].iloc[0]
    assert airline["text"].split()[0] != airline["variant"].split()[0]  # the @handle changed
    assert airline["text"].split()[1:] == airline["variant"].split()[1:]  # nothing else did


def test_typo_swaps_two_letters_of_one_word_and_spares_handles_and_urls():
    rng = random.Random(0)
    text = "@united my luggage is missing http://t.co/abcdef"
    for _ in range(20):
        changed = typo(text, rng)
        before, after = text.split(), changed.split()
        differing = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(differing) == 1
        original, swapped = differing[0]
        assert sorted(original) == sorted(swapped) and original not in ("@united", "http://t.co/abcdef")


def test_elongation_stretches_one_vowel():
    for seed in range(10):
        changed = elongate("@Delta so slow", random.Random(seed))
        assert re.search(r"([aeiou])\1{3,}", changed)
        assert re.sub(r"([aeiou])\1{3,}", r"\1", changed) == "@Delta so slow"


def test_a_malformed_suite_names_the_test_and_problem(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(
        "fillers: {airline: ['@united']}\n"
        "tests:\n  - {name: broken, capability: negation, type: MFT, expect: negative,\n"
        "      templates: ['{airline} {city}']}\n"
    )
    with pytest.raises(SuiteError, match="test broken: unknown filler"):
        load_suite(path)
    path.write_text("tests:\n  - {name: vague, capability: x, type: DIR, expect: up, pairs: [['a', 'b']]}\n")
    with pytest.raises(SuiteError, match="test vague: a DIR test needs expect"):
        load_suite(path)


def keyword_model(texts: list[str]) -> pd.DataFrame:
    """A stand-in pyfunc: negative iff the text says 'late'; +0.2 for each '!' (to exercise DIR)."""
    proba = [min(1.0, (0.8 if "late" in text else 0.2) + 0.2 * text.count("!")) for text in texts]
    return pd.DataFrame({"label": ["negative" if p >= 0.5 else "not_negative" for p in proba], "proba_negative": proba})


def test_verdicts_per_test_type():
    rows = [
        ("m1", "cap_a", "MFT", "flight late", None, "negative"),  # pass
        ("m2", "cap_a", "MFT", "flight fine", None, "negative"),  # fail
        ("i1", "cap_b", "INV", "late again", "late agian", "same_label"),  # pass
        ("i2", "cap_b", "INV", "on time", "on tiem, late", "same_label"),  # fail: label flips
        ("d1", "cap_c", "DIR", "on time!", "on time", "not_lower"),  # fail: falls by 0.2
        ("d2", "cap_c", "DIR", "on time", "on time!", "not_higher"),  # fail: rises by 0.2
        ("d3", "cap_c", "DIR", "on time", "on time!", "not_lower"),  # pass
    ]
    cases = pd.DataFrame(
        [[*row, 0.05] for row in rows], columns=["test", "capability", "type", "text", "variant", "expect", "tolerance"]
    )
    results = run_suite(cases, keyword_model)
    assert results["passed"].tolist() == [True, False, True, False, False, False, True]
    assert results.loc[3, "reason"] == "label changed not_negative -> negative"
    assert results.loc[4, "reason"].startswith("proba_negative fell by 0.200")
    rates = failure_rates(results)
    assert rates["behaviour_cap_a_failure_rate"] == 0.5
    assert rates["behaviour_cap_c_failure_rate"] == pytest.approx(2 / 3)
    assert rates["behaviour_mft_failure_rate"] == 0.5 and rates["behaviour_inv_failure_rate"] == 0.5
    assert rates["behaviour_failure_rate"] == pytest.approx(4 / 7)
    assert rates["behaviour_cases"] == 7
    summary = summarise_tests(results)
    assert summary.columns.tolist() == ["test", "capability", "type", "cases", "failures", "failure_rate"]
    assert summary["failures"].sum() == 4
