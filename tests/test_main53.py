"""The fifty-third session's own fixes: `icegan flow train-decflow --out DIR` names the overrides that choose its run
folder, as gan train and flow train do (one helper, icegan.commands.add_out_hint, for the three); `icegan table` and
`icegan compare` refuse one seed run twice as two seeds; bench/decision_rule_bound.py takes its dataset priors from
the other folds and refuses an HDE run, whose other folds hold no clip of the held-out dataset."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from _bench import load_bench

from icegan.cli import build_parser, parse_with_overrides
from icegan.report import TableEntry, check_one_recipe, results_table


DECFLOW = "configs/flow_decflow.yaml: runs/decflow"


@pytest.mark.parametrize("argv, folder, config, where", [
    (["--config", "configs/flow_decflow.yaml", "--out", "runs/dec"], "runs/dec", "configs/flow_decflow.yaml", DECFLOW),
    (["--out=runs/dec", "--config", "configs/flow_decflow.yaml", "train.steps=2"], "runs/dec", "CONFIG",  # not read yet
     "out_dir/name of its --config"),
    (["--config", "configs/flow_decflow.yaml", "--out"], "DIR", "configs/flow_decflow.yaml", DECFLOW),
])
def test_train_decflow_out_names_the_out_dir_override(argv, folder, config, where, capsys):
    """It answered a bare 'unrecognized arguments: --out' (DIR silently taken for an override)."""
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), ["flow", "train-decflow", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: icegan flow train-decflow ")
    assert "takes no --out: it trains into out_dir/name" in err and f"keys of its config ({where})" in err
    assert f"overrides out_dir={folder} name=NAME" in err and "unrecognized" not in err
    assert f"e.g. icegan flow train-decflow --config {config} out_dir={folder}" in err


@pytest.mark.parametrize("argv, where, example", [
    (["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", "--out", "/tmp/x"],
     "configs/gan_casme2_cpu.yaml: runs/gan_casme2_cpu_motion",
     "icegan gan train --config configs/gan_casme2_cpu.yaml out_dir=/tmp/x"),
    (["gan", "train", "--out", "/tmp/x"], "default config gan_casme2.yaml: runs/gan_casme2",
     "icegan gan train out_dir=/tmp/x"),
    (["gan", "train", "name=foo", "out_dir=mine", "--out", "/tmp/x"], "default config gan_casme2.yaml: mine/foo",
     "icegan gan train out_dir=/tmp/x"),                    # overrides typed before --out are applied
    (["flow", "train", "--config", "configs/flow_selfsup.yaml", "--out", "/tmp/x"],
     "configs/flow_selfsup.yaml: runs/flow_selfsup",
     "icegan flow train --config configs/flow_selfsup.yaml out_dir=/tmp/x"),
    (["flow", "train", "--config", "configs/no_such.yaml", "--out", "/tmp/x"], "out_dir/name of its --config",
     "icegan flow train --config configs/no_such.yaml out_dir=/tmp/x"),
])
def test_out_hint_names_the_run_folder_of_the_config_given(argv, where, example, capsys):
    """The hint named one fixed config's folder (flow train: flow_srflownet_fdr's, whatever --config said; gan train:
    the default config's, and its example dropped --config)."""
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), argv)
    err = capsys.readouterr().err
    assert f"keys of its config ({where})" in err and err.rstrip().endswith(f"e.g. {example}")


def test_train_decflow_help_does_not_offer_out_and_overrides_still_parse(capsys):
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), ["flow", "train-decflow", "--help"])
    assert "--out" not in capsys.readouterr().out
    args = parse_with_overrides(build_parser(), ["flow", "train-decflow", "--config", "configs/flow_decflow.yaml",
                                                 "train.steps=2"])
    assert args.out is None and args.overrides == ["train.steps=2"]


# --- one seed run twice is not two seeds ------------------------------------------------------------------------------

