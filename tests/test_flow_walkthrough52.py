"""What a new user's README walkthrough found in two flow commands: ``python -m flownet.selfsup --help`` says what the
alpha2 study measures and what each option does (defaults, ranges) and points to training, and a weights file that
does not exist is a one-line usage error naming --alpha2-study (not a traceback telling to pass --weights); a
train.keep_best fine-tune whose initial weights (step 0) scored a lower validation EPE than every trained step ends
with a note saying so, and metrics.json's kept_best records that step 0 EPE (the weights that ship are unchanged)."""
from __future__ import annotations

import json
import re

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from test_flow_train import interrupted_and_resumed

import flownet.train as ftrain
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet
from flownet.selfsup import _main as selfsup_main
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection

NOTE = "note: the initial weights (train.init_weights, step 0) scored val EPE"


# ------------------------------------------------------------------------------ python -m flownet.selfsup

def test_selfsup_help_says_it_is_an_alpha2_study_and_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        selfsup_main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())       # argparse wraps the lines
    assert "Study of the occlusion threshold alpha2 of the self-supervised losses" in out
    assert "it trains nothing" in out and "icegan flow train --mode selfsup" in out
    for said in ("synthetic facial test pairs", "held-out subjects", "occluded fraction", "--json, writes"):
        assert said in out, said
    for option, default in (("--alpha2-study WEIGHTS [WEIGHTS ...]", "(required)"),
                            ("--alpha2 ALPHA2 [ALPHA2 ...]", "(default 0.5 0.1 0.05)"),
                            ("--alpha1 ALPHA1", "(default 0.01)"), ("--n-synthetic N_SYNTHETIC", "(default 32)"),
                            ("--n-real N_REAL", "(default 32)"), ("--threads THREADS", "(default 1)"),
                            ("--json OUT", "(default: print only)")):
        helped = out.split("options:", 1)[1].split(option, 1)[1]
        assert not helped.lstrip().startswith("--"), f"{option} has no help text"
        assert default in helped.split(" --", 1)[0], option


@pytest.mark.parametrize("weights", ["nope.pt", "missing/dir/w.pt"])
def test_selfsup_missing_weights_file_is_a_usage_error_naming_its_own_flag(tmp_path, monkeypatch, capsys, weights):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        selfsup_main(["--alpha2-study", "shipped", weights, "--n-synthetic", "1", "--n-real", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last == f"python -m flownet.selfsup: error: --alpha2-study: weights file not found: {weights}"
    assert "--weights" not in err and "Traceback" not in err


def test_selfsup_unknown_shipped_checkpoint_is_a_usage_error_too(capsys):
    with pytest.raises(SystemExit) as exc:
        selfsup_main(["--alpha2-study", "shipped:nope"])
    assert exc.value.code == 2
    assert re.search(r"error: --alpha2-study: shipped:nope: 'srflownet' ships the checkpoints .*not 'nope'$",
                     capsys.readouterr().err.strip())


# ------------------------------------------------------------------------------ train.keep_best from init weights

def _cfg(tmp_path, root, name, init, lr, steps, eval_every):
    return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, n_val_subjects=2,
                                               n_val=2, frames_per_clip=1),
                           train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=steps,
                                                  eval_every=eval_every, ckpt_every=1, log_every=100, threads=1,
                                                  seed=1, lr=lr, keep_best=True, init_weights=str(init)))


def _logged_val_epes(out: str) -> dict[int, float]:
    return {int(m.group(1)): json.loads(m.group(2))["EPE"]
            for m in re.finditer(r"^step (\d+) val (\{.*\})$", out, re.M)}


def _init(tmp_path):
    """Randomly initialised tiny weights (near-zero flow: a low EPE on the small facial motion)."""
    torch.manual_seed(0)
    return save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), tmp_path / "init.pt")


def test_keep_best_notes_initial_weights_better_than_every_trained_step(tmp_path, shared_data, capsys):
    """lr=1 wrecks the weights by step 2, the only evaluated trained step: step 2 still ships (the step 0 score is no
    candidate), and the run ends with a note that the start scored lower; kept_best records the step 0 EPE."""
    ftrain.train(_cfg(tmp_path, shared_data, "wreck", _init(tmp_path), 1.0, 2, 2), progress=False)
    out = capsys.readouterr().out
    logged = _logged_val_epes(out)
    assert sorted(logged) == [0, 2] and logged[0] < logged[2], "precondition: the fine-tune did worse than its start"
    kept = json.loads((tmp_path / "wreck" / "metrics.json").read_text())["kept_best"]
    assert kept == {"step": 2, "val_EPE": logged[2], "final_step": 2, "final_val_EPE": logged[2],
                    "init_val_EPE": logged[0]}
    assert load_srflownet(tmp_path / "wreck" / "weights.pt").meta["kept_best"] == kept
    note = [line for line in out.splitlines() if line.startswith("note:")]
    assert note == [f"{NOTE} {logged[0]:.4f}, lower than every trained step's (best {logged[2]:.4f} at step 2): the "
                    f"fine-tune did not beat its start; weights.pt holds step 2 as train.keep_best chooses among "
                    f"trained steps"]
    assert out.rstrip().endswith(note[0])


def test_keep_best_fine_tune_that_beats_its_start_records_the_start_without_a_note(tmp_path, shared_data, capsys):
    """From the wrecked weights of a first run, a fine-tune improves on its start: no note, init_val_EPE kept."""
    ftrain.train(_cfg(tmp_path, shared_data, "wreck", _init(tmp_path), 1.0, 2, 2), progress=False)
    capsys.readouterr()
    ftrain.train(_cfg(tmp_path, shared_data, "fix", tmp_path / "wreck" / "weights.pt", 1e-2, 3, 1), progress=False)
    out = capsys.readouterr().out
    logged = _logged_val_epes(out)
    kept = json.loads((tmp_path / "fix" / "metrics.json").read_text())["kept_best"]
    assert kept["init_val_EPE"] == logged[0] and kept["val_EPE"] == min(logged[s] for s in (1, 2, 3)) < logged[0]
    assert NOTE not in out


def test_a_resumed_keep_best_fine_tune_still_knows_its_step_0_score(tmp_path, shared_data, monkeypatch, capsys):
    """Cut after step 1 and resumed (no step 0 evaluation then): last.pt kept the step 0 EPE, so metrics.json and the
    note equal those of the uninterrupted run."""
    init = _init(tmp_path)
    ftrain.train(_cfg(tmp_path, shared_data, "whole", init, 1.0, 2, 2), progress=False)
    whole_out = capsys.readouterr().out
    interrupted_and_resumed(monkeypatch, _cfg(tmp_path, shared_data, "cut", init, 1.0, 2, 2), 1)
    cut_out = capsys.readouterr().out
    assert f"resumed {tmp_path / 'cut' / 'last.pt'} at step 1" in cut_out
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())["kept_best"]
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["kept_best"] == whole
    assert "init_val_EPE" in whole
    note = [line for line in whole_out.splitlines() if line.startswith(NOTE)]
    assert len(note) == 1 and cut_out.rstrip().endswith(note[0])
