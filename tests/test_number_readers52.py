"""Numbers read from files and the environment: a run's predictions.csv scores (finite), a sample table's labels
(ASCII digits when given as text, :func:`flownet.user_numbers.read_int`'s rule) and torchrun's variables."""
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from icegan.data.features import validate_samples
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs, load_member, read_finished_run
from icegan.protocol import run_loso


# --------------------------------------------------------------------------------------------- predictions.csv


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished LOSO runs of pseudo-random class probabilities on a toy feature set."""
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    root = tmp_path_factory.mktemp("runs")

    def probs(seed):
        def fold_fn(fold):
            z = np.random.default_rng(seed * 1000 + fold.index).normal(size=(len(fold.test_idx), 3))
            e = np.exp(z)
            return e / e.sum(1, keepdims=True)
        return fold_fn
    for s in (1, 2):
        run_loso(toy.samples, probs(s), root / f"r{s}", progress=False)
    return root


def _edited(two_runs, tmp_path, col: str, cell: str):
    """A copy of run r2 whose first row holds ``cell`` in column ``col``; returns (folder, its predictions.csv)."""
    d = tmp_path / "edited"
    shutil.copytree(two_runs / "r2", d)
    f = d / "predictions.csv"
    lines = f.read_text().splitlines()
    cells = lines[1].split(",")
    cells[lines[0].split(",").index(col)] = cell
    f.write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
    return d, f


@pytest.mark.parametrize("cell, shown", [("inf", "inf"), ("-inf", "-inf"), ("Infinity", "inf"), ("1e999", "inf")])
def test_a_score_that_is_not_finite_is_named_by_line_and_column(two_runs, tmp_path, cell, shown):
    """pandas reads 'inf', 'Infinity' and '1e999' in a score column as numbers; no run writes them (run_loso refuses a
    fold's non-finite scores). Every reader of a finished run (icegan compare, merge, nested selection, ensemble)
    names the file, line and column instead of taking an infinite score (an argmax or average of it is arbitrary)."""
    d, f = _edited(two_runs, tmp_path, "score_surprise", cell)
    for read in (read_finished_run, load_member):
        with pytest.raises(EnsembleError) as exc:
            read(d)
        msg = str(exc.value)
        assert msg.startswith(f"{f}, line 2, column score_surprise: {shown!r} is not a finite number; "), msg
        assert "edited" in msg and "rerun" in msg, msg
    with pytest.raises(EnsembleError, match="line 2, column score_surprise: .* is not a finite number"):
        ensemble_runs([two_runs / "r1", d], tmp_path / "ens")
    assert not (tmp_path / "ens" / "ensemble.json").exists()


def test_finite_scores_of_any_size_are_still_read(two_runs, tmp_path):
    """A large or negative finite score (a logit of a run without probabilities) is read as before by the readers
    that need no probabilities."""
    d, _ = _edited(two_runs, tmp_path, "score_surprise", "-1e300")
    h, p = read_finished_run(d)
    assert p["score_surprise"].iloc[0] == -1e300
    with pytest.raises(EnsembleError, match="are not class probabilities"):
        load_member(d)


@pytest.mark.parametrize("col", ["y_true", "y_pred"])
@pytest.mark.parametrize("cell, what", [("inf", "is not a class id"), ("1.5", "is not a class id"),
                                        ("１", "is not a class id"), ("1_0", "is not a class id"),
                                        ("True", "is not a class id"), ("3", "is outside the class ids 0..2"),
                                        ("-1", "is outside the class ids 0..2")])
def test_class_ids_are_still_refused_without_a_numpy_warning(two_runs, tmp_path, col, cell, what):
    """y_true / y_pred cells that are no class id stay refused with the line and column, and an infinite one no longer
    prints numpy's 'invalid value encountered in remainder' warning before the error."""
    d, f = _edited(two_runs, tmp_path, col, cell)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(EnsembleError) as exc:
            read_finished_run(d)
    assert str(exc.value).startswith(f"{f}, line 2, column {col}: ") and what in str(exc.value), str(exc.value)


# --------------------------------------------------------------------------------------------- sample labels


def _table(*labels) -> pd.DataFrame:
    """A sample table of one clip per label (an object column: the labels as given)."""
    n = len(labels)
    return pd.DataFrame({"dataset": ["casme2"] * n, "subject": [f"casme2/s{i}" for i in range(n)],
                         "clip": [f"c{i}" for i in range(n)], "label": pd.Series(list(labels), dtype=object)})


@pytest.mark.parametrize("label", ["\uff11", "\u0661", "\u00b9", "1e0", "1_0", "1.0", "0x1", "", b"1", True, False,
                                   np.True_, 1.5, float("nan"), float("inf"), None, 10 ** 400],
                         ids=lambda v: repr(v)[:12])
def test_a_label_that_is_no_class_id_is_refused_naming_the_row(label):
    """float() reads fullwidth and Arabic-Indic digits, '1e0', '1_0' and True as 1: a text label follows the rule of
    the numbers a researcher types (flownet.user_numbers.read_int: ASCII digits, an optional sign), a bool is no class
    id, and an int too large for a float is refused as a label, not an OverflowError."""
    with pytest.raises(ValueError) as exc:
        validate_samples(_table(0, label), source="clips.csv")
    msg = str(exc.value)
    assert msg.startswith(f"clips.csv: row 1 (clip 'c1'): label {label!r} is not a class id in 0..2"), msg


@pytest.mark.parametrize("label, want", [(1, 1), (np.int64(2), 2), (np.int8(0), 0), (1.0, 1), (np.float32(2.0), 2),
                                         ("1", 1), (" 2 ", 2), ("+1", 1), ("0", 0), (np.str_("2"), 2)], ids=repr)
def test_labels_already_parsed_or_in_ascii_digits_are_read(label, want):
    """Ints, numpy integers and whole floats (a pandas label column of ints, or of floats next to an empty cell) are
    class ids as before; so is text of ASCII digits, blanks around it ignored."""
    out = validate_samples(_table(0, label))
    assert out["label"].tolist() == [0, want] and out["label"].dtype == np.int64


@pytest.mark.parametrize("label", [-1, -1.0, np.int64(-1), "-1"], ids=repr)
def test_the_unlabelled_id_is_read_only_when_allowed(label):
    assert validate_samples(_table(0, label), unlabelled=True)["label"].tolist() == [0, -1]
    with pytest.raises(ValueError, match="row 1 .*is not a class id in 0..2"):
        validate_samples(_table(0, label))


@pytest.mark.parametrize("dtype", ["int64", "int32", "float64", "Int64"])
def test_label_columns_of_pandas_number_types_are_read(dtype):
    """A table read by pandas with an int, float or nullable-int label column are read as before."""
    t = _table(0, 1, 2).astype({"label": dtype})
    assert validate_samples(t)["label"].tolist() == [0, 1, 2]


def test_a_bool_label_column_is_refused():
    with pytest.raises(ValueError, match=r"row 0 \(clip 'c0'\): label False is not a class id"):
        validate_samples(_table(0, 1).astype({"label": bool}))


def test_the_recorded_tables_are_read(shared_data):
    """The MEGC2019 composite (442 clips) and the toy set keep their labels."""
    from icegan.data.features import load_megc2019_features
    megc = load_megc2019_features(shared_data / "megc2019_htnet")
    assert np.bincount(megc.samples["label"], minlength=3).tolist() == [250, 109, 83]
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    assert validate_samples(toy.samples)["label"].tolist() == toy.samples["label"].tolist()


# --------------------------------------------------------------------------------------------- torchrun's variables

_LAUNCH = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize("var", ["WORLD_SIZE", "RANK", "LOCAL_RANK"])
@pytest.mark.parametrize("value", ["abc", "1.0", "\uff12", "2_0"])
def test_a_launch_variable_that_is_no_integer_is_named(monkeypatch, var, value):
    """int() of torchrun's variables raised a bare ValueError deep in the call (or took '２' and '2_0'); now one error
    names the variable, its value and torchrun, before the process group is joined."""
    import torch

    from icegan import distributed
    for k, v in {**_LAUNCH, var: value}.items():
        monkeypatch.setenv(k, v)
    joined = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **kw: joined.append(backend))
    with pytest.raises(RuntimeError) as exc:
        distributed.init_from_env()
    msg = str(exc.value)
    assert msg.startswith(f"{var}={value!r} is not an integer: torchrun sets it"), msg
    assert "unset it" in msg and joined == []


def test_launch_variables_of_digits_are_read(monkeypatch):
    """torchrun's own values (and blanks around them) join as before; WORLD_SIZE unset, empty or 1 is no launch, and
    then RANK / LOCAL_RANK are not read."""
    import torch

    from icegan import distributed
    for k, v in {**_LAUNCH, "WORLD_SIZE": " 2 "}.items():
        monkeypatch.setenv(k, v)
    gpus, joined = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", gpus.append)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **kw: joined.append(backend))
    assert distributed.init_from_env(device_type="cuda") is True
    assert joined == ["nccl"] and gpus == [1]
    for world in ("", "1"):
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("RANK", "abc")
        assert distributed.init_from_env() is False


def test_local_device_names_a_bad_local_rank(monkeypatch):
    import torch

    from icegan import distributed
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 3)
    monkeypatch.setenv("LOCAL_RANK", "gpu1")
    with pytest.raises(RuntimeError, match=r"^LOCAL_RANK='gpu1' is not an integer: torchrun sets it"):
        distributed.local_device(torch.device("cuda"))
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
