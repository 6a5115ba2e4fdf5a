"""Review of the 55th session's fixes: an ensemble folder copied with its members (cp -r) may be re-made from the
copy's own members, and flownet.evaluate refuses n_pairs/size for the fixed-pair datasets as the CLI does."""
import json
import re
import shutil

import pytest

from icegan.data.toy_features import make_toy_features
from icegan.ensemble import ensemble_runs
from icegan.protocol import LosoStateError, run_loso

from _runs import random_prob_fn


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A suite-like folder: two member runs and their ensemble, side by side."""
    root = tmp_path_factory.mktemp("suite") / "suite_v1"
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    for s in (1, 2):
        run_loso(toy.samples, random_prob_fn(s), root / f"r{s}", progress=False)
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


def test_an_ensemble_folder_copied_alone_is_not_matched_by_other_runs_in_its_members_places(suite, tmp_path):
    """Only ens/ copied to y/ens, then an ensemble of other runs y/r1, y/r2 (where the relative paths point): the
    relative match alone let it silently replace the recorded ensemble; the members' predictions.csv digests differ,
    so it is refused as another ensemble (other predictions in the members' places: not called "other members" since
    the 61st session, as these may be the same runs rerun)."""
    root, _ = suite
    y = tmp_path / "y"
    shutil.copytree(root / "ens", y / "ens")
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    for s in (1, 2):
        run_loso(toy.samples, random_prob_fn(s + 10), y / f"r{s}", progress=False)
    with pytest.raises(LosoStateError, match=r"\(the same member places with other predictions \(other runs there"):
        ensemble_runs([y / "r1", y / "r2"], y / "ens")


def test_a_member_on_another_drive_has_no_relative_path(monkeypatch, tmp_path):
    """os.path.relpath raises ValueError across Windows drives: the member is recorded without a relative path
    instead of the command ending in a traceback."""
    import icegan.ensemble as ens

    def other_drive(path, start):
        raise ValueError("path is on mount 'D:', start on mount 'C:'")
    monkeypatch.setattr(ens.os.path, "relpath", other_drive)
    assert ens._relative(tmp_path / "r1", tmp_path / "ens") is None


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


@pytest.mark.parametrize("data, kw, message", [
    ("middlebury", {"n_pairs": 2}, r"--n-pairs applies to --data synthetic-face, synthetic-generic and kitti, not "
                                   r"middlebury \(every sequence under the root is scored\); leave it out, got "
                                   r"--n-pairs 2"),
    ("middlebury", {"size": 64}, r"--size applies to --data synthetic-face and synthetic-generic, not middlebury "
                                 r"\(its pairs are scored at their own size.*got --size 64"),
    ("kitti", {"size": 64}, r"--size applies to .* not kitti .*got --size 64")])
def test_library_evaluate_refuses_n_pairs_and_size_it_would_ignore(data, kw, message):
    """evaluate('farneback', data='middlebury', n_pairs=2, size=64) scored all 4 Middlebury pairs at their own
    sizes without a word (only the CLI refused the flags); now the library refuses them, before any data is read
    (kitti without a root would else say that KITTI is missing)."""
    from flownet.evaluate import evaluate
    with pytest.raises(ValueError, match=message):
        evaluate("farneback", data=data, progress=False, **kw)


def test_library_evaluate_defaults_size_and_n_pairs_for_synthetic_data():
    """size and n_pairs left out (None) are the synthetic data's 128 pixels and 200 pairs; given, they apply."""
    import inspect

    from flownet.evaluate import evaluate, load_pairs
    params = inspect.signature(load_pairs).parameters
    assert (params["size"].default, params["n_pairs"].default) == (128, 200)
    r = evaluate("farneback", data="synthetic-generic", n_pairs=1, progress=False)
    assert (r["n_pairs"], r["image_sizes"]) == (1, [[128, 128]])
    r = evaluate("farneback", data="synthetic-generic", n_pairs=2, size=32, progress=False)
    assert (r["n_pairs"], r["image_sizes"]) == (2, [[32, 32]])
