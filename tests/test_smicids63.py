"""SMIC ids spelt two ways: the MEGC2019 composite table's ``smic/s01``, ``s01_ne_01`` and the SMIC tree's
``smic/s1``, ``s1_ne_01``. ``icegan compare`` and ``icegan ensemble`` pair runs of the two spellings by
:func:`icegan.protocol.subject_key` (outputs keep the first or baseline run's spellings) and still refuse other
clips; a subject bootstrap resamples both spellings alike, and zero-padded ids in the order it always had."""
import re

import numpy as np
import pandas as pd
import pytest

from icegan.cli import main
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.protocol import run_loso
from icegan.significance import subject_interval

CLASSES = ("ne", "po", "sur")


def _samples(tree: bool, relabel: int = -1) -> pd.DataFrame:
    """12 SMIC subjects (3 clips each, one per class) and 2 CASME II ones; ``tree``: SMIC ids as the SMIC tree spells
    them (smic/s1, s1_ne_01), else as the composite table does (smic/s01, s01_ne_01). ``relabel``: the row whose
    label is moved to the next class (-1: none), a run of other labels."""
    rows = []
    for s in range(1, 13):
        sid = f"s{s}" if tree else f"s{s:02d}"
        rows += [{"dataset": "smic", "subject": f"smic/{sid}", "clip": f"{sid}_{c}_01", "label": k}
                 for k, c in enumerate(CLASSES)]
    for s in (1, 2):
        rows += [{"dataset": "casme2", "subject": f"casme2/sub{s:02d}", "clip": f"EP0{k}_01", "label": k}
                 for k in range(3)]
    out = pd.DataFrame(rows)
    if relabel >= 0:
        out.loc[relabel, "label"] = (out.loc[relabel, "label"] + 1) % 3
    return out


def _clip_probs(fold):
    """Fold function: fixed pseudo-random probabilities of each clip (by its row), whatever fold tests it, so runs
    of the two spellings (other fold numbers: s1, s10, s11, s12, s2 ... against s01, s02 ...) predict alike."""
    z = np.random.default_rng(3).normal(size=(42, 3)) * 2
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True))[fold.test_idx]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("smicids")
    for name, tree, relabel in (("htnet", False, -1), ("tree", True, -1), ("tree_relabelled", True, 3)):
        run_loso(_samples(tree, relabel), _clip_probs, root / name, progress=False)
    return root


def _table_rows(out: str) -> dict:
    """The cells of each entry's row of a Markdown comparison table, by label."""
    return {c[0]: c[1:] for c in ([c.strip() for c in ln.strip().strip("|").split("|")]
                                  for ln in out.splitlines() if ln.startswith("| ")) if c[0] != "entry"}


def test_compare_pairs_the_two_spellings_and_either_baseline_gives_the_same_intervals(runs, capsys):
    """The runs were refused ('cover different clips or labels', first difference 'smic/s1/s1_ne_01 label 0' vs
    'smic/s01/s01_ne_01 label 0'); paired, their difference is 0 in every resample, and their intervals are the
    same with either one as the baseline."""
    args = ["compare", f"htnet={runs / 'htnet'}", f"tree={runs / 'tree'}", "--resamples", "199"]
    assert main(args) == 0
    first = _table_rows(capsys.readouterr().out)
    assert first["htnet"][2:4] == first["tree"][2:4]                 # UF1 and UAR with their intervals
    assert first["tree"][4:] == ["0.0000 [0.0000, 0.0000]", "0.0000 [0.0000, 0.0000]", "0.0 % (ties 100.0 %)"]
    assert main(args + ["--baseline", "tree"]) == 0
    other = _table_rows(capsys.readouterr().out)
    assert other["tree"][2:4] == first["htnet"][2:4] and other["htnet"][2:4] == first["htnet"][2:4]


def test_compare_still_refuses_other_labels_in_the_other_spelling(runs, capsys):
    assert main(["compare", f"htnet={runs / 'htnet'}", f"tree={runs / 'tree_relabelled'}", "--resamples", "199"]) == 2
    err = capsys.readouterr().err
    assert "'tree' and 'htnet' cover different clips or labels (first difference " in err
    assert re.search(r"s0?2_ne_01 label 1' vs '\S+s0?2_ne_01 label 0'", err), err


