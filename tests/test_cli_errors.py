"""Bad input is named where it is given, in one line: devices this machine lacks, foreign checkpoints, wrong
dataset roots, a config of the other flow-training mode; never a driver error or a traceback from deep inside."""
import json

import pandas as pd
import pytest
import torch

from flownet.devices import resolve_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_names_this_machine_has():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want and resolve_device(None).type == want


def test_auto_without_a_gpu_is_the_cpu(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_without_cuda_names_the_setting(no_cuda):
    with pytest.raises(ValueError, match=r"train.device='cuda' but CUDA is not available here .*use train.device=cpu"):
        resolve_device("cuda", "train.device")
    with pytest.raises(ValueError, match=r"device='cuda:1' but CUDA is not available"):
        resolve_device("cuda:1")


def test_cuda_index_beyond_the_gpus(one_gpu):
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"'cuda:3' but this machine has 1 CUDA device\(s\) \(cuda:0..cuda:0\)"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("name,msg", [("gpu", "is not a device name"), ("cuda:x", "is not a device name"),
                                      ("meta", "runs on cpu, cuda or mps, not meta")])
def test_unknown_names(name, msg):
    with pytest.raises(ValueError, match=msg):
        resolve_device(name, "--device")


def test_main_job_refuses_the_device_at_config_load(no_cuda):
    from icegan.config import ConfigError
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match="device='cuda' but CUDA is not available"):
        load_main_config(None, ["device=cuda"])
    assert load_main_config(None, ["device=auto"]).device == "auto"


def test_commands_report_the_device_in_one_line(no_cuda, tmp_path, capsys):
    from icegan.cli import main
    # one error line of the command, exit 2, before the run folder exists (was a bare 'config ...' SystemExit, exit 1,
    # from the fold runner, which stopped an icegan suite the same way)
    assert main(["loso", "--config", "configs/demo_features.yaml", "--out", str(tmp_path / "l"), "device=cuda",
                 "--no-progress"]) == 2
    assert "icegan loso: error: device='cuda' but CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "l").exists()
    import cv2
    import numpy as np
    frames = [str(tmp_path / f"{k}.png") for k in (1, 2)]
    for f in frames:
        cv2.imwrite(f, np.zeros((32, 32), np.uint8))
    assert main(["flow", "run", *frames, "--model", "tvl1", "--device", "cuda", "--out", str(tmp_path / "f.png")]) == 2
    assert "device='cuda' but CUDA is not available" in capsys.readouterr().err
    assert main(["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", "--device", "cuda",
                 f"out_dir={tmp_path}"]) == 2
    assert "icegan gan train: error: train.device='cuda' but CUDA" in capsys.readouterr().err
    assert not any(tmp_path.glob("*/config.yaml"))


