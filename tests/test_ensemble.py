"""``icegan ensemble``: probability averages of finished LOSO runs, and what it refuses."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.metrics import compute_metrics
from icegan.protocol import LosoStateError, run_loso

SCORES = ["score_negative", "score_positive", "score_surprise"]


@pytest.fixture(scope="module")
def toy():
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


def _random_prob_fn(seed, logits=False):
    """Fold function returning fixed pseudo-random class probabilities (or raw logits) per test clip."""
    def fold_fn(fold):
        rng = np.random.default_rng(seed * 1000 + fold.index)
        z = rng.normal(size=(len(fold.test_idx), 3)) * 2
        if logits:
            return z
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return fold_fn


@pytest.fixture(scope="module")
def two_runs(toy, tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    for s in (1, 2):
        run_loso(toy.samples, _random_prob_fn(s), root / f"r{s}", progress=False)
    return root


def _read(d):
    return pd.read_csv(d / "predictions.csv", dtype={"subject": str, "clip": str}).sort_values(["fold", "clip"],
                                                                                               ignore_index=True)


@pytest.mark.parametrize("weights", [None, [3.0, 1.0]])
def test_average_matches_hand_computation(two_runs, tmp_path, weights):
    out = tmp_path / "ens"
    m = ensemble_runs([two_runs / "r1", two_runs / "r2"], out, weights=weights)
    a, b, e = _read(two_runs / "r1"), _read(two_runs / "r2"), _read(out)
    w = np.array([0.5, 0.5]) if weights is None else np.array(weights) / sum(weights)
    want = w[0] * a[SCORES].to_numpy() + w[1] * b[SCORES].to_numpy()
    np.testing.assert_allclose(e[SCORES].to_numpy(), want, atol=1e-8)
    assert (e["y_pred"].to_numpy() == want.argmax(1)).all()
    assert (e["y_true"] == a["y_true"]).all() and (e["subject"] == a["subject"]).all()
    expected = compute_metrics(e["y_true"].to_numpy(), want.argmax(1), 3)
    assert m["overall"] == pytest.approx(expected)
    assert set(m) == {"protocol", "n_folds", "n_samples", "oracle_epoch", "overall", "per_dataset"}
    assert m["oracle_epoch"] is False and m["n_samples"] == len(a) and m["n_folds"] == a["subject"].nunique()
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(m))
    info = json.loads((out / "ensemble.json").read_text())
    assert [r["weight"] for r in info["members"]] == pytest.approx(w.tolist())
    for r, d in zip(info["members"], (a, b)):             # each member's own scores, not the ensemble's
        own = compute_metrics(d["y_true"].to_numpy(), d["y_pred"].to_numpy(), 3)
        assert (r["UF1"], r["UAR"]) == pytest.approx((own["UF1"], own["UAR"]))
    assert info["members"][0]["UF1"] != pytest.approx(m["overall"]["UF1"])
    md = (out / "metrics.md").read_text()
    assert "## Members" in md and str(two_runs / "r1") in md
    assert (out / "confusion.png").stat().st_size > 0
    per = pd.read_csv(out / "per_subject.csv")
    assert per["n_correct"].sum() == int((e["y_true"] == e["y_pred"]).sum()) and per["n_clips"].sum() == len(e)


def test_ensemble_of_a_run_with_itself_weighted_is_the_run(two_runs, tmp_path):
    """Weight 0 on one member leaves the other member's predictions and metrics unchanged."""
    m = ensemble_runs([two_runs / "r1", two_runs / "r2"], tmp_path / "e", weights=[1, 0])
    assert m == json.loads((two_runs / "r1" / "metrics.json").read_text())


