"""An error raised inside one LOSO fold names the fold (which held-out subject, which fold of the run), and the main
job's errors carry the name of the command that printed them (``train.py`` or ``icegan train``); the Ray-only flags
of the main job are refused without ``--executor ray`` instead of being ignored."""
import numpy as np
import pytest

from icegan.commands import error_text, one_line_errors
from icegan.executors import name_fold_in_error, sequential_map
from icegan.protocol import Fold


def _fold(index: int, subject: str, unit: str = "subject") -> Fold:
    return Fold(index=index, subject=subject, train_idx=np.arange(3), test_idx=np.arange(3, 5), unit=unit)


def _fail_on(subject: str, exc: Exception):
    def fold_fn(fold):
        if fold.subject == subject:
            raise exc
        return np.zeros((len(fold.test_idx), 3))
    return fold_fn


def test_sequential_map_names_the_fold_that_raised():
    """The third fold (index 2, held-out casme2/sub07) raises: the exception keeps its type and message and gains a
    note naming that subject and 'fold 3' (1-based), not the fold before or after it."""
    folds = [_fold(0, "casme2/sub01"), _fold(1, "casme2/sub02"), _fold(2, "casme2/sub07"), _fold(3, "samm/006")]
    done = []
    with pytest.raises(FloatingPointError, match="GAN loss is NaN") as info:
        for fold, _ in sequential_map(_fail_on("casme2/sub07", FloatingPointError("GAN loss is NaN")), folds):
            done.append(fold.subject)
    assert done == ["casme2/sub01", "casme2/sub02"]
    assert info.value.__notes__ == ["(in the fold of held-out subject casme2/sub07, fold 3)"]


def test_the_fold_note_is_added_once_and_says_dataset_for_hde():
    """A leave-one-dataset-out fold is named as a dataset; the same exception passed through two layers that both
    name the fold gets one note, not two."""
    exc = ValueError("no faces")
    fold = _fold(0, "smic", unit="dataset")
    name_fold_in_error(exc, fold)
    name_fold_in_error(exc, fold)
    assert exc.__notes__ == ["(in the fold of held-out dataset smic, fold 1)"]
    assert error_text(exc) == "no faces (in the fold of held-out dataset smic, fold 1)"


def test_error_text_without_notes_is_the_message():
    assert error_text(FileNotFoundError("weights.pt not found")) == "weights.pt not found"


def test_a_command_prints_the_fold_of_its_error_on_one_line(tmp_path, capsys):
    """``icegan loso``-style commands print user errors through one_line_errors: the fold's note is on the same line
    (before: only the message, with nothing saying which of the folds failed)."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = list(dict.fromkeys(toy.samples["subject"]))
    bad = subjects[1]

    @one_line_errors("icegan loso")
    def command(args):
        run_loso(toy.samples, _fail_on(bad, ValueError("the recognizer got an empty batch")), tmp_path / "run",
                 progress=False)
        return 0

    class Args:
        pass

    assert command(Args()) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"icegan loso: error: the recognizer got an empty batch "
                                f"(in the fold of held-out subject {bad}, fold 2)"]


def test_train_py_refuses_ray_flags_without_the_ray_executor(capsys):
    """``--workers 2`` without ``--executor ray`` ran the folds one after another and ignored it; now exit 2 naming
    the flag(s), before any fold runs. A config error is still reported first, with the command's name."""
    from icegan.pipeline import main
    assert main(["--config", "no_such.yaml", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and "no_such.yaml" in err and len(err.splitlines()) == 1
    assert main(["--workers", "2", "--cpus-per-fold", "2"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "train.py: error: --workers and --cpus-per-fold apply to --executor ray only (the folds would run one after "
        "another, in this process); add --executor ray, or leave --workers and --cpus-per-fold out"]
    assert main(["--ray-address", "auto"]) == 2
    assert "train.py: error: --ray-address applies to --executor ray only" in capsys.readouterr().err


def test_icegan_train_names_itself_in_its_errors(tmp_path, capsys):
    """The same refusals under ``icegan train`` say ``icegan train: error:`` (before: a bare ``error:`` with no
    command), for a config error as for a flag."""
    from icegan.cli import main
    missing = tmp_path / "missing.yaml"
    assert main(["train", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan train: error: ") and str(missing) in err and "Traceback" not in err
    assert main(["train", "--workers", "3"]) == 2
    assert capsys.readouterr().err.startswith("icegan train: error: --workers applies to --executor ray only")


def test_a_failing_fold_group_in_a_worker_process_is_named():
    """icegan loso workers=N trains groups of folds in spawned processes (ProcessGroupMap): the worker's exception
    reaches the parent with a note naming the group's held-out subjects and fold numbers (folds 2-3 hold fold index
    1, on which GroupBoom fails); a one-fold group is named as a fold."""
    from _group_helpers import GroupBoom

    from icegan.executors import ProcessGroupMap
    folds = [_fold(i, f"d/s{i}") for i in range(4)]
    with pytest.raises(ValueError, match="group with fold 1 broke") as info:
        list(ProcessGroupMap(1, threads=1)(GroupBoom(), [folds[0:1], folds[1:3]]))
    assert info.value.__notes__ == ["(in the fold group of held-out subjects d/s1, d/s2, folds 2-3)"]
    with pytest.raises(ValueError) as info:
        list(ProcessGroupMap(1, threads=1)(GroupBoom(), [folds[1:2]]))
    assert info.value.__notes__ == ["(in the fold of held-out subject d/s1, fold 2)"]


def test_run_loso_names_the_fold_group_that_failed_in_this_process(tmp_path):
    """run_loso with a fold-group function and no group map (icegan loso's default for grouped networks): the folds
    of the failing group are named, and the groups before it are kept as finished folds."""
    from _group_helpers import GroupBoom

    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = list(dict.fromkeys(toy.samples["subject"]))

    class Scores(GroupBoom):
        def __call__(self, folds):
            super().__call__(folds)
            return [np.full((len(f.test_idx), 3), 1 / 3) for f in folds]

    with pytest.raises(ValueError, match="group with fold 1 broke") as info:
        run_loso(toy.samples, None, tmp_path / "run", folds_fn=Scores(), folds_per_call=2, progress=False)
    assert info.value.__notes__ == [f"(in the fold group of held-out subjects {subjects[0]}, {subjects[1]}, "
                                    f"folds 1-2)"]