@pytest.mark.parametrize("over, msg", [
    ("train.epochs=-1", "train.epochs must be >= 1, got -1"),    # was "done: 0 epochs" and a checkpoint never written
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.lr=0", "train.lr must be a finite number > 0, got 0.0"),
    ("loss.lambda_adv=-0.1", "loss.lambda_adv must be a finite number >= 0, got -0.1"),
    ("model.routing_iters=0", "model.routing_iters must be >= 1, got 0"),
])
def test_gan_train_refuses_settings_out_of_range_before_any_work(tmp_path, capsys, over, msg):
    """`icegan gan train` answers a setting out of its range with one line naming the key, before it reads the
    pairs or computes the motion prior, and writes no run folder."""
    from icegan.cli import main
    assert main(["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", f"out_dir={tmp_path}", over]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_flow_training_checks_before_making_its_folder(no_cuda, tmp_path):
    from flownet.train import FlowTrainConfig, start_run
    from icegan.config import load_config
    cfg = load_config(FlowTrainConfig, "configs/flow_srflownet_fast.yaml", [f"out_dir={tmp_path}", "name=x",
                                                                               "train.device=cuda"])
    with pytest.raises(ValueError, match="train.device='cuda'"):
        start_run(cfg)
    assert not (tmp_path / "x").exists()


def test_gan_and_data_commands_report_bad_input_in_one_line(tmp_path, capsys):
    """A missing or foreign checkpoint and a wrong dataset root end the command with one line on stderr (exit 2),
    naming the file, instead of a traceback."""
    from icegan.cli import main
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    cases = [(["gan", "eval", "--checkpoint", str(tmp_path / "none.pt")], "icegan gan eval: error: checkpoint not found"),
             (["gan", "eval", "--checkpoint", str(junk), "--device", "cpu"],
              "icegan gan eval: error: ICE-GAN checkpoint: " + str(junk) + " cannot be read by torch.load"),
             (["generate", "--checkpoint", str(junk), "--onset", str(junk), "--class", "all", "--out", str(tmp_path),
               "--device", "cpu"], "icegan generate: error: ICE-GAN checkpoint"),
             (["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "nowhere")],
              "icegan data check: error: casme2 root not found: " + str(tmp_path / "nowhere") + ". Put or symlink "
              "your copy of the casme2 release there, in its official layout (e.g. "
              "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg in it)"),
             (["data", "check", "--dataset", "smic", "--root", str(tmp_path / "nowhere")],
              "icegan data check: error: smic root not found: " + str(tmp_path / "nowhere") + ". Put or symlink"),
             (["data", "check", "--dataset", "samm", "--root", str(tmp_path)],
              "icegan data check: error: " + str(tmp_path) + ": no samm subject folders found"),
             (["prepare", "--config", "configs/prepare_casme2.yaml", f"cache_root={tmp_path / 'cache'}", "datasets=[]"],
              "icegan prepare: error: prepare: no datasets configured")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_root_is_pointed_at_the_way_the_command_takes_it(tmp_path, capsys, monkeypatch):
    """`icegan data check` took the root from --root and names it; a config's root (icegan prepare, train.py, which
    have no --root) is pointed at by its `root:` entry, an override of it, and ICEGAN_DATA, which moves {data_root}."""
    from icegan.cli import main
    from icegan.pipeline import main as train_main
    nowhere = tmp_path / "nowhere"
    assert main(["data", "check", "--dataset", "samm", "--root", str(nowhere)]) == 2
    assert capsys.readouterr().err.strip().endswith("in its official layout (e.g. SAMM/006/006_1_2/006_05562.jpg in "
                                                    "it), or give its folder with --root")
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "mine"))
    for argv, run, key in ((["prepare", "--config", "configs/prepare_casme2.yaml", f"datasets.0.root={nowhere}",
                             f"cache_root={tmp_path / 'cache'}"], main, " datasets.N.root=DIR"),
                           (["--config", "configs/casme2.yaml", f"data.prepare.datasets.0.root={nowhere}", "--out",
                             str(tmp_path / "run"), f"data.prepare.cache_root={tmp_path / 'cache'}", "--no-progress"],
                            train_main, " data.prepare.datasets.N.root=DIR")):     # the key of its own config
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"casme2 root not found: {nowhere}" in err and "Traceback" not in err, err
        assert "--root" not in err and "`root:` of the casme2 entry" in err
        assert key in err, err
        assert f"{{data_root}} is {tmp_path / 'mine'} (set ICEGAN_DATA to move it)" in err


def test_predict_with_a_file_that_is_no_model_says_so_without_unsafe_advice(tmp_path, capsys):
    """A pickle of other objects, a NumPy file or a text file given as --model: one line saying it is not an icegan
    model file, never torch's advice to load it with weights_only=False (nor its warning on the pickle protocol)."""
    import collections
    import pickle
    import warnings

    import numpy as np

    from icegan.cli import main
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"clf": collections.OrderedDict, "x": object}))
    np.save(tmp_path / "maps.npy", np.zeros(3))
    (tmp_path / "notes.txt").write_text("hello\n")
    for model in (tmp_path / "pickle.pt", tmp_path / "maps.npy", tmp_path / "notes.txt"):
        with warnings.catch_warnings(record=True) as seen:      # nor torch's warning about the pickle protocol
            warnings.simplefilter("always")
            assert main(["predict", "--model", str(model), "--table", str(tmp_path / "t.csv"),
                         "--out", str(tmp_path / "p.csv")]) == 2
        assert not seen, [str(w.message) for w in seen]
        err = capsys.readouterr().err
        assert err.startswith(f"icegan predict: error: {model} cannot be read: it is not an icegan model file "
                              f"(made by `icegan fit`)"), err
        assert len(err.strip().splitlines()) == 1 and "weights_only" not in err and "Traceback" not in err