def test_refusals(toy, two_runs, tmp_path):
    r1, r2 = two_runs / "r1", two_runs / "r2"
    with pytest.raises(EnsembleError, match="at least two"):
        ensemble_runs([r1], tmp_path / "a")
    with pytest.raises(EnsembleError, match="twice"):
        ensemble_runs([r1, r1], tmp_path / "a")
    with pytest.raises(EnsembleError, match="weights"):
        ensemble_runs([r1, r2], tmp_path / "a", weights=[1, -1])
    before = (r1 / "predictions.csv").read_bytes()
    with pytest.raises(LosoStateError, match=f"^{re.escape(str(r1))} is one of the ensemble's members"):
        ensemble_runs([r1, r2], r1)
    assert (r1 / "predictions.csv").read_bytes() == before
    # a third LOSO run, and a predictions.csv of unknown origin, are not replaced either
    run_loso(toy.samples, _random_prob_fn(3), tmp_path / "third", progress=False)
    third = (tmp_path / "third" / "predictions.csv").read_bytes()
    with pytest.raises(LosoStateError, match=r"holds a LOSO run of icegan loso or train.py \(run.json\), not an "
                                             r"ensemble"):
        ensemble_runs([r1, r2], tmp_path / "third")
    assert (tmp_path / "third" / "predictions.csv").read_bytes() == third
    assert not (tmp_path / "third" / "ensemble.json").exists()
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "predictions.csv").write_bytes(third)
    with pytest.raises(LosoStateError, match="predictions.csv but no run header"):
        ensemble_runs([r1, r2], tmp_path / "loose")
    ensemble_runs([r1, r2], tmp_path / "ens")
    ensemble_runs([r1, r2], tmp_path / "ens", weights=[1, 1])      # its own folder: written again
    with pytest.raises(LosoStateError, match="holds the ensemble of .*the same members with other weights"):
        ensemble_runs([r1, r2], tmp_path / "ens", weights=[2, 1])  # another ensemble's folder: not replaced
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path))}: no run.json; give the folder"):
        ensemble_runs([r1, tmp_path], tmp_path / "a")

    # logits instead of probabilities
    run_loso(toy.samples, _random_prob_fn(3, logits=True), tmp_path / "logits", progress=False)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path / 'logits' / 'predictions.csv'))}: scores of "
                                            r"clip \S+/\S+ are not class probabilities"):
        ensemble_runs([r1, tmp_path / "logits"], tmp_path / "a")

    # an oracle-epoch run
    run_loso(toy.samples, _random_prob_fn(4), tmp_path / "oracle", oracle_epoch=True, progress=False)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path / 'oracle'))}: an oracle-epoch run"):
        ensemble_runs([r1, tmp_path / "oracle"], tmp_path / "a")

    # another protocol / other folds
    run_loso(toy.samples, _random_prob_fn(5), tmp_path / "sde", protocol="SDE", dataset="casme2", progress=False)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path / 'sde'))} differs from {re.escape(str(r1))} "
                                            r"in 'protocol' \('SDE' vs 'CDE'\)"):
        ensemble_runs([r1, tmp_path / "sde"], tmp_path / "a")
    run_loso(toy.samples, _random_prob_fn(6), tmp_path / "four", max_folds=4, progress=False)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path / 'four'))} differs from {re.escape(str(r1))} "
                                            r"in its folds \(4 vs 6 subjects; samm/s02, samm/s03 only in "
                                            f"{re.escape(str(r1))}\\); only runs of the same LOSO"):
        ensemble_runs([r1, tmp_path / "four"], tmp_path / "a")

    # an unfinished run: the last fold's rows cut off
    cut = tmp_path / "cut"
    run_loso(toy.samples, _random_prob_fn(7), cut, progress=False)
    pred = pd.read_csv(cut / "predictions.csv")
    last = pred["subject"].iloc[-1]
    pred[pred["subject"] != last].to_csv(cut / "predictions.csv", index=False)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(cut))}: unfinished run, .*{last}"):
        ensemble_runs([r1, cut], tmp_path / "a")

    # a changed label names the clip
    lab = tmp_path / "label"
    run_loso(toy.samples, _random_prob_fn(8), lab, progress=False)
    pred = pd.read_csv(lab / "predictions.csv", dtype={"clip": str})
    pred.loc[0, "y_true"] = (pred.loc[0, "y_true"] + 1) % 3
    pred.to_csv(lab / "predictions.csv", index=False)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(lab))} differs from {re.escape(str(r1))} in 'y_true' "
                                            rf"\(clip {pred.loc[0, 'subject']}/{pred.loc[0, 'clip']}: "
                                            rf"{pred.loc[0, 'y_true']} vs"):
        ensemble_runs([r1, lab], tmp_path / "a")


