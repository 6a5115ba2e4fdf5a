"""Review of the 55th session's fixes: an ensemble folder copied with its members (cp -r) may be re-made from the
copy's own members, and flownet.evaluate refuses n_pairs/size for the fixed-pair datasets as the CLI does."""
import json
import re
import shutil

import numpy as np
import pytest

from icegan.data.toy_features import make_toy_features
from icegan.ensemble import ensemble_runs
from icegan.protocol import LosoStateError, run_loso


def _prob_fn(seed):
    def fold_fn(fold):
        z = np.random.default_rng(seed * 1000 + fold.index).normal(size=(len(fold.test_idx), 3))
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return fold_fn


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A suite-like folder: two member runs and their ensemble, side by side."""
    root = tmp_path_factory.mktemp("suite") / "suite_v1"
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    for s in (1, 2):
        run_loso(toy.samples, _prob_fn(s), root / f"r{s}", progress=False)
    m = ensemble_runs([root / "r1", root / "r2"], root / "ens")
    return root, m


def test_an_ensemble_copied_with_its_members_is_remade_from_the_copy(suite, tmp_path):
    """The copy's ensemble.json lists the original's absolute member paths; re-making the ensemble there from the
    copy's own members was refused as 'another ensemble'. Members matching by path relative to the ensemble folder
    (same weights) are now the same ensemble; the rewritten ensemble.json names the copy's members."""
    root, m = suite
    copy = tmp_path / "suite_v2"
    shutil.copytree(root, copy)
    assert ensemble_runs([copy / "r2", copy / "r1"], copy / "ens") == m
    runs = [r["run"] for r in json.loads((copy / "ens" / "ensemble.json").read_text())["members"]]
    assert runs == [str((copy / "r2").resolve()), str((copy / "r1").resolve())]
    # the copy with other weights, or other members, is still another ensemble
    with pytest.raises(LosoStateError, match=rf"{re.escape(str(copy / 'ens'))} holds the ensemble of .*"
                                             r"\(the same members with other weights; ensemble.json\)"):
        ensemble_runs([copy / "r1", copy / "r2"], copy / "ens", weights=[1, 3])
    shutil.copytree(copy / "r1", copy / "r3")
    with pytest.raises(LosoStateError, match=r"\(other members; ensemble.json\)"):
        ensemble_runs([copy / "r1", copy / "r3"], copy / "ens")


def test_an_old_ensemble_json_with_paths_as_typed_is_still_read(suite, tmp_path, monkeypatch):
    """ensemble.json of before (paths relative to the cwd, no relative-to-folder entry): the same ensemble is
    written again from that cwd, another one is refused."""
    root, m = suite
    monkeypatch.chdir(root.parent)
    ens = root.parent / "old_ens"
    members = [{"run": f"{root.name}/r{s}", "weight": 0.5} for s in (1, 2)]
    ens.mkdir()
    (ens / "ensemble.json").write_text(json.dumps({"members": members, "protocol": "CDE", "dataset": None}))
    assert ensemble_runs([f"{root.name}/r1", f"{root.name}/r2"], ens) == m
    with pytest.raises(LosoStateError, match="other weights"):
        ensemble_runs([root / "r1", root / "r2"], ens, weights=[2, 1])
