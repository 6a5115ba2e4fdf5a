"""What a new user's README walkthrough found in two flow commands: ``python -m flownet.selfsup --help`` says what the
alpha2 study measures and what each option does (defaults, ranges) and points to training, and a weights file that
does not exist is a one-line usage error naming --alpha2-study (not a traceback telling to pass --weights); a
train.keep_best fine-tune whose initial weights (step 0) scored a lower validation EPE than every trained step ends
with a note saying so, and metrics.json's kept_best records that step 0 EPE (the weights that ship are unchanged)."""
from __future__ import annotations

import re

import pytest

from flownet.selfsup import _main as selfsup_main


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
