"""Mutation audit 62: four mutants survived every test while changing what a user sees; each test here kills one.
(1) the run-folder lock's exit, with the parent check dropped, removed the user's own empty ``runs/`` (and every
empty folder above it) along with the unused run folder it made; (2) ``untrained_classes`` with ``n <= 1`` named a
class with one training pair untrained; (3) a weights file without a ``format`` key was refused when read as
flownet's weights, though a file without one is documented to be read as it is; (4) ``_first_five`` with ``>= 5``
wrote "and 0 more" after exactly five names in the resume warnings."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET


def test_the_folder_lock_keeps_an_existing_empty_parent_of_the_run_folder_it_made(tmp_path):
    """``--out runs/exp`` into an existing, still empty ``runs/``, a run that fails before writing: ``runs/exp`` is
    removed, ``runs/`` (which the lock did not make) is kept."""
    pytest.importorskip("fcntl")
    from icegan.protocol import _RunFolderLock
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "notes.txt").write_text("mine")                # not emptied: a mutant stops above runs/
    with _RunFolderLock(runs / "exp") as lock:
        lock.hold()
        assert (runs / "exp").is_dir()
    assert not (runs / "exp").exists()
    assert runs.is_dir() and list(runs.iterdir()) == []


def test_a_class_with_one_training_pair_is_not_untrained():
    from icegan.gan.trainer import untrained_classes
    assert untrained_classes({"class_pairs": [2, 1, 0]}) == ([2], [2, 1, 0])
    assert untrained_classes({"class_pairs": [1, 1, 1]}) == ([], [1, 1, 1])
    assert untrained_classes({}) is None


def _formatless_weights(path):
    """A flownet weights file of the tiny SRFlowNet as ``{"state_dict": ...}`` only (no ``format``, ``config``,
    ``meta``); returns the network it was saved from."""
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    torch.manual_seed(1)
    src = SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET))
    torch.save({"state_dict": src.state_dict()}, path)
    return src


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_weights_file_without_a_format_loads_as_flownet_weights(tmp_path):
    """``load_state_dict_file``'s ``fmt``: "a file without one is read as it is" (and so through
    ``train.init_weights``)."""
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.models.state_dict import load_state_dict_file
    from flownet.registry import WEIGHTS_FORMAT
    from flownet.train import load_init_weights
    path = tmp_path / "w.pt"
    src = _formatless_weights(path)
    dst = SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET))
    assert not _same_tensors(src, dst)
    ck = load_state_dict_file(dst, path, "flow.weights", fmt=WEIGHTS_FORMAT)
    assert set(ck) == {"state_dict"} and _same_tensors(src, dst)
    dst = SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET))
    assert load_init_weights(dst, path) == {} and _same_tensors(src, dst)


def test_first_five_adds_and_n_more_only_past_five():
    from icegan.pipeline import _first_five
    assert _first_five([]) == ""
    assert _first_five(list("abcde")) == "a, b, c, d, e"
    assert _first_five(list("abcdef")) == "a, b, c, d, e and 1 more"


def test_the_world_size_warning_lists_five_folds_with_no_and_0_more(tmp_path, caplog):
    from icegan.pipeline import _warn_other_world_size
    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"fold_world_size": {f"casme2/s0{i}": 2 for i in range(1, 6)}}))
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_world_size(path, 1)
    folds = ", ".join(f"casme2/s0{i} by 2" for i in range(1, 6))
    assert f"(timing.json records {folds}), now by 1" in caplog.text, caplog.text
    assert "more" not in caplog.text, caplog.text


def test_members_without_a_relative_path_never_match_by_place(tmp_path, monkeypatch):
    """A member with no path relative to the ensemble's folder (``_relative``: None, on Windows a run on another
    drive) matches by its resolved path only: an ensemble of other such members is refused, with
    ``own_members`` too (before the ``rel is not None`` check, "None|" matched any such member and the other
    ensemble was overwritten), and its message says "other members", not "the same member places"."""
    import icegan.ensemble
    from _runs import random_prob_fn

    from icegan.data.toy_features import make_toy_features
    from icegan.ensemble import ensemble_runs
    from icegan.protocol import LosoStateError, run_loso
    samples = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2).samples
    runs = [tmp_path / f"r{s}" for s in range(4)]
    for s, d in enumerate(runs):
        run_loso(samples, random_prob_fn(s), d, progress=False)
    monkeypatch.setattr(icegan.ensemble, "_relative", lambda d, out: None)
    ens = tmp_path / "ens"
    ensemble_runs(runs[:2], ens)
    assert [m["rel"] for m in json.loads((ens / "ensemble.json").read_text())["members"]] == [None, None]
    ensemble_runs(runs[:2], ens, own_members=True)                 # the same members: matched by path
    for own in (False, True):
        with pytest.raises(LosoStateError, match=r"\(other members; ensemble\.json\)"):
            ensemble_runs(runs[2:], ens, own_members=own)
    recorded = [m["run"] for m in json.loads((ens / "ensemble.json").read_text())["members"]]
    assert recorded == [str(d.resolve()) for d in runs[:2]]
