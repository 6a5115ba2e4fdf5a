"""What the README and --help say about user inputs agrees with what the code does (session 62)."""
from __future__ import annotations

import re
from pathlib import Path

from icegan.cli import build_parser
from icegan.data.clip_list import ClipList

ROOT = Path(__file__).resolve().parents[1]


def _help(*argv: str) -> str:
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            build_parser().parse_args([*argv, "--help"])
        except SystemExit:
            pass
    return " ".join(out.getvalue().split())


def test_relative_frames_folders_are_read_from_the_clip_lists_folder(tmp_path, monkeypatch):
    """A relative ``frames`` cell is resolved against the CSV's folder, not the working directory, and the README
    clip-list paragraph and ``icegan features --help`` both say so."""
    import cv2
    import numpy as np
    lists = tmp_path / "lists"
    (lists / "v" / "a").mkdir(parents=True)
    for n in (1, 2):
        cv2.imwrite(str(lists / "v" / "a" / f"img{n}.jpg"), np.full((8, 8), 90, np.uint8))
    (lists / "clips.csv").write_text("subject,clip,frames,onset,apex\np01,a,v/a,1,2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rec, = ClipList(Path("../lists/clips.csv")).records()
    assert rec.frame_paths[0].resolve() == (lists / "v" / "a" / "img1.jpg").resolve()
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert re.search(r"the folder of the clip's frames, absolute or relative to the clip list's own folder", readme)
    assert "relative to the CSV's folder" in _help("features")


def test_an_hde_fold_of_a_forest_is_fit_at_the_runs_seed_as_the_readme_says(tmp_path):
    """README ("A model for new clips"): an HDE fold of a scikit-learn recipe is the model ``icegan fit`` trains on the
    other datasets at the run's ``seed`` (not ``seed`` + 1000 × fold index, the rule of the networks): equal
    probabilities on every held-out dataset; at the networks' seed rule the fold of index 1 differs."""
    import numpy as np
    import pandas as pd
    import torch
    from _feature_tables import toy_config

    from icegan.commands.loso import load_feature_set, run
    from icegan.recognition import fit_recognizer
    cfg = toy_config("protocol=HDE", "model.name=random_forest", "model.forest_trees=20", "seed=2")
    run(cfg, tmp_path / "hde", progress=False)
    pred = pd.read_csv(tmp_path / "hde" / "predictions.csv", dtype={"subject": str})
    fs = load_feature_set(cfg.data)
    datasets = fs.samples["dataset"].to_numpy()
    cols = ["score_negative", "score_positive", "score_surprise"]
    for index, held in enumerate(sorted(set(datasets))):
        train, test = torch.from_numpy(datasets != held), datasets == held
        rows = pred[pred["dataset"] == held].set_index(["subject", "clip"])
        scores = rows.loc[list(zip(fs.samples["subject"][test], fs.samples["clip"][test])), cols].to_numpy()
        fitted = fit_recognizer(cfg.model, fs.features[train], fs.labels[train], seed=cfg.seed, progress=False)
        np.testing.assert_allclose(fitted(fs.features[torch.from_numpy(test)]), scores, atol=1e-6)
        if index == 1:
            other = fit_recognizer(cfg.model, fs.features[train], fs.labels[train], seed=cfg.seed + 1000,
                                   progress=False)
            assert not np.allclose(other(fs.features[torch.from_numpy(test)]), scores, atol=1e-3)
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert ("`seed` + 1000 × fold index for a network, the run's `seed` in every fold for a forest, logistic "
            "regression or gradient boosting") in readme
