"""Ids that :func:`icegan.protocol.subject_key` makes equal but that name distinct clips or subjects of one run
(``EP01_1`` and ``EP01_01`` of one subject; subjects ``sub1`` and ``sub01``): ``icegan compare`` and ``icegan
ensemble`` keep them apart (only a key that one id of each run has is respelt), and a subject bootstrap's order is
``sorted``'s for zero-padded ids whatever their case, prefixes or separators."""
import json
import random

import numpy as np
import pandas as pd

from icegan.cli import main
from icegan.ensemble import ensemble_runs
from icegan.protocol import respelt_like, run_loso
from icegan.significance import subject_order


def _padding_twins(subjects=("sub01", "sub02", "sub03"), clips=("EP01_1", "EP01_01", "EP02")) -> pd.DataFrame:
    """CASME II-like samples: each subject holds ``clips`` (EP01_1 and EP01_01: two clips differing only by zero
    padding), one label per clip."""
    return pd.DataFrame([{"dataset": "casme2", "subject": f"casme2/{s}", "clip": c, "label": k}
                         for s in subjects for k, c in enumerate(clips)])


def _fixed_probs(n: int):
    """Fold function: fixed pseudo-random probabilities of each of the ``n`` samples (by its row)."""
    z = np.random.default_rng(3).normal(size=(n, 3)) * 2
    e = np.exp(z - z.max(1, keepdims=True))
    return lambda fold: (e / e.sum(1, keepdims=True))[fold.test_idx]


def test_two_identical_runs_with_clips_differing_by_padding_ensemble_and_compare(tmp_path, capsys):
    """Both were refused (ensemble: "differs ... in 'clip'", compare: "cover different clips or labels"): EP01_1 was
    respelt EP01_01 against an identical run."""
    samples = _padding_twins()
    for name in ("a", "b"):
        run_loso(samples, _fixed_probs(len(samples)), tmp_path / name, progress=False)
    metrics = ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "ens")
    pred = pd.read_csv(tmp_path / "ens" / "predictions.csv", dtype={"subject": str, "clip": str})
    assert sorted(zip(pred["subject"], pred["clip"])) == sorted(zip(samples["subject"], samples["clip"]))
    alone = pd.read_csv(tmp_path / "a" / "predictions.csv", dtype={"subject": str, "clip": str})
    assert list(pred["y_pred"]) == list(alone.sort_values(["fold", "subject", "clip"])["y_pred"])
    assert metrics["overall"] == json.loads((tmp_path / "a" / "metrics.json").read_text())["overall"]
    capsys.readouterr()
    assert main(["compare", f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", "--resamples", "199"]) == 0
    assert "cover different clips" not in capsys.readouterr().err


def test_two_identical_runs_with_subjects_differing_by_padding_compare(tmp_path, capsys):
    """Subjects sub1 and sub01 of one run (hand-made predictions; run_loso refuses them) merged into sub01 against an
    identical run: refused as covering different clips."""
    from _runs import write_finished_run
    rows = [(f"casme2/{s}", f"EP0{j}", j % 3, (j + k) % 3) for k, s in enumerate(("sub1", "sub01", "sub02"))
            for j in (1, 2, 3)]
    for name in ("a", "b"):
        write_finished_run(tmp_path / name, rows, datasets=lambda s: "casme2")
    assert main(["compare", f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", "--resamples", "199"]) == 0
    assert "cover different clips" not in capsys.readouterr().err


def test_respelt_keeps_verbatim_ids_and_respells_only_unique_keys():
    like = pd.DataFrame({"subject": ["smic/s01", "smic/s01", "casme2/sub01", "casme2/sub01", "casme2/sub1"],
                         "clip": ["s01_ne_01", "s01_po_01", "EP01_1", "EP01_01", "EP03"]})
    # the other spelling of a key unique on both sides is respelt; twins of one key are left as they are
    frame = like.assign(subject=["smic/s1", "smic/s1", "casme2/sub01", "casme2/sub01", "casme2/sub1"],
                        clip=["s1_ne_01", "s1_po_01", "EP01_01", "EP01_1", "EP03"])
    out = respelt_like(frame, like)
    assert list(out["subject"]) == list(like["subject"])
    assert list(out["clip"]) == ["s01_ne_01", "s01_po_01", "EP01_01", "EP01_1", "EP03"]
    # a key twice in ``like`` but once in ``frame``: which of like's ids it is cannot be told
    out = respelt_like(pd.DataFrame({"subject": ["casme2/sub01"], "clip": ["EP1_1"]}), like)
    assert list(out["clip"]) == ["EP1_1"]
    # a key twice in ``frame`` and once in ``like``: not both respelt as one
    out = respelt_like(pd.DataFrame({"subject": ["smic/s1", "smic/s001"], "clip": ["x", "y"]}), like)
    assert list(out["subject"]) == ["smic/s1", "smic/s001"]


def test_subject_order_is_sorted_for_zero_padded_ids_and_one_place_for_both_spellings():
    assert subject_order(["casme2/sub01", "casme/sub01"]) == ["casme/sub01", "casme2/sub01"]
    assert subject_order(["a01", "B01"]) == ["B01", "a01"]
    assert subject_order(["sub01", "Sub02"]) == ["Sub02", "sub01"]
    rng = random.Random(63)
    for _ in range(300):
        width = rng.choice((2, 3))
        ids = {f"{rng.choice(('casme', 'casme2', 'CASME2', 'smic', 'Samm'))}{rng.choice('/_')}"
               f"{rng.choice(('sub', 'Sub', 's', ''))}{rng.randrange(0, 10 ** width):0{width}d}"
               f"{rng.choice(('', '_ep', '/x'))}" for _ in range(rng.randrange(1, 25))}
        assert subject_order(sorted(ids, reverse=True)) == sorted(ids)
        # SMIC's two spellings: s1 takes s01's place among the same ids
        padded = sorted({f"smic/s{rng.randrange(1, 40):02d}" for _ in range(rng.randrange(1, 20))}
                        | {f"casme2/sub{rng.randrange(1, 27):02d}" for _ in range(3)})
        tree = [s.replace("/s0", "/s") for s in padded]
        assert [tree.index(s) for s in subject_order(tree)] == [padded.index(s) for s in subject_order(padded)]