def _finished_run(folder, seed, uf1, **model):
    """A finished run folder: metrics.json and the config.yaml icegan loso saves (the keys that matter here)."""
    folder.mkdir()
    part = {"UF1": uf1, "UAR": uf1}
    metrics = {"protocol": "CDE", "oracle_epoch": False, "n_folds": 68, "n_samples": 442, "overall": part,
               "per_dataset": {"casme2": part}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    config = {"name": folder.name, "protocol": "CDE", "seed": seed, "device": "cpu", "out_dir": str(folder.parent),
              "model": {"name": "ststnet", "epochs": 100, **model}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_one_seed_run_twice_is_refused_as_two_seeds(tmp_path):
    """Two folders of one recipe and one seed (a rerun, a copy) were pooled as n = 2 with a std of 0: the mean ± std
    over seeds and the bootstrap's seed average got a spread and an n they do not have."""
    a = _finished_run(tmp_path / "st_a", 0, 0.70)
    b = _finished_run(tmp_path / "st_b", 0, 0.70)
    with pytest.raises(ValueError) as exc:
        results_table([TableEntry("STSTNet", [a, b])])
    msg = str(exc.value)
    for word in ("entry 'STSTNet'", str(a), str(b), "same seed (seed=0)", "one seed run twice", "another seed="):
        assert word in msg, f"{word!r} not in {msg!r}"


def test_seeds_of_one_recipe_on_other_machines_still_pool(tmp_path):
    """Different seeds pool as before; where and how fast a run ran (device, out_dir) is no seed."""
    a = _finished_run(tmp_path / "st_s0", 0, 0.70)
    b = _finished_run(tmp_path / "st_s1", 1, 0.74)
    check_one_recipe("STSTNet", [a, b])
    row = results_table([TableEntry("STSTNet", [a, b])]).splitlines()[2]
    assert row.startswith("| STSTNet | honest | CDE | 2 | 0.7200 ± 0.0283 |")
    c = _finished_run(tmp_path / "st_s0_again", 0, 0.70, epochs=60)        # another recipe: named by its keys
    with pytest.raises(ValueError, match=r"different recipes.*model.epochs"):
        check_one_recipe("STSTNet", [a, c])


def test_compare_refuses_one_seed_run_twice(tmp_path, capsys):
    """icegan compare's entries (load_run_set) go through the same check."""
    from icegan.protocol import run_loso
    samples = pd.DataFrame({"dataset": "casme2", "subject": [f"casme2/s{i}" for i in range(4) for _ in range(3)],
                            "clip": [f"c{i}" for i in range(12)], "label": [0, 1, 2] * 4})
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        run_loso(samples, lambda f: np.eye(3)[samples["label"].to_numpy()[f.test_idx]], out, progress=False,
                 config={"name": name, "seed": 3, "model": {"name": "ststnet"}})
        runs.append(out)
    from icegan.significance import load_run_set
    with pytest.raises(ValueError, match=r"same seed \(seed=3\): one seed run twice"):
        load_run_set("twice", runs)


# --- bench/decision_rule_bound.py: priors from the other folds --------------------------------------------------------

def test_dataset_prior_curve_refuses_a_fold_that_holds_its_dataset_out_whole():
    """In an HDE run each fold is a whole dataset: the 'other subjects' of the clip's dataset were the fold's own test
    clips, so the curve rose on the held-out labels (UF1 0.35 -> 0.67 on random scores in the audit)."""
    bench = load_bench("decision_rule_bound")
    y = np.array([0, 1, 2, 0, 1, 2])
    dataset = np.array(["casme2"] * 3 + ["samm"] * 3)
    scores = np.full((6, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"fold [01]'s training side has no clip of dataset (casme2|samm) .*HDE"):
        bench.dataset_prior_curve(scores, y, dataset, np.array(["0"] * 3 + ["1"] * 3))
    # LOSO folds (one per subject): the same curve as from the subjects
    fold = np.array(["0", "1", "2", "3", "4", "5"])
    assert bench.dataset_prior_curve(scores, y, dataset, fold) == bench.dataset_prior_curve(
        scores, y, dataset, np.array(["a", "b", "c", "d", "e", "f"]))


def test_decision_rule_bound_script_names_the_hde_run(tmp_path, capsys):
    bench = load_bench("decision_rule_bound")
    run = tmp_path / "hde"
    run.mkdir()
    pd.DataFrame({"fold": [0, 0, 1, 1], "dataset": ["casme2", "casme2", "samm", "samm"],
                  "subject": ["casme2/s1", "casme2/s2", "samm/006", "samm/007"], "clip": list("abcd"),
                  "y_true": [0, 1, 2, 0], "y_pred": [0, 1, 2, 0], "score_negative": [0.5, 0.2, 0.1, 0.6],
                  "score_positive": [0.3, 0.6, 0.1, 0.2], "score_surprise": [0.2, 0.2, 0.8, 0.2]}
                 ).to_csv(run / "predictions.csv", index=False)
    assert bench.main([str(run)]) == 2              # one line on stderr, exit 2, as the other bench scripts
    err = capsys.readouterr().err
    assert err.startswith(f"decision_rule_bound.py: error: {run / 'predictions.csv'}: ") and "HDE" in err


# --- a resumed LOSO says what it keeps --------------------------------------------------------------------------------

def test_a_resumed_run_says_how_many_folds_it_keeps(tmp_path, capsys):
    """A rerun into the folder of an interrupted run said nothing: only the progress bar started at n/N."""
    from icegan.protocol import run_loso
    samples = pd.DataFrame({"dataset": "casme2", "subject": [f"casme2/s{i}" for i in range(4) for _ in range(3)],
                            "clip": [f"c{i}" for i in range(12)], "label": [0, 1, 2] * 4})
    calls = []

    def fold_fn(fold):
        calls.append(fold.subject)
        if len(calls) == 3:
            raise KeyboardInterrupt            # Ctrl-C during the third fold
        return np.eye(3)[samples["label"].to_numpy()[fold.test_idx]]
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_loso(samples, fold_fn, out, progress=False, config={"seed": 0})
    assert "resuming" not in capsys.readouterr().err          # a first start says nothing of the kind
    run_loso(samples, fold_fn, out, progress=False, config={"seed": 0})
    err = capsys.readouterr().err
    assert f"run: resuming {out}: 2 of 4 folds finished earlier are kept; 2 to train" in err
    assert calls == ["casme2/s0", "casme2/s1", "casme2/s2", "casme2/s2", "casme2/s3"]
    run_loso(samples, fold_fn, out, progress=False, config={"seed": 0})
    assert "4 of 4 folds finished earlier are kept; none to train, the results are written again" in \
        capsys.readouterr().err


# --- an ensemble / merge of a run whose flow saw held-out motion is not leak-free either ------------------------------

def _prob_run(out, samples, seen=(), only=None):
    """A finished run of softmax scores (probabilities, as an ensemble needs); ``seen``: its motion_seen."""
    from icegan.protocol import run_loso
    rng = np.random.default_rng(len(str(out)))

    def fold_fn(fold):
        z = rng.normal(size=(len(fold.test_idx), 3))
        return np.exp(z) / np.exp(z).sum(1, keepdims=True)
    s = samples if only is None else samples[samples["dataset"] == only].reset_index(drop=True)
    run_loso(s, fold_fn, out, progress=False, config={"seed": len(str(out)), "model": {"name": "x"}},
             motion_seen=list(seen), motion_seen_by="flow.weights: selfsup.pt")
    return out


def test_ensemble_and_merge_carry_a_members_real_motion_record(tmp_path):
    """Only run_loso wrote the record: an ensemble (or a merge) of a run whose flow network had trained on held-out
    subjects' real motion was reported 'honest' in its metrics.md and in icegan table."""
    from icegan.ensemble import ensemble_runs
    samples = pd.DataFrame({"dataset": ["casme2"] * 12 + ["samm"] * 6,
                            "subject": [f"casme2/s{i}" for i in range(4) for _ in range(3)]
                            + [f"samm/{i:03d}" for i in range(2) for _ in range(3)],
                            "clip": [f"c{i}" for i in range(18)], "label": [0, 1, 2] * 6})
    seen = _prob_run(tmp_path / "seen", samples, seen=["casme2/s1", "casme2/S2"])
    plain = _prob_run(tmp_path / "plain", samples)
    m = ensemble_runs([plain, seen], tmp_path / "ens")
    assert m["real_motion_seen"]["subjects"] == ["casme2/s1", "casme2/s2"]
    assert m["real_motion_seen"]["held_out_subjects"] == 6
    source = m["real_motion_seen"]["source"]
    assert str(seen) in source and "flow.weights: selfsup.pt" in source
    md = (tmp_path / "ens" / "metrics.md").read_text()
    assert "**Not leak-free:**" in md and "2 of the 6 held-out subjects (casme2/s1, casme2/s2)" in md
    assert "| ens | NOT leak-free |" in results_table([TableEntry("ens", [tmp_path / "ens"])])
    # members without the record: as before
    clean = ensemble_runs([plain, _prob_run(tmp_path / "plain2", samples)], tmp_path / "ens_clean")
    assert "real_motion_seen" not in clean
    assert "leak-free" not in (tmp_path / "ens_clean" / "metrics.md").read_text()

    merge = load_bench("merge_runs")
    c = _prob_run(tmp_path / "c_only", samples, seen=["casme2/s3"], only="casme2")
    s = _prob_run(tmp_path / "s_only", samples, only="samm")
    merged = merge.merge_runs([c, s], tmp_path / "merged")
    assert merged["real_motion_seen"]["subjects"] == ["casme2/s3"]
    assert merged["real_motion_seen"]["held_out_subjects"] == 6


def test_metrics_md_selection_line_and_console_summary_of_a_marked_run(tmp_path):
    """metrics.md's Selection line said 'honest: no model selection ...' right above the Not leak-free line, and the
    console summary (icegan loso, icegan ensemble) had no tag for a marked run."""
    from icegan.protocol import summary_text
    samples = pd.DataFrame({"dataset": "casme2", "subject": [f"casme2/s{i}" for i in range(4) for _ in range(3)],
                            "clip": [f"c{i}" for i in range(12)], "label": [0, 1, 2] * 4})
    seen = _prob_run(tmp_path / "seen", samples, seen=["casme2/s1"])
    plain = _prob_run(tmp_path / "plain", samples)
    line = next(x for x in (seen / "metrics.md").read_text().splitlines() if "Selection:" in x)
    assert "Selection: no model selection on the held-out subject, but NOT leak-free (below)." in line
    assert "honest" not in line
    assert "Selection: honest: no model selection on the held-out subject." in (plain / "metrics.md").read_text()
    metrics = json.loads((seen / "metrics.json").read_text())
    assert "[NOT leak-free: the flow network trained on held-out subjects' real motion]" in summary_text(metrics, "x")
    assert "leak-free" not in summary_text(json.loads((plain / "metrics.json").read_text()), "x")
