"""User text in figures and Markdown (run names, entry labels), and the training bar's redraws.

1. A ``$`` in a run name or an entry label reached matplotlib as mathtext: ``name=LR $x^{2$ run`` crashed ``icegan
   loso`` after metrics.json (and every resume the same way), ``LR $5 vs $10 budget`` lost its dollars, and ``icegan
   compare 'LR $x^{2$=run' ... --plot`` ended with a bare parser error; :func:`icegan.protocol.plot_label` escapes it.
2. :func:`icegan.report.markdown_cell` escaped only ``|``: a run ``lr|c*1*`` showed ``c1`` in italics in metrics.md,
   whose ``# title`` line was not escaped at all.
3. The training bar redrew twice an epoch (``set_postfix`` refreshes): 120 redraws for 60 epochs in a log file.
"""
from __future__ import annotations

import re

import pytest
import torch

from icegan.cli import main

TOY = ["data.source=toy", "data.toy_subjects=2", "threads=1", "model.name=logreg", "max_folds=2", "--no-progress"]


def _loso(out, name):
    return main(["loso", "--out", str(out), f"name={name}", *TOY])


# 1. dollars in figures ------------------------------------------------------------------------------------------------

def test_plot_label_escapes_dollars_so_matplotlib_draws_them_as_written():
    from matplotlib.cbook import is_math_text

    from icegan.protocol import fit_title, plot_label
    for name in ["LR $x^{2$ run", "LR $5 vs $10 budget", "a\\$b$", "$"]:
        label = plot_label(name)
        assert not is_math_text(label), label
        assert label.replace("\\$", "$") == name           # what matplotlib draws for a text without math
    assert plot_label("LR $5 vs $10") == "LR \\$5 vs \\$10" and plot_label("CDE LOSO") == "CDE LOSO"
    assert plot_label("a\tb$") == "a\\tb\\$"
    # a long word broken by the wrap never splits an escape from its dollar: escaped before the wrap, the break fell
    # between the backslash and its "$", leaving two bare dollars that make the whole title mathtext
    name = "x" * 27 + "$" + "y" * 26 + "$z"
    title = fit_title(name, 3.0)
    assert not is_math_text(title), title
    assert not any(re.search(r"(?<!\\)\\$", line) for line in title.split("\n")), title   # no lone "\" at a line end
    assert title.replace("\n", "").replace("\\$", "$") == name


def test_a_run_name_with_dollars_runs_and_draws_its_figures(tmp_path, capsys):
    out = tmp_path / "dollar"
    assert _loso(out, "LR $x^{2$ run") == 0
    assert (out / "confusion.png").is_file() and (out / "per_subject.png").is_file()
    assert "UF1" in capsys.readouterr().out                              # the console summary after the figures
    assert _loso(out, "LR $x^{2$ run") == 0                             # a resume too


def test_figure_titles_keep_the_dollars_of_a_name(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from icegan.protocol import confusion_png, per_subject_png, per_subject_table
    pred = pd.DataFrame({"dataset": ["casme2", "casme2", "samm"], "subject": ["casme2/$a", "casme2/b", "samm/c"],
                         "clip": ["1", "2", "3"], "y_true": [0, 1, 2], "y_pred": [0, 2, 2]})
    texts = []
    real_savefig = plt.Figure.savefig

    def savefig(fig, *args, **kwargs):
        texts.append([fig._suptitle.get_text()] + [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()])
        return real_savefig(fig, *args, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Figure, "savefig", savefig)
        confusion_png(pred, tmp_path / "c.png", "LR $5 vs $10 budget: CDE LOSO")
        per_subject_png(per_subject_table(pred), tmp_path / "p.png", "LR $5 vs $10 budget: CDE")
    assert texts[0][0] == "LR \\$5 vs \\$10 budget: CDE LOSO"
    assert texts[1][0] == "LR \\$5 vs \\$10 budget: CDE" and "\\$a" in texts[1]


def test_compare_plot_of_a_label_with_dollars(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _loso(a, "a") == 0 and _loso(b, "b") == 0
    plot = tmp_path / "forest.png"
    assert main(["compare", f"LR $x^{{2$={a}", str(b), "--resamples", "100", "--plot", str(plot)]) == 0
    assert plot.is_file()


def test_epoch_curve_title_keeps_the_dollars_of_a_run_name(monkeypatch, tmp_path):
    import sys
    from pathlib import Path

    import matplotlib.figure
    import numpy as np
    from _bench import load_bench

    import icegan.recognition as recognition
    bench = load_bench("epoch_curve")
    monkeypatch.setattr(recognition, "fit_predict_folds", lambda cfg, x, y, subjects, folds, **kw: [
        np.stack([np.eye(3)[y.numpy()[f.test_idx]]] * 2) for f in folds])
    seen = {}
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: seen.update(
        title=fig.axes[0].get_title()))
    config = Path(__file__).resolve().parents[1] / "configs" / "demo_features.yaml"
    monkeypatch.setattr(sys, "argv", ["epoch_curve", "--config", str(config), "--threads", "1", "--plot",
                                      str(tmp_path / "c.png"), "model.epochs=2", "model.eval_every=1", "max_folds=2",
                                      "name=LR $5 vs $10"])
    bench.main()
    assert seen["title"].startswith("LR \\$5 vs \\$10: UF1 per epoch"), seen


# 2. Markdown specials in cells and titles -----------------------------------------------------------------------------

def test_markdown_cell_escapes_what_would_change_the_rendering():
    from icegan.report import markdown_cell
    assert markdown_cell("lr|c*1*") == "lr\\|c\\*1\\*"
    assert markdown_cell("_a_ `c` [d](e) \\") == "\\_a\\_ \\`c\\` [d\\](e) \\\\"
    # what cannot change the rendering stays as written: an underscore inside a word, brackets of no link
    for text in ["STSTNet + shifts", "features_ststnet_s0 [PARTIAL: 2 of 3 folds]", "lr [ORACLE]"]:
        assert markdown_cell(text) == text
    assert markdown_cell("a|b\nc") == "a\\|b c"


def test_metrics_md_escapes_the_run_name_in_title_and_row(tmp_path):
    out = tmp_path / "md"
    assert _loso(out, "lr|c*1*") == 0
    text = (out / "metrics.md").read_text(encoding="utf-8")
    title = text.splitlines()[0]
    assert title.startswith("# lr\\|c\\*1\\*"), title
    assert "**this run** (lr\\|c\\*1\\*" in text
    assert "c*1*" not in text.replace("\\*", "")                        # no bare star left of the name


# 3. one redraw an epoch -----------------------------------------------------------------------------------------------

def test_the_training_bar_redraws_once_an_epoch(capsys, monkeypatch):
    """Every epoch is slower than tqdm's minimum interval (a clock that moves 1 s each time it is read), so each one
    redraws the bar; set_postfix must not add a second redraw."""
    import tqdm.std

    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import RecognizerConfig, train_models
    clock = iter(range(10**6))
    monkeypatch.setattr(tqdm.std, "time", lambda: float(next(clock)))
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    epochs = 12
    capsys.readouterr()
    train_models(RecognizerConfig(epochs=epochs, batch_size=0), fs.features, fs.labels,
                 torch.ones(1, len(fs.labels), dtype=torch.bool), seed=0, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err                                            # the postfix is still shown
    assert epochs <= err.count("\r") <= epochs + 3, err.count("\r")
    assert len(re.findall(r"loss=\d", err)) >= epochs - 1
