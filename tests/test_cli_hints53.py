"""Hints of the fifty-third session: `icegan gan train --out DIR` names the overrides that choose its run folder;
`icegan compare` of a null run names data.permute_labels; an oracle_epoch run of one recorded epoch per fold says no
epoch was picked; figure titles escape control characters."""
from __future__ import annotations

import pytest

from icegan.cli import build_parser, parse_with_overrides


@pytest.mark.parametrize("argv, folder", [
    (["--out", "runs/g"], "runs/g"),
    (["--out=runs/g"], "runs/g"),
    (["train.epochs=2", "--out", "runs/g", "data.img_size=64"], "runs/g"),
    (["--out"], "DIR"),
    (["--out", "train.epochs=2"], "DIR"),            # an override after a bare --out is not taken for the folder
])
def test_gan_train_out_names_the_out_dir_override(argv, folder, capsys):
    """`--out DIR`, the run folder of icegan loso, gan eval and generate, was answered by a bare 'unrecognized
    arguments: --out' (and DIR taken for an override); icegan gan train trains into out_dir/name."""
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), ["gan", "train", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: icegan gan train ")
    assert "icegan gan train: error: icegan gan train takes no --out: it trains into out_dir/name" in err
    assert f"overrides out_dir={folder} name=NAME" in err and "unrecognized" not in err


def test_gan_train_help_does_not_offer_out(capsys):
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), ["gan", "train", "--help"])
    assert "--out" not in capsys.readouterr().out


def test_gan_eval_and_generate_keep_their_out():
    args = parse_with_overrides(build_parser(), ["gan", "eval", "--checkpoint", "last.pt", "--out", "ev"])
    assert args.out == "ev"
    args = parse_with_overrides(build_parser(), ["generate", "--checkpoint", "c.pt", "--onset", "f.png", "--class",
                                                 "all", "--out", "faces"])
    assert args.out == "faces"


def _toy_run(folder, *overrides):
    from icegan.cli import main
    assert main(["loso", "--out", str(folder), "--no-progress", "data.source=toy", "data.toy_subjects=2",
                 "model.name=logreg", "max_folds=2", "workers=1", "threads=1", *overrides]) == 0
    return folder


@pytest.fixture(scope="module")
def real_and_null(tmp_path_factory):
    """Toy runs: the real labels, the same recipe of another seed, and null runs (data.permute_labels) of seeds 0
    and 1."""
    root = tmp_path_factory.mktemp("runs")
    return {"real": _toy_run(root / "real"), "real_s1": _toy_run(root / "real_s1", "seed=1"),
            "null": _toy_run(root / "null", "data.permute_labels=0"),
            "null1": _toy_run(root / "null1", "data.permute_labels=1")}