def test_ensemble_pairs_the_two_spellings_in_the_first_run_s_spellings(runs, tmp_path, capsys):
    """The ensemble was refused ('differs ... in its folds (68 vs 68 subjects, first difference 'smic/s1' vs
    'smic/s01')'); it is the first member's predictions (two identical members), its ids and fold numbers."""
    assert main(["ensemble", str(runs / "htnet"), str(runs / "tree"), "--out", str(tmp_path / "ens")]) == 0
    capsys.readouterr()
    ens = pd.read_csv(tmp_path / "ens" / "predictions.csv", dtype={"subject": str, "clip": str})
    first = pd.read_csv(runs / "htnet" / "predictions.csv", dtype={"subject": str, "clip": str})
    key = ["subject", "clip"]
    ens, first = ens.sort_values(key, ignore_index=True), first.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(ens[["fold", "subject", "clip", "y_true", "y_pred"]],
                                  first[["fold", "subject", "clip", "y_true", "y_pred"]])
    np.testing.assert_allclose(ens.filter(like="score_").to_numpy(), first.filter(like="score_").to_numpy(),
                               atol=1e-8)
    ensemble_runs([runs / "tree", runs / "htnet"], tmp_path / "ens_tree")
    tree = pd.read_csv(tmp_path / "ens_tree" / "predictions.csv", dtype={"subject": str, "clip": str})
    assert {"smic/s1", "smic/s12"} <= set(tree["subject"]) and "s1_ne_01" in set(tree["clip"])
    assert "smic/s01" not in set(tree["subject"])


def test_ensemble_still_refuses_other_labels_in_the_other_spelling(runs, tmp_path):
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(runs / 'tree_relabelled'))} differs from "
                                            f"{re.escape(str(runs / 'htnet'))} in 'y_true' "
                                            r"\(clip smic/s0?2/s0?2_ne_01: 1 vs 0\)"):
        ensemble_runs([runs / "htnet", runs / "tree_relabelled"], tmp_path / "ens")


def test_renaming_s01_to_s1_leaves_the_subject_interval_unchanged():
    """``sorted`` put s1, s10, s11, s12, s2 ... where the zero-padded ids go s01, s02 ...: the same predictions gave
    other intervals in the two spellings."""
    rng = np.random.default_rng(11)
    pred = pd.DataFrame([{"subject": f"smic/s{s:02d}", "clip": f"s{s:02d}_ne_0{j}", "y_true": int(rng.integers(0, 3)),
                          "y_pred": int(rng.integers(0, 3))} for s in range(1, 21) for j in range(1, 1 + s % 4 + 1)])
    tree = pred.assign(subject=pred["subject"].str.replace("/s0", "/s"), clip=pred["clip"].str.replace(r"^s0", "s",
                                                                                                       regex=True))
    assert set(tree["subject"]) != set(pred["subject"])
    padded = subject_interval(pred, resamples=999, seed=2, n_classes=3)
    assert subject_interval(tree, resamples=999, seed=2, n_classes=3) == padded


def test_zero_padded_ids_keep_their_sorted_order(shared_data):
    """Every interval recorded in README.md and docs/benchmarks.md was drawn over subjects in ``sorted`` order: the
    composite's ids (casme2/sub01, samm/006, smic/s01), and CASME II's and SAMM's ids without a prefix, keep it."""
    from icegan.significance import subject_order
    table = pd.read_csv(shared_data / "megc2019_htnet" / "combined_3_class2_for_optical_flow.csv", dtype=str)
    composite = sorted(set(table["dataset"] + "/" + table["sub"]))
    assert len(composite) == 68 and "smic/s01" in composite and "samm/006" in composite
    for ids in (composite, [f"sub{s:02d}" for s in range(1, 27)], [f"{s:03d}" for s in range(6, 38)],
                [f"casme2/sub{s:02d}" for s in range(1, 27)] + [f"smic/s{s:02d}" for s in range(1, 21)]):
        assert subject_order(reversed(ids)) == sorted(ids)
    assert subject_order(["smic/s10", "smic/s2", "smic/s1"]) == ["smic/s1", "smic/s2", "smic/s10"]


def test_per_dataset_names_a_subject_two_spellings_put_in_two_datasets(tmp_path, capsys):
    """``--per-dataset`` matches the entries' subjects by subject_key too: the tree-spelt entry's dataset column
    putting smic/s2 in casme2 is named as such, by the baseline's spelling of the subject."""
    from _runs import write_finished_run
    rows = [(f"smic/s{s:02d}", f"s{s:02d}_ne_0{j}", j % 3, (j + s) % 3) for s in (1, 2, 3) for j in (1, 2, 3)]
    a = write_finished_run(tmp_path / "htnet", rows, datasets=lambda s: "smic")
    tree = [(s.replace("/s0", "/s"), c.replace("s0", "s", 1), y, p) for s, c, y, p in rows]
    b = write_finished_run(tmp_path / "tree", tree, datasets=lambda s: "casme2" if s == "smic/s2" else "smic")
    assert main(["compare", f"htnet={a}", f"tree={b}", "--resamples", "199", "--per-dataset"]) == 2
    assert "'tree' and 'htnet' put subject 'smic/s02' in different datasets: 'casme2' (" in capsys.readouterr().err