def test_cli_on_two_short_real_runs(shared_data, tmp_path, capsys):
    """Two real recognizers on the first 4 folds of megc2019_htnet, then their ensemble through the CLI."""
    root = f"data.root={shared_data / 'megc2019_htnet'}"
    common = ["--no-progress", root, "max_folds=4", "threads=1"]
    assert main(["loso", "--config", "configs/features_logreg.yaml", "--out", str(tmp_path / "lr")] + common) == 0
    assert main(["loso", "--config", "configs/features_ststnet.yaml", "--out", str(tmp_path / "st"), "model.epochs=2"]
                + common) == 0
    capsys.readouterr()
    rc = main(["ensemble", str(tmp_path / "lr"), str(tmp_path / "st"), "--out", str(tmp_path / "ens"),
               "--name", "lr+st"])
    assert rc == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert m["n_folds"] == 4 and m["n_samples"] == len(_read(tmp_path / "lr"))
    assert f"UF1 {m['overall']['UF1']:.4f}" in out
    assert "ensemble of 2 runs [PARTIAL: 4 of 68 folds, max_folds: not a LOSO result]" in out   # as metrics.md says
    assert "lr+st (probability ensemble)" in (tmp_path / "ens" / "metrics.md").read_text()
    # the three real run folders in one results table
    assert main(["table", f"logreg={tmp_path / 'lr'}", f"STSTNet={tmp_path / 'st'}", f"both={tmp_path / 'ens'}"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 5 and table[4].startswith(f"| both [PARTIAL: 4 of 68 folds] | honest | CDE | 1 | {m['overall']['UF1']:.4f} |")
    # the error path of the CLI: exit code 2 and the reason on stderr
    assert main(["ensemble", str(tmp_path / "lr"), "--out", str(tmp_path / "x")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_a_loso_run_never_resumes_from_another_kind_of_run(toy, two_runs, tmp_path):
    """`icegan loso --out` an ensemble's folder used to read the ensemble's predictions as its own finished folds and
    report them as a LOSO run's metrics. Now a folder holding another kind of run (ensemble, nested selection, merge),
    or a predictions.csv without any run header, is refused and left as it was; its own run.json still resumes."""
    ens = tmp_path / "ens"
    ensemble_runs([two_runs / "r1", two_runs / "r2"], ens)
    files = {f.name: f.read_bytes() for f in ens.iterdir() if f.is_file()}
    with pytest.raises(LosoStateError, match=r"holds an ensemble of icegan ensemble \(ensemble.json\), not a LOSO "
                                             r"run"):
        run_loso(toy.samples, _random_prob_fn(3), ens, progress=False)
    assert {f.name: f.read_bytes() for f in ens.iterdir() if f.is_file()} == files
    for header in ("selection.json", "merged.json"):
        other = tmp_path / header.split(".")[0]
        other.mkdir()
        (other / header).write_text("{}")
        with pytest.raises(LosoStateError, match=f"\\({header}\\), not a LOSO run"):
            run_loso(toy.samples, _random_prob_fn(3), other, progress=False)
        assert not (other / "run.json").exists()
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "predictions.csv").write_bytes((two_runs / "r1" / "predictions.csv").read_bytes())
    with pytest.raises(LosoStateError, match="predictions.csv but no run header"):
        run_loso(toy.samples, _random_prob_fn(3), loose, progress=False)
    m = run_loso(toy.samples, _random_prob_fn(3), two_runs / "r1", progress=False)      # resumes: all folds finished
    assert m == json.loads((two_runs / "r1" / "metrics.json").read_text())


def test_run_folder_conflict():
    """The guard's three answers: none for a new, empty or same-kind folder; another kind named; a loose file."""
    from icegan.paths import run_folder_conflict
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        assert run_folder_conflict(d / "new", "run.json") is None
        assert run_folder_conflict(d, "ensemble.json") is None
        (d / "ensemble.json").write_text("{}")
        assert run_folder_conflict(d, "ensemble.json") is None
        assert "holds an ensemble of icegan ensemble (ensemble.json), not a nested selection" in \
            run_folder_conflict(d, "selection.json")
        (d / "run.json").write_text("{}")            # a folder the old bug mixed: another kind beside its own
        assert "holds a LOSO run" in run_folder_conflict(d, "ensemble.json")
        (d / "run.json").unlink()
        (d / "ensemble.json").unlink()
        (d / "predictions.csv").write_text("x\n")
        assert "no run header" in run_folder_conflict(d, "run.json")
        with pytest.raises(ValueError, match="own_header must be one of"):
            run_folder_conflict(d, "metrics.json")


def _damage(src, dst, name, cut):
    """A copy of run folder ``src`` at ``dst`` whose file ``name`` keeps only its first ``cut`` bytes."""
    import shutil
    shutil.copytree(src, dst)
    f = dst / name
    f.write_bytes(f.read_bytes()[:cut])
    return f


@pytest.mark.parametrize("name, cut, msg, fix", [
    ("predictions.csv", 0, "the file is empty", "with the same --out"),
    ("predictions.csv", 150, r", line 2: the file ends inside this line \(cut short\)", "with the same --out"),
    ("run.json", 0, "cannot be read as JSON", "rerun that run into a fresh --out"),
    ("run.json", 40, "cannot be read as JSON", "rerun that run into a fresh --out"),
], ids=["empty-predictions", "cut-predictions", "empty-run-json", "cut-run-json"])
def test_a_damaged_member_is_named_in_one_line(two_runs, tmp_path, capsys, name, cut, msg, fix):
    """A member whose predictions.csv or run.json is empty or cut short (a killed run) is one error line naming the
    damaged file and saying what to run again, not a pandas/json traceback, and no ensemble is written."""
    f = _damage(two_runs / "r2", tmp_path / "r2", name, cut)
    with pytest.raises(EnsembleError, match=msg):
        ensemble_runs([two_runs / "r1", tmp_path / "r2"], tmp_path / "out")
    assert main(["ensemble", str(two_runs / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"icegan ensemble: error: {f}") and "damaged or incomplete" in err and fix in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "ensemble.json").exists()


def test_a_member_predictions_csv_not_utf8_without_scores_or_rows_is_named(two_runs, tmp_path):
    """A member's predictions.csv holding a byte that is not UTF-8 is an error naming the file (pandas' decoder
    error kept in one line), not a UnicodeDecodeError traceback; one without score columns or without rows too."""
    import shutil
    from icegan.ensemble import load_member
    shutil.copytree(two_runs / "r2", tmp_path / "r2")
    f = tmp_path / "r2" / "predictions.csv"
    f.write_bytes(f.read_bytes().replace(b"\n", b"\xff\n", 2))
    with pytest.raises(EnsembleError) as exc:
        load_member(tmp_path / "r2")
    msg = str(exc.value)
    assert msg.startswith(f"{f}: not a readable CSV table (") and "damaged or incomplete" in msg, msg
    assert len(msg.splitlines()) == 1
    f.write_text("fold,dataset,subject,clip,y_true,y_pred\n")                  # no score column, no row
    with pytest.raises(EnsembleError) as exc:
        load_member(tmp_path / "r2")
    assert str(exc.value) == f"{f}: missing column(s) ['score_negative', 'score_positive', 'score_surprise']"
    f.write_text("fold,dataset,subject,clip,y_true,y_pred,score_negative,score_positive,score_surprise\n")
    with pytest.raises(EnsembleError) as exc:
        load_member(tmp_path / "r2")
    assert str(exc.value).startswith(f"{f}: no rows, only the header; ")
    shutil.copy(two_runs / "r2" / "predictions.csv", f)
    rows = f.read_text().splitlines()
    f.write_text("\n".join(rows + [rows[1]]) + "\n")                            # the first clip listed twice
    with pytest.raises(EnsembleError) as exc:
        load_member(tmp_path / "r2")
    assert str(exc.value).startswith(f"{f}: clip ") and str(exc.value).endswith(" appears more than once")


def test_blank_lines_in_predictions_change_nothing_and_count_in_line_numbers(two_runs, tmp_path):
    """Blank lines in a member's predictions.csv are skipped (the ensemble is the same) and a row cut short is
    reported at its real line in the file."""
    import shutil
    from icegan.ensemble import load_member
    shutil.copytree(two_runs / "r2", tmp_path / "r2")
    f = tmp_path / "r2" / "predictions.csv"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:3] + ["", ""] + lines[3:]) + "\n\n")
    h, p = load_member(tmp_path / "r2")
    h0, p0 = load_member(two_runs / "r2")
    assert p.equals(p0)
    f.write_text("\n".join(lines[:3] + ["", ""] + [lines[3][:12]] + lines[4:]) + "\n")
    with pytest.raises(EnsembleError, match=rf"{f.name}, line 6: empty"):
        load_member(tmp_path / "r2")


def _edit_predictions(src, dst, edit):
    """A copy of run folder ``src`` at ``dst`` whose predictions.csv (read as text cells) is changed by ``edit`` (in
    place, or returning the new table)."""
    import shutil
    shutil.copytree(src, dst)
    f = dst / "predictions.csv"
    p = pd.read_csv(f, dtype=str)
    new = edit(p)
    (p if new is None else new).to_csv(f, index=False)
    return f


def _set(col, value, row=0):
    def edit(p):
        p.loc[row, col] = value
    return edit


@pytest.mark.parametrize("edit, msg", [
    (_set("y_pred", "7"), r", line 2, column y_pred: '7' is outside the class ids 0\.\.2"),
    (_set("y_true", "-1", row=3), r", line 5, column y_true: '-1' is outside the class ids 0\.\.2"),
    (_set("y_pred", "1.5"), r", line 2, column y_pred: '1\.5' is not a class id"),
    (_set("y_true", "pos"), r", line 2, column y_true: 'pos' is not a class id"),
    (_set("score_positive", "abc", row=1), r", line 3, column score_positive: 'abc' is not a number"),
    (lambda p: p.drop(columns="score_surprise"),
     r": missing column\(s\) \['score_surprise'\] \(line \d+, column y_true holds class id 2"),
    (lambda p: p.drop(columns="score_positive"), r": missing column\(s\) \['score_positive'\]"),
], ids=["y_pred-7", "y_true-negative", "y_pred-fraction", "y_true-text", "score-text", "no-score_surprise",
        "no-score_positive"])
def test_a_bad_cell_of_predictions_is_named_by_ensemble_and_compare(two_runs, tmp_path, capsys, edit, msg):
    """A predictions.csv with a class id outside 0..K-1, a cell that is not a number or a score column removed is one
    error line naming the file (and line / column) in both readers, ``icegan ensemble`` and ``icegan compare``: not a
    pandas or metrics traceback, not a message without the file, and not a silent accept."""
    f = _edit_predictions(two_runs / "r2", tmp_path / "r2", edit)
    with pytest.raises(EnsembleError, match=msg):
        ensemble_runs([two_runs / "r1", tmp_path / "r2"], tmp_path / "out")
    for cmd in (["ensemble", str(two_runs / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "out")],
                ["compare", str(two_runs / "r1"), str(tmp_path / "r2"), "--resamples", "100"]):
        assert main(cmd) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith(f"icegan {cmd[0]}: error: {f}") and "edited" in err, err
        assert "Traceback" not in err and len(err.splitlines()) == 1 and not captured.out
    assert not (tmp_path / "out" / "ensemble.json").exists()


def test_a_run_without_score_columns_is_compared_but_not_averaged(two_runs, tmp_path, capsys):
    """``icegan compare`` needs only y_true / y_pred: a run with no score column at all is compared (read as three
    classes); ``icegan ensemble`` refuses it, naming the missing columns."""
    _edit_predictions(two_runs / "r2", tmp_path / "r2", lambda p: p.drop(columns=SCORES))
    assert main(["compare", str(two_runs / "r1"), str(tmp_path / "r2"), "--resamples", "100"]) == 0
    capsys.readouterr()
    with pytest.raises(EnsembleError, match="missing column"):
        ensemble_runs([two_runs / "r1", tmp_path / "r2"], tmp_path / "out")


def test_members_of_other_clips_or_score_columns_are_named(two_runs, tmp_path):
    """A member missing one clip of a fold, one with a clip renamed (not its first row) and one with fewer score
    columns are each refused naming the member, the column and the first difference: not a numpy broadcast error,
    not the wrong clip, not an average of other clips' scores."""
    r1 = two_runs / "r1"
    first = _read(r1)
    short = _edit_predictions(r1, tmp_path / "short", lambda p: p.drop(index=1)).parent
    m = json.loads((short / "metrics.json").read_text())
    (short / "metrics.json").write_text(json.dumps({**m, "n_samples": m["n_samples"] - 1}))   # a run of one clip less
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path / 'short'))} differs from {re.escape(str(r1))} "
                                            rf"in 'subject' \({len(first) - 1} vs {len(first)} clips\); only runs"):
        ensemble_runs([r1, tmp_path / "short"], tmp_path / "a")
    # the last clip of the first subject renamed so that it sorts last there: row > 0 of the sorted table
    subj = first["subject"][0]
    last = first.index[first["subject"] == subj][-1]
    assert last > 0
    old = first["clip"][last]

    def rename(p):
        p.loc[p["clip"] == old, "clip"] = "zz_renamed"
    _edit_predictions(r1, tmp_path / "renamed", rename)
    with pytest.raises(EnsembleError, match=f"differs from {re.escape(str(r1))} in 'clip' "
                                            rf"\(clip {subj}/zz_renamed: 'zz_renamed' vs '{old}'\)"):
        ensemble_runs([r1, tmp_path / "renamed"], tmp_path / "a")

    # two classes only (no y_true 2, no surprise score, y_pred the top of the two): one member wrote three score
    # columns, the other two
    def two_class(p):
        p["y_true"] = (p["y_true"].astype(int) % 2).astype(str)
        s = p[SCORES].astype(float).to_numpy() * [1, 1, 0]
        s /= s.sum(1, keepdims=True)
        p[SCORES] = s
        p["y_pred"] = s.argmax(1).astype(str)
    _edit_predictions(r1, tmp_path / "three", two_class)

    def two_columns(p):
        two_class(p)
        return p.drop(columns="score_surprise")
    _edit_predictions(r1, tmp_path / "two", two_columns)
    with pytest.raises(EnsembleError, match=f"^{re.escape(str(tmp_path / 'two'))}: score columns differ from "
                                            f"{re.escape(str(tmp_path / 'three'))}'s "
                                            r"\['score_negative', 'score_positive', 'score_surprise'\]"):
        ensemble_runs([tmp_path / "three", tmp_path / "two"], tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_mixing_weights_and_probability_rows():
    """Weights are normalised to sum 1 and refused (all given back in the message) when negative, all zero, not
    finite or not one per member; a score row is a probability row when finite, not below -1e-6 and summing to 1
    within 1e-3."""
    from icegan.ensemble import mixing_weights, not_probabilities
    np.testing.assert_allclose(mixing_weights(None, 3), [1 / 3] * 3)
    np.testing.assert_allclose(mixing_weights([2, 1], 2), [2 / 3, 1 / 3])
    for bad in ([2, -1], [0, 0], [1, float("nan")], [1, float("inf")], [1]):
        with pytest.raises(EnsembleError, match=re.escape(f"weights must be 2 non-negative numbers, not all zero; got "
                                                          f"{bad}")):
            mixing_weights(bad, 2)
    rows = np.array([[0.5, 0.5, 0.0], [0.6, 0.5, -0.1], [0.5, 0.49, 0.0], [np.nan, 0.5, 0.5], [1.0005, 0.0, 0.0],
                     [-1e-7, 0.5, 0.5 + 1e-7]])
    assert not_probabilities(rows).tolist() == [False, True, True, True, False, False]


def test_runs_of_other_subjects_name_the_folds_each_lacks(toy, two_runs, tmp_path):
    """A run over the same number of subjects, one of them another, is refused naming the fold each run has and the
    other lacks (as for runs of other counts; "first difference" is said of the same folds in another order)."""
    samples = toy.samples.copy()
    old = samples["subject"].iloc[-1]
    samples["subject"] = samples["subject"].replace(old, old + "x")
    run_loso(samples, _random_prob_fn(9), tmp_path / "other", progress=False)
    with pytest.raises(EnsembleError, match=rf"in its folds \(6 vs 6 subjects; {re.escape(old)}x only in "
                                            rf"{re.escape(str(tmp_path / 'other'))}; {re.escape(old)} only in "
                                            rf"{re.escape(str(two_runs / 'r1'))}\)"):
        ensemble_runs([two_runs / "r1", tmp_path / "other"], tmp_path / "a")
