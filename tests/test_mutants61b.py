"""Mutation audit 61b: tests that kill two mutants of icegan/protocol.py that survived the suite: check_run_folder
building its header from all folds whatever ``max_folds`` says, and _write_in_fold_order quoting every fold as the
whole file needs instead of as that fold's own rows need."""
import pytest
from _runs import index_scores, reversed_group_map

from icegan.data.toy_features import make_toy_features
from icegan.protocol import LosoStateError, check_run_folder, run_loso


def test_check_run_folder_refuses_a_smaller_max_folds_than_the_finished_run(tmp_path):
    """A finished whole run resumed with max_folds=1 is refused by run_loso; check_run_folder (the main job's check
    before it writes into the folder) must refuse it too, and pass the same folder with max_folds=0."""
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, size=8, seed=0)
    out = tmp_path / "run"
    config = {"data": {"name": "toy"}}
    run_loso(toy.samples, None, out, folds_fn=index_scores, config=config, progress=False)
    assert (out / "predictions.csv").is_file()
    with pytest.raises(LosoStateError):
        run_loso(toy.samples, None, out, folds_fn=index_scores, config=config, max_folds=1, progress=False)
    with pytest.raises(LosoStateError, match="a smaller max_folds"):
        check_run_folder(out, toy.samples, "CDE", None, False, 1, config, None)
    check_run_folder(out, toy.samples, "CDE", None, False, 0, config, None)


def test_a_parallel_run_quotes_each_fold_as_a_sequential_run_does(tmp_path):
    """One fold's clip name holds a "\\r" (that fold's rows are written QUOTE_ALL, the others QUOTE_MINIMAL): the
    predictions.csv of a run whose folds finished in reverse order (rewritten in fold order at the end) holds the
    bytes of a sequential run, each fold quoted as its own rows need."""
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, size=8, seed=0)
    samples = toy.samples.copy()
    first = samples["subject"].iloc[0]
    i = samples.index[samples["subject"] == first][0]
    samples.loc[i, "clip"] = samples.loc[i, "clip"] + "\rb"
    seq, par = tmp_path / "seq", tmp_path / "par"
    ref = run_loso(samples, None, seq, folds_fn=index_scores, folds_per_call=1, progress=False)
    want = (seq / "predictions.csv").read_bytes()
    assert b'\n"0","casme2","casme2/s01","casme2_s01_c00\rb",' in want   # the "\r" fold is quoted ...
    assert b"\n1,casme2,casme2/s02,casme2_s02_c00,0," in want             # ... the others are not
    assert run_loso(samples, None, par, folds_fn=index_scores, folds_per_call=1, group_map=reversed_group_map,
                    progress=False) == ref
    assert (par / "predictions.csv").read_bytes() == want