@pytest.mark.parametrize("a, b", [("real", "null"), ("null", "real"), ("null", "null1")])
def test_compare_of_a_null_run_names_data_permute_labels(real_and_null, a, b, capsys):
    """A null run (data.permute_labels >= 0) compared with a run of the real labels was refused with 'cover different
    clips or labels; a paired comparison needs the same LOSO over the same data': nothing said why."""
    from icegan.cli import main
    runs = real_and_null
    assert main(["compare", f"A={runs[a]}", f"B={runs[b]}", "--resamples", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan compare: error: 'B") and "are scored against different labels" in err
    seeds = {"real": -1, "null": 0, "null1": 1}
    assert f"{runs[b]} was run with data.permute_labels={seeds[b]}" in err
    assert f"{runs[a]} with data.permute_labels={seeds[a]}" in err
    assert "a paired comparison needs runs of one data.permute_labels" in err
    assert ("(a null run, labels permuted)" in err) and ("(the real labels)" in err) == ("real" in (a, b))


def test_compare_entry_mixing_a_null_run_names_data_permute_labels(real_and_null, capsys):
    from icegan.cli import main
    runs = real_and_null
    assert main(["compare", f"seeds={runs['real'].parent}/[rn]*", "--resamples", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan compare: error: entry 'seeds': ") and "data.permute_labels=0" in err
    assert "runs of one entry must be of one data.permute_labels" in err


def test_compare_of_runs_of_one_permute_labels_goes_on(real_and_null, capsys):
    from icegan.cli import main
    runs = real_and_null
    assert main(["compare", f"A={runs['real']}", f"B={runs['real_s1']}", "--resamples", "100"]) == 0
    assert main(["compare", f"A={runs['null']}", f"B={runs['null']}", "--resamples", "100"]) == 0
    assert "permute_labels" not in capsys.readouterr().err


def _oracle_run(folder, epochs, every):
    from icegan.cli import main
    assert main(["loso", "--out", str(folder), "--no-progress", "data.source=toy", "data.toy_subjects=2",
                 f"model.epochs={epochs}", f"model.eval_every={every}", "model.batch_size=16", "max_folds=2",
                 "threads=1", "oracle_epoch=true"]) == 0
    return (folder / "metrics.md").read_text(encoding="utf-8")


def test_oracle_run_of_one_recorded_epoch_says_no_epoch_was_picked(tmp_path, caplog):
    """model.epochs <= model.eval_every: each fold records its test scores once, so the 'best epoch per test subject'
    is picked from one; the run keeps its ORACLE label and numbers, and metrics.md and the log say so."""
    import json

    import pandas as pd
    with caplog.at_level("WARNING", logger="icegan"):
        md = _oracle_run(tmp_path / "one", 2, 5)
    assert md.splitlines()[0].startswith("# loso [ORACLE EPOCH]")                  # the label is kept
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["oracle_epoch"] is True
    assert (pd.read_csv(tmp_path / "one" / "predictions.csv")["oracle_epoch"] == 0).all()
    note = md.rstrip("\n").splitlines()[-1]
    assert note.startswith("**Oracle with one candidate:** model.epochs=2 <= model.eval_every=5, so each fold "
                           "recorded its test scores once")
    assert "no epoch was picked on the test subjects" in note and "labelled ORACLE" in note
    assert "oracle_epoch=true with one candidate epoch: model.epochs=2 <= model.eval_every=5" in caplog.text


def test_oracle_run_of_several_recorded_epochs_has_no_such_note(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="icegan"):
        md = _oracle_run(tmp_path / "two", 2, 1)
    assert "one candidate" not in md and "one candidate" not in caplog.text


@pytest.mark.parametrize("epochs, every", [(1, 5), (5, 5), (3, 2), (6, 5), (2, 1)])
def test_one_candidate_note_follows_the_epochs_the_recognizer_records(epochs, every):
    """The note's rule (model.epochs <= model.eval_every) is the recognizer's: one (R, n, K) record of test scores
    per fold exactly when it holds."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import make_folds, oracle_candidates_note
    from icegan.recognition import fit_predict_folds
    cfg = load_config(LosoConfig, None, ["data.source=toy", f"model.epochs={epochs}", f"model.eval_every={every}",
                                         "model.batch_size=16", "oracle_epoch=true"])
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    folds = make_folds(fs.samples["subject"].tolist())[:1]
    scores = fit_predict_folds(cfg.model, fs.features, fs.labels, fs.samples["subject"].tolist(), folds,
                               oracle_epoch=True, progress=False)
    assert (scores[0].shape[0] == 1) == (oracle_candidates_note(cfg) != "")
    assert oracle_candidates_note(None) == "" and oracle_candidates_note({"model": {"name": "logreg"}}) == ""


def test_figure_titles_show_control_characters_escaped(tmp_path):
    """confusion.png's title (a run name with a tab, newline or ESC, through fit_title) and its panels' titles (a
    dataset's name) reached matplotlib as written ("Glyph 27 missing"; a tab or newline became a space), while
    per_subject.png's labels escaped them (plot_label); now every title escapes them as plot_label does."""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from icegan.protocol import confusion_png, fit_title, per_subject_png, per_subject_table
    assert fit_title("run\x1b[1m a\tb\nc", 7.0) == "run\\x1b[1m a\\tb\\nc"
    assert fit_title("CDE LOSO", 3.4) == "CDE LOSO"
    pred = pd.DataFrame({"dataset": ["casme2", "casme2", "samm\x01x"],
                         "subject": ["casme2/a", "casme2/b", "samm\x01x/c"], "y_true": [0, 1, 2], "y_pred": [0, 2, 2]})
    titles = []
    real_savefig = plt.Figure.savefig

    def savefig(fig, *args, **kwargs):
        titles.append([fig._suptitle.get_text()] + [ax.title.get_text() for ax in fig.axes if ax.title.get_text()])
        return real_savefig(fig, *args, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # matplotlib's "Glyph 27 (\x1b) missing from font(s)"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(plt.Figure, "savefig", savefig)
            drawn = confusion_png(pred, tmp_path / "c.png", "run\x1b[1m\tx\ny: CDE LOSO")
            per_subject_png(per_subject_table(pred.assign(clip=["1", "2", "3"])), tmp_path / "p.png", "run\x07: CDE")
    assert titles[0] == ["run\\x1b[1m\\tx\\ny: CDE LOSO", "Full (n=3)", "CASME II (n=2)", "samm\\x01x (n=1)"]
    assert titles[1][0] == "run\\x07: CDE"
    assert [name for name, _ in drawn] == ["Full", "CASME II", "samm\x01x"]        # the names kept as written
