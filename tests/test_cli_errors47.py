"""Bad command-line input as a researcher gives it on their own data, found by an audit of every subcommand: each case
ends with exit code 2 and one line naming the flag or key, what is wrong and what to give, with no traceback, before
any work is done; and no command writes its output over one of its own inputs."""

import cv2
import numpy as np
import pytest

from icegan.cli import main

from _feature_tables import write_feature_table
from _one_line_error import one_line_error


def test_toy_source_without_subjects_is_named_by_its_key(capsys):
    """data.toy_subjects=0 was accepted by the config and failed later, naming make_toy_features' argument."""
    assert main(["loso", "--print-config", "data.source=toy", "data.toy_subjects=0"]) == 2
    one_line_error(capsys, "data.toy_subjects", ">= 1")


@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--resamples", "10"), ("--confidence", "1.5")])
def test_compare_names_its_flag_before_reading_runs(tmp_path, capsys, flag, value):
    """A negative --seed came back as numpy's bare 'expected non-negative integer'; the others named no flag. They are
    refused before the run folders are read (here there are none)."""
    assert main(["compare", str(tmp_path / "no_run"), flag, value]) == 2
    one_line_error(capsys, flag, value)


@pytest.fixture
def model_and_table(tmp_path, capsys):
    """A logistic regression fitted on toy features, and a feature table of toy clips."""
    from icegan.data.toy_features import make_toy_features
    model = tmp_path / "m.pt"
    assert main(["fit", "--out", str(model), "--no-progress", "data.source=toy", "data.toy_subjects=1",
                 "model.name=logreg", "threads=1"]) == 0
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5, datasets=("smic",)))
    capsys.readouterr()
    return model, table


@pytest.mark.parametrize("replaced", ["table", "model"])
def test_predict_never_writes_over_its_inputs(model_and_table, capsys, replaced):
    """`--out` given the --table (or a --model) replaced the clips' feature table (the model) with the predictions."""
    model, table = model_and_table
    target = table if replaced == "table" else model
    before = target.read_bytes()
    assert main(["predict", "--model", str(model), "--table", str(table), "--out", str(target)]) == 2
    one_line_error(capsys, "--out", str(target), f"--{replaced} file")
    assert target.read_bytes() == before


def test_flow_eval_refuses_negative_threads_in_one_line(capsys):
    """torch.set_num_threads(-2) raised a RuntimeError: a traceback."""
    assert main(["flow", "eval", "--model", "tvl1", "--data", "synthetic-face", "--n-pairs", "1",
                 "--threads", "-2"]) == 2
    one_line_error(capsys, "--threads", "-2")


@pytest.mark.parametrize("flag, index", [("--out", 1), ("--flo", 0)])
def test_flow_run_never_writes_over_an_input_image(tmp_path, capsys, flag, index):
    """`flow run a.png b.png --out b.png` replaced the apex frame with the flow picture."""
    rng = np.random.default_rng(0)
    frames = [tmp_path / "onset.png", tmp_path / "apex.png"]
    for f in frames:
        cv2.imwrite(str(f), rng.integers(0, 256, (32, 32), dtype=np.uint8))
    before = frames[index].read_bytes()
    out = ["--out", str(frames[1])] if flag == "--out" else ["--out", str(tmp_path / "f.png"), "--flo", str(frames[0])]
    assert main(["flow", "run", str(frames[0]), str(frames[1]), "--model", "farneback", *out]) == 2
    one_line_error(capsys, flag, str(frames[index]), f"img{index + 1}")
    assert frames[index].read_bytes() == before


@pytest.mark.parametrize("below", [False, True])
def test_features_refuses_an_out_that_cannot_be_a_folder_before_the_work(tmp_path, capsys, below):
    """`icegan features --out FILE` prepared every clip and computed their flow, then failed making FILE/maps."""
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    out = afile / "features" if below else afile
    assert main(["features", "--out", str(out), "--no-progress", "flow.method=farneback"]) == 2
    one_line_error(capsys, "--out", str(afile), "is a file")
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("command", [["gan", "eval"], ["generate", "--onset", "face.png", "--class", "positive",
                                                        "--out", "faces"]])
def test_a_gan_run_folder_given_as_checkpoint_names_its_last_pt(tmp_path, capsys, monkeypatch, command):
    """A run folder given as --checkpoint was answered 'checkpoint not found: <folder>'."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "gan_casme2"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert main([*command, "--checkpoint", str(run)]) == 2
    one_line_error(capsys, "--checkpoint", "is a folder", str(run / "checkpoints" / "last.pt"))


@pytest.mark.parametrize("flag, value", [("--workers", "-3"), ("--cpus-per-fold", "0"), ("--cpus-per-fold", "nan")])
def test_train_refuses_nonsensical_executor_numbers(capsys, flag, value):
    """--workers -3 and --cpus-per-fold 0 were accepted (and reached Ray as they were)."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--print-config", flag, value])
    assert exc.value.code == 2
    one_line_error(capsys, flag, value)


@pytest.mark.parametrize("args, names", [(["--iters", "-1"], ["--iters", "-1"]),
                                         (["--n-pairs", "0"], ["--n-pairs", "synthetic-face"])])
def test_flow_eval_names_the_flag_of_a_bad_count(capsys, args, names):
    """--iters -1 came back as the model's 'iters must be >= 1', --n-pairs 0 as 'no pairs to evaluate': no flag."""
    assert main(["flow", "eval", "--model", "farneback", "--data", "synthetic-face", "--size", "32", *args]) == 2
    one_line_error(capsys, *names)


def test_ensemble_weights_are_named_by_their_flag(tmp_path, capsys):
    """Wrong --weights read 'weights must be 2 non-negative numbers', naming no flag (checked before the run
    folders, which do not exist here)."""
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "e"),
                 "--weights", "1", "-1"]) == 2
    one_line_error(capsys, "--weights", "[1.0, -1.0]")


def test_predict_names_a_missing_device_by_its_flag(model_and_table, tmp_path, capsys):
    """A device this machine lacks was named as the config key ``device='cuda:99'`` ("use device=cpu"), a key icegan
    predict does not have; now as its flag --device, before any model is loaded (cuda:99 exists on no machine)."""
    model, table = model_and_table
    assert main(["predict", "--model", str(model), "--table", str(table), "--out", str(tmp_path / "p.csv"),
                 "--device", "cuda:99"]) == 2
    one_line_error(capsys, "--device='cuda:99'")
    assert not (tmp_path / "p.csv").exists()