def test_flow_train_names_the_mode_a_config_is_for(capsys, tmp_path):
    """A self-supervised config given to the supervised trainer (or the reverse) is refused with the command that
    runs it, not only with the unknown key; another command's config is named with its command (other_config_hint)."""
    from icegan.cli import main
    assert main(["flow", "train", "--config", "configs/flow_selfsup.yaml", "train.steps=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'loss'" in err
    assert "configs/flow_selfsup.yaml is a config for --mode selfsup: run icegan flow train --mode selfsup" in err
    assert main(["flow", "train", "--mode", "selfsup", "--config", "configs/flow_srflownet_fast.yaml"]) == 2
    assert "is a config for --mode supervised" in capsys.readouterr().err
    assert main(["flow", "train", "--config", "configs/gan_casme2_cpu.yaml"]) == 2      # another command's
    assert ("configs/gan_casme2_cpu.yaml is a config for `icegan gan train`: run icegan gan train --config "
            "configs/gan_casme2_cpu.yaml") in capsys.readouterr().err
    (tmp_path / "none.yaml").write_text("foo: 1\n", encoding="utf-8")                  # no command's: the error alone
    assert main(["flow", "train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "is a config for" not in capsys.readouterr().err


def test_ctrl_c_ends_in_one_line_and_the_rerun_resumes(monkeypatch, tmp_path, capsys):
    """Ctrl-C during a LOSO run: exit 130 and one line saying the finished folds are kept (no traceback); the same
    command then resumes from them and ends with the metrics of an uninterrupted run."""
    import icegan.commands.loso as loso_cmd
    from icegan.cli import main
    from icegan.pipeline import main as train_main
    args = ["loso", "--config", "configs/features_logreg.yaml", "max_folds=4", "workers=1", "threads=1",
            "--no-progress"]
    real_fit = loso_cmd.FeatureFolds.__call__
    calls = {"n": 0}

    def interrupt_on_third(self, folds):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_fit(self, folds)
    monkeypatch.setattr(loso_cmd.FeatureFolds, "__call__", interrupt_on_third)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == ("icegan loso: interrupted: the folds finished so far are kept (if any: a grouped network's "
                           "folds finish together, with their group); run the same command again to resume from them")
    monkeypatch.setattr(loso_cmd.FeatureFolds, "__call__", real_fit)
    assert pd.read_csv(tmp_path / "cut" / "predictions.csv")["subject"].nunique() == 2
    assert main([*args, "--out", str(tmp_path / "cut")]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert (json.loads((tmp_path / "cut" / "metrics.json").read_text())
            == json.loads((tmp_path / "whole" / "metrics.json").read_text()))
    monkeypatch.setattr("icegan.pipeline.run_from_args", lambda a: (_ for _ in ()).throw(KeyboardInterrupt))
    assert train_main(["--out", str(tmp_path / "t")]) == 130
    assert "train.py: interrupted: the folds finished so far are kept" in capsys.readouterr().err


def test_recognizers_take_auto_and_name_a_missing_gpu(no_cuda):
    """The training entry points resolve the device themselves: ``auto`` is the CPU here and gives the CPU's
    predictions exactly; ``cuda`` is refused with the message of :func:`resolve_device`."""
    import numpy as np

    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import make_folds
    from icegan.recognition import RecognizerConfig, fit_predict_folds, fit_recognizer
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    cfg = RecognizerConfig(epochs=2, batch_size=16)
    run = lambda dev: fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, device=dev, progress=False)
    for a, b in zip(run("auto"), run("cpu")):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        run("cuda")
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        fit_recognizer(cfg, fs.features, fs.labels, device="cuda", progress=False)
    assert fit_recognizer(cfg, fs.features, fs.labels, device="auto", progress=False)(fs.features[:2]).shape == (2, 3)


@pytest.mark.parametrize("gpu", [False, True])
def test_auto_with_fold_processes_runs_on_a_cpu_machine_only(monkeypatch, gpu):
    """``device=auto workers=2`` (the Off-TANet config's processes) is accepted where auto means the CPU, and refused
    with the value to set where auto would take a GPU; ``cuda`` with workers is refused at config load."""
    from icegan.commands.loso import LosoConfig, fold_runner
    from icegan.data.toy_features import make_toy_features
    from icegan.executors import ProcessGroupMap
    from icegan.recognizer_config import RecognizerConfig
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(gpu))
    cfg = LosoConfig(device="auto", workers=2, threads=1, model=RecognizerConfig(folds_per_group=2))
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    if gpu:
        with pytest.raises(SystemExit, match=r"workers=2 trains fold groups in CPU processes; with device=auto "
                                             r"\(cuda\) set workers=1"):
            fold_runner(cfg, fs, progress=False)
        from icegan.commands.loso import check_run           # the CLI and icegan suite: before any run folder
        with pytest.raises(ValueError, match=r"workers=2 trains fold groups in CPU processes; with device=auto "
                                             r"\(cuda\) set workers=1"):
            check_run(cfg, fs)
    else:
        _, per_call, group_map = fold_runner(cfg, fs, progress=False)
        assert per_call == 2 and isinstance(group_map, ProcessGroupMap) and group_map.workers == 2
    with pytest.raises(ValueError, match="with device=cuda set workers=1"):
        LosoConfig(device="cuda", workers=2)


@pytest.mark.parametrize("over, msg", [
    (["model.epochs=0"], "model.epochs must be >= 1, got 0"),
    (["model.seeds=-1"], "model.seeds must be >= 1"),
    (["model.lr=.nan"], "model.lr must be a finite number > 0, got nan"),
    (["model.name=logreg", "model.logreg_C=-1"], "model.logreg_C must be a finite number > 0, got -1.0"),
    (["model.dropout=1.5"], "model.dropout must lie in [0, 1)"),
    (["threads=-1"], "threads must be >= 0"),
])
def test_loso_refuses_nonsensical_recognizer_settings_in_one_line(tmp_path, capsys, over, msg):
    """`icegan loso` answers a recognizer setting outside its range with one line naming the key (no torch/sklearn
    traceback, no silent no-op training) and leaves no run folder."""
    from icegan.cli import main
    out = tmp_path / "r"
    assert main(["loso", "--out", str(out), "--no-progress", "data.source=toy", "max_folds=1", "workers=1",
                 *over]) == 2
    err = capsys.readouterr().err
    assert msg in err and "input_size" not in err and "Traceback" not in err
    assert not out.exists()


def test_a_diverged_loso_fold_is_one_line_and_the_folds_before_it_are_kept(tmp_path, capsys, monkeypatch):
    """A fold whose model gives NaN scores (training diverged) ends `icegan loso` with one line saying so and what to
    change (was a ValueError traceback about fold_fn); the folds finished before it stay in predictions.csv."""
    import numpy as np

    import icegan.recognition as recognition
    from icegan.cli import main
    real = recognition.fit_predict_folds

    def diverging(*a, **k):                    # the second fold's model gives NaN scores
        scores = [np.asarray(s, dtype=np.float64) for s in real(*a, **k)]
        return [s * np.nan if f.index == 1 else s for f, s in zip(a[4], scores)]
    monkeypatch.setattr(recognition, "fit_predict_folds", diverging)
    out = tmp_path / "r"
    assert main(["loso", "--config", "configs/features_logreg.yaml", "--out", str(out), "--no-progress",
                 "data.source=toy", "max_folds=3", "workers=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("icegan loso: error: fold '") and "NaN or Inf: its training diverged" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert (out / "predictions.csv").read_text().count("\n") > 1           # the first fold's rows are kept


def test_a_utf16_config_file_is_one_line_naming_it(tmp_path, capsys):
    """A config saved as UTF-16 (PowerShell's `>`) is one error line naming the file and saying to save it as UTF-8."""
    from icegan.cli import main
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model:\n  epochs: 2\n", encoding="utf-16")
    assert main(["loso", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"icegan loso: error: {cfg}: not UTF-8 text") and err.endswith("save it as UTF-8")


@pytest.mark.parametrize("kw, msg", [
    (dict(name="offtanet", width=3), "recognizer.width=3 applies to ststnet only, not offtanet"),
    (dict(name="offtanet", domain_bn=True), "recognizer.domain_bn applies to ststnet only"),
    (dict(name="logreg", seeds=2), "recognizer.seeds=2 ensembles networks; logreg is fitted once per fold (set "
                                   "recognizer.seeds=1; for the random forest raise recognizer.forest_trees instead)"),
    (dict(name="logreg", shift_px=1, ema_decay=0.5), "recognizer.shift_px=1, recognizer.ema_decay=0.5 apply to the "
                                                     "networks"),
    (dict(name="ststnet", domain_bn=True, mixup_alpha=0.2), "recognizer.domain_bn and recognizer.mixup_alpha cannot"),
])
def test_train_py_recognizer_errors_name_the_recognizer_section(kw, msg):
    """The main job's recognizer settings are `recognizer.<key>` in its config: every refusal names them so (not
    `model.<key>`, the key of `icegan loso`, which a train.py user cannot set)."""
    from icegan.pipeline import RecognizerSection
    with pytest.raises(ValueError) as exc:
        RecognizerSection(**kw)
    assert msg in str(exc.value) and "model." not in str(exc.value)


def test_train_py_recognizer_fit_errors_name_the_recognizer_section():
    import torch

    from icegan.pipeline import RecognizerSection
    from icegan.recognition import fit_recognizer
    x, y = torch.rand(6, 3, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"^recognizer.shift_px must lie in 0..27 pixels \(0 = off\), got 40"):
        fit_recognizer(RecognizerSection(name="ststnet", epochs=1, shift_px=40), x, y, progress=False)  # settings


def test_a_closed_stdout_ends_the_command_quietly():
    """`icegan ... | head` whose reader stopped: Python's BrokenPipeError traceback (and its 'Exception ignored' at
    exit) filled the terminal and the exit code was 1. Now nothing is printed and the exit code is 141, as for a
    program stopped by SIGPIPE; a broken pipe that is not stdout's is still raised."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for argv in (["-m", "icegan.cli", "loso", "--config", "configs/features_logreg.yaml", "--print-config"],
                 ["train.py", "--print-config"]):
        p = subprocess.Popen([sys.executable, *argv], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()                                     # the reader is gone before the first line
        err = p.stderr.read().decode()
        p.stderr.close()
        assert (p.wait(), err) == (141, ""), argv
    other = subprocess.run([sys.executable, "-c", "from icegan.commands import stdout_closed; "
                            "stdout_closed(BrokenPipeError('a worker pipe'))"], cwd=root, capture_output=True, text=True)
    assert other.returncode == 1 and other.stderr.strip().endswith("BrokenPipeError: a worker pipe"), other.stderr


def test_a_broken_pipe_is_taken_for_stdouts_only_when_stdout_is_a_pipe_without_reader(monkeypatch):
    """stdout_closed in-process: a stdout with no file descriptor (a notebook's, a StringIO) cannot have broken, so a
    worker's broken pipe is raised again (it was taken for stdout's: exit 141, nothing printed, the error lost); a
    pipe whose reader is alive raises it again too; a pipe without reader gives 141 and stdout then writes to
    os.devnull."""
    import io
    import os
    import sys

    from icegan.commands import stdout_closed
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with pytest.raises(BrokenPipeError, match="a worker pipe"):
        stdout_closed(BrokenPipeError("a worker pipe"))
    for reader_alive in (True, False):
        r, w = os.pipe()
        with open(w, "w") as out:
            monkeypatch.setattr(sys, "stdout", out)
            if reader_alive:
                with pytest.raises(BrokenPipeError, match="a worker pipe"):
                    stdout_closed(BrokenPipeError("a worker pipe"))
            else:
                os.close(r)
                assert stdout_closed(BrokenPipeError("stdout")) == 141
                out.write("x" * 100_000)
                out.flush()                                 # no BrokenPipeError: the fd is os.devnull now
        if reader_alive:
            os.close(r)


def test_a_suite_dry_run_into_a_closed_pipe_ends_quietly(monkeypatch, capsys, tmp_path):
    """`icegan suite --dry-run | head -1` with an unbuffered stdout (PYTHONUNBUFFERED=1, or a plan longer than the
    pipe's buffer): the broken pipe of the plan's lines was caught with the suite's errors (an OSError) and printed
    as 'icegan suite: error: [Errno 32] Broken pipe', exit 2; now it ends as any command whose stdout reader went
    away: exit 141, nothing printed."""
    import os
    import sys
    from pathlib import Path

    from icegan.cli import main
    configs = Path(__file__).resolve().parents[1] / "configs"
    config = tmp_path / "s.yaml"
    config.write_text("name: s\nseeds: [0, 1, 2]\nruns:\n" + "".join(
        f"  - {{label: r{i}, config: {configs}/features_logreg.yaml, overrides: [threads=1]}}\n" for i in range(3)))
    r, w = os.pipe()
    os.close(r)                                             # the reader is gone before the first line
    with open(w, "w", buffering=1) as out:                 # each line written at once, as when unbuffered
        monkeypatch.setattr(sys, "stdout", out)
        rc = main(["suite", "--config", str(config), "--out", str(tmp_path / "s"), "--dry-run"])
        monkeypatch.undo()
    assert (rc, capsys.readouterr().err) == (141, "")


def test_a_folder_that_cannot_be_made_or_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    """--out under a file, a write refused or a full disk ended icegan loso and train.py in a traceback from pathlib
    or io; now one line names the reason and the path, and for a full disk what to do and that the folds are kept.
    An OSError naming no file that is neither (an I/O error of a device) keeps its traceback: not the user's to fix."""
    import errno

    import icegan.protocol as protocol
    from icegan.cli import main
    from icegan.pipeline import main as train_main
    (tmp_path / "afile").write_text("")
    loso = ["loso", "--config", "configs/features_logreg.yaml", "--no-progress", "data.source=toy", "max_folds=1"]
    assert main([*loso, "--out", str(tmp_path / "afile" / "x")]) == 2
    assert capsys.readouterr().err == (f"icegan loso: error: Not a directory: {tmp_path / 'afile' / 'x'}; a file "
                                       "stands where a folder is needed: give another path\n")
    assert train_main(["--out", str(tmp_path / "afile" / "y")]) == 2
    assert capsys.readouterr().err.startswith(f"train.py: error: Not a directory: {tmp_path / 'afile' / 'y'}; ")

    def refused(code):
        def write(path, text):
            raise OSError(code, "message of the system")
        return write
    monkeypatch.setattr(protocol, "write_text_whole", refused(errno.ENOSPC))
    assert main([*loso, "--out", str(tmp_path / "full")]) == 2
    assert capsys.readouterr().err == (f"icegan loso: error: message of the system (writing to --out "
                                       f"{tmp_path / 'full'} or the data cache); free space on that disk, or write to "
                                       "another, then run the same command again: the finished folds are kept\n")
    monkeypatch.setattr(protocol, "write_text_whole", refused(errno.EROFS))
    assert main([*loso, "--out", str(tmp_path / "ro")]) == 2
    assert capsys.readouterr().err == (f"icegan loso: error: message of the system (writing to --out "
                                       f"{tmp_path / 'ro'} or the data cache); check the permissions of that path "
                                       "(for an output, a folder you may write)\n")
    monkeypatch.setattr(protocol, "write_text_whole", refused(errno.EIO))
    with pytest.raises(OSError, match="message of the system"):
        main([*loso, "--out", str(tmp_path / "io")])


@pytest.mark.parametrize("exc, command, line", [
    (OSError(28, "No space left on device"), "train.py", "train.py: error: No space left on device; free space on "
     "that disk, or write to another, then run the same command again: the finished folds are kept"),
    (OSError(122, "Disk quota exceeded", "/r/x.pt"), "gan train", "icegan gan train: error: Disk quota exceeded: "
     "/r/x.pt; free space on that disk, or write to another"),
    (OSError(13, "Permission denied", "/r/c.yaml"), "flow train", "icegan flow train: error: Permission denied: "
     "/r/c.yaml; check the permissions of that path (for an output, a folder you may write)"),
    (OSError(1, "Operation not permitted"), "prepare", "icegan prepare: error: Operation not permitted; check the "
     "permissions of that path (for an output, a folder you may write)"),
    (OSError(17, "File exists", "/r/out"), "table", "icegan table: error: File exists: /r/out; a file stands where a "
     "folder is needed: give another path"),
    (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "suite", "icegan suite: error: Invalid cross-device "
     "link: /a -> /b"),
    (FileExistsError("/r/features.csv exists; give another --out"), "features", "icegan features: error: "
     "/r/features.csv exists; give another --out"),
    (OSError("frame file missing: /r/img3.jpg"), "flow train", "icegan flow train: error: frame file missing: "
     "/r/img3.jpg"),
])
def test_file_system_errors_say_what_to_do(capsys, exc, command, line):
    """Each kind the one-line report knows: a full disk or quota (the folds kept only for a resumable command), a
    refused access (read or write), a file where a folder is needed, a second path, the project's own messages."""
    from icegan.commands import file_system_error
    assert file_system_error(command, exc) == 2
    assert capsys.readouterr().err == line + "\n"


def test_suite_reports_a_full_disk_like_the_other_commands(tmp_path, capsys, monkeypatch):
    """icegan suite caught every OSError itself, printing '[Errno 28] ...' without what to do, and a device's I/O
    error naming no file as one line; now both go the way of the other commands."""
    import errno

    import icegan.suite as suite
    from icegan.cli import main

    def failing(code):
        def run_suite(*a, **k):
            raise OSError(code, "message of the system")
        return run_suite
    monkeypatch.setattr(suite, "run_suite", failing(errno.ENOSPC))
    assert main(["suite", "--config", "configs/suite_composite.yaml", "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err == (f"icegan suite: error: message of the system (writing to --out "
                                       f"{tmp_path / 's'} or the data cache); free space on that disk, or write to "
                                       "another, then run the same command again: the finished folds are kept\n")
    monkeypatch.setattr(suite, "run_suite", failing(errno.EIO))
    with pytest.raises(OSError, match="message of the system"):
        main(["suite", "--config", "configs/suite_composite.yaml", "--out", str(tmp_path / "s")])
