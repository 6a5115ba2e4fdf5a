"""LOSO folds, resumable runs and report files."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.data.toy_features import make_toy_features
from icegan.protocol import LosoStateError, make_folds, run_loso
from icegan.recognition import RecognizerConfig, fit_predict_folds

SUBJECTS = ["casme2/sub01"] * 3 + ["casme2/sub02"] * 2 + ["samm/006"] * 2 + ["smic/s01"] * 4 + ["samm/007"]


def test_cde_folds_cover_everything_once_without_overlap():
    folds = make_folds(SUBJECTS, "CDE")
    assert [f.subject for f in folds] == sorted(set(SUBJECTS))
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested.tolist()) == list(range(len(SUBJECTS)))
    subj = np.asarray(SUBJECTS)
    for f in folds:
        assert set(subj[f.test_idx]) == {f.subject}
        assert f.subject not in set(subj[f.train_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(SUBJECTS)


def test_sde_folds_stay_inside_one_dataset():
    folds = make_folds(SUBJECTS, "SDE", dataset="samm")
    assert [f.subject for f in folds] == ["samm/006", "samm/007"]
    subj = np.asarray(SUBJECTS)
    for f in folds:
        assert all(s.startswith("samm/") for s in subj[f.train_idx])
        assert f.subject not in set(subj[f.train_idx])


@pytest.mark.parametrize("subjects,protocol,dataset,msg", [
    (["sub01", "sub02"], "CDE", None, "prefixed"),
    (SUBJECTS, "SDE", None, "needs a dataset"),
    (["mine/a", "mine/b"], "SDE", None, r"needs a dataset: one of \['mine'\], the datasets of these clips"),
    (SUBJECTS, "SDE", "mmew", "no clips"),
    (SUBJECTS, "CDE", "samm", "SDE only"),
    (SUBJECTS, "LOVO", None, "unknown protocol"),
    (["casme2/sub01"] * 3, "CDE", None, "at least 2 subjects"),
])
def test_fold_errors(subjects, protocol, dataset, msg):
    with pytest.raises(ValueError, match=msg):
        make_folds(subjects, protocol, dataset)


@pytest.mark.parametrize("a,b", [("samm/6", "samm/006"), ("casme2/Sub01", "casme2/sub01"), ("smic/s1", "smic/s01"),
                                 ("lab_a/x", "lab/a_x")])
def test_two_spellings_of_one_subject_are_refused(a, b):
    """Ids that differ only in case, leading zeros or '/' against '_' would be one person in two LOSO folds (and one
    fold folder): refused for subject folds, naming both; distinct numbers and other datasets' ids stay apart."""
    subjects = [a, b, "casme2/sub02", "casme2/sub02"]
    for protocol, dataset in (("CDE", None), ("SDE", a.split("/")[0])):
        if dataset == "lab_a":
            continue                         # SDE within lab_a holds one of them only
        with pytest.raises(ValueError, match=rf"subjects '{sorted([a, b])[0]}' and '{sorted([a, b])[1]}' differ "
                                             r"only in case, leading zeros or '/' against '_'"):
            make_folds(subjects, protocol, dataset)
    assert len(make_folds(["samm/6", "samm/60", "smic/6", "casme2/sub10", "casme2/sub01"], "CDE")) == 5
    assert len(make_folds([a, b, "other/1"], "HDE")) == len({a.split("/")[0], b.split("/")[0], "other"})
    # HDE holds out datasets: two spellings of one dataset would train each fold on the dataset it tests
    with pytest.raises(ValueError, match=r"datasets 'CASME2' and 'casme2' differ only in case"):
        make_folds(["CASME2/sub01", "casme2/sub02", "samm/006"], "HDE")


@pytest.fixture(scope="module")
def toy():
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


def _centroid_fold_fn(fs, calls=None, fail_at=None):
    """Nearest-class-mean classifier on the training rows only (deterministic)."""
    x = fs.features.flatten(1).numpy()
    y = fs.labels.numpy()

    def fold_fn(fold):
        if calls is not None:
            calls.append(fold.index)
        if fail_at is not None and fold.index == fail_at:
            raise RuntimeError("killed")
        means = np.stack([x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)])
        d = ((x[fold.test_idx][:, None] - means[None]) ** 2).sum(-1)
        return -d
    return fold_fn


def test_run_writes_every_output_with_exact_schema(toy, tmp_path):
    m = run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "r", protocol="CDE",
                 config={"model": "centroid"}, progress=False)
    out = tmp_path / "r"
    for name in ("predictions.csv", "metrics.json", "metrics.md", "confusion.png", "config.yaml", "run.json"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    j = json.loads((out / "metrics.json").read_text())
    assert j == m
    assert set(j) == {"protocol", "n_folds", "n_samples", "oracle_epoch", "overall", "per_dataset"}
    assert set(j["overall"]) == {"UF1", "UAR", "P_M", "R_M", "F1_M", "F1_mu", "G_M"}
    assert set(j["per_dataset"]) == {"casme2", "samm"}
    assert j["n_folds"] == 6 and j["n_samples"] == len(toy) and j["oracle_epoch"] is False
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns[:6]) == ["fold", "dataset", "subject", "clip", "y_true", "y_pred"]
    assert len(pred) == len(toy) and pred["clip"].is_unique
    md = (out / "metrics.md").read_text()
    assert "honest" in md and "ORACLE" in md  # reference rows are labelled by their selection
    from icegan.significance import subject_interval
    ci = subject_interval(pred)
    assert ci["n_subjects"] == 6 and ci["UF1"][0] <= j["overall"]["UF1"] <= ci["UF1"][1]
    assert f"UF1 [{ci['UF1'][0]:.4f}, {ci['UF1'][1]:.4f}]" in md and "of the 6 subjects" in md
    # the per-class section: one row per scope and class, whose F1 and recall average to the scope's UF1 and UAR
    section = md.split("## Per class", 1)[1]
    rows = [r.strip("|").split("|") for r in section.splitlines() if r.startswith("| ") and "---" not in r][1:]
    cells = {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in rows}
    assert len(rows) == 3 * 3 and {s for s, _ in cells} == {"Full", "CASME II", "SAMM"}
    full = [cells[("Full", c)] for c in ("negative", "positive", "surprise")]
    assert sum(int(r[0]) for r in full) == sum(int(r[1]) for r in full) == len(toy)
    assert np.mean([float(r[4]) for r in full]) == pytest.approx(j["overall"]["UF1"], abs=2e-4)
    assert np.mean([float(r[2]) for r in full]) == pytest.approx(j["overall"]["UAR"], abs=2e-4)


def test_a_max_folds_run_says_it_is_partial_everywhere_its_numbers_show(toy, tmp_path, capsys):
    """A run cut to its first folds by max_folds pools a few subjects' clips: metrics.md, the console summary and
    `icegan table` say "PARTIAL: k of n folds" (a smoke run's UF1 must not pass for a LOSO result); a whole run says
    nothing, and its run.json is as before (no folds_total), so its folder resumes as before."""
    from icegan.protocol import partial_tag, read_partial_tag, summary_text
    from icegan.report import results_table
    centroid = _centroid_fold_fn(toy)

    def probabilities(fold):                  # class probabilities, as icegan ensemble averages
        return torch.softmax(torch.as_tensor(centroid(fold) / 100.0), 1).numpy()
    m = run_loso(toy.samples, probabilities, tmp_path / "p", max_folds=2, progress=False)
    header = json.loads((tmp_path / "p" / "run.json").read_text())
    assert header["folds_total"] == 6 and len(header["folds"]) == 2
    tag = read_partial_tag(tmp_path / "p")
    assert tag == partial_tag(header) == " [PARTIAL: 2 of 6 folds]"
    md = (tmp_path / "p" / "metrics.md").read_text()
    assert md.startswith("# p [PARTIAL: 2 of 6 folds]") and "only the first 2 of the 6 folds were run" in md
    assert "[PARTIAL: 2 of 6 folds, max_folds: not a LOSO result]" in summary_text(
        m, "p", read_partial_tag(tmp_path / "p", "max_folds"))
    full = run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "w", progress=False)
    assert "folds_total" not in json.loads((tmp_path / "w" / "run.json").read_text())
    assert read_partial_tag(tmp_path / "w") == "" and "PARTIAL" not in summary_text(full, "w", "")
    assert "Partial run" not in (tmp_path / "w" / "metrics.md").read_text()
    from icegan.report import parse_entry
    from icegan.ensemble import ensemble_runs
    run_loso(toy.samples, probabilities, tmp_path / "q", max_folds=2, progress=False)
    ensemble_runs([tmp_path / "p", tmp_path / "q"], tmp_path / "e")       # an ensemble of partial runs is partial
    assert read_partial_tag(tmp_path / "e") == " [PARTIAL: 2 of 6 folds]"
    assert "only the first 2 of the 6 folds were run" in (tmp_path / "e" / "metrics.md").read_text()
    table = results_table([parse_entry(str(tmp_path / d)) for d in "pwe"])
    assert "| p [PARTIAL: 2 of 6 folds] |" in table and "| w |" in table and "| e [PARTIAL: 2 of 6 folds] |" in table
    # a max_folds folder begun before run.json recorded folds_total resumes (its header gains the key)
    del header["folds_total"]
    (tmp_path / "p" / "run.json").write_text(json.dumps(header))
    assert run_loso(toy.samples, probabilities, tmp_path / "p", max_folds=2, progress=False) == m
    assert json.loads((tmp_path / "p" / "run.json").read_text())["folds_total"] == 6


def test_a_fold_training_without_a_class_is_warned_about(toy, tmp_path, caplog):
    """A class whose clips all belong to one subject: that subject's fold trains without it (its model never
    predicts it), which run_loso warns about, naming the fold and the class; the composite's folds have none."""
    from icegan.protocol import folds_missing_a_class
    samples = toy.samples.copy()
    s = samples["subject"].to_numpy()
    lab = samples["label"].to_numpy().copy()
    only = s[lab == 2][0]                                    # surprise only in one subject's clips
    lab[(lab == 2) & (s != only)] = 0
    samples["label"] = lab
    folds = make_folds(samples["subject"].tolist(), "CDE")
    assert folds_missing_a_class(lab, folds) == [f"{only} trains without surprise"]
    assert folds_missing_a_class(toy.samples["label"].to_numpy(), folds) == []
    with caplog.at_level("WARNING", logger="icegan"):
        run_loso(samples, _centroid_fold_fn(toy), tmp_path / "r", progress=False)
    assert "1 fold(s) train without a class of the clips in scope" in caplog.text
    assert f"{only} trains without surprise" in caplog.text


def test_resume_after_killed_run_gives_identical_metrics(toy, tmp_path):
    ref = run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "full", progress=False)
    with pytest.raises(RuntimeError, match="killed"):
        run_loso(toy.samples, _centroid_fold_fn(toy, fail_at=3), tmp_path / "resumed", progress=False)
    pred = pd.read_csv(tmp_path / "resumed" / "predictions.csv")
    assert sorted(pred["fold"].unique()) == [0, 1, 2]
    calls = []
    again = run_loso(toy.samples, _centroid_fold_fn(toy, calls=calls), tmp_path / "resumed", progress=False)
    assert calls == [3, 4, 5]          # resumed at the first unfinished fold
    assert again == ref
    assert (tmp_path / "resumed" / "metrics.json").read_text() == (tmp_path / "full" / "metrics.json").read_text()
    calls.clear()
    run_loso(toy.samples, _centroid_fold_fn(toy, calls=calls), tmp_path / "resumed", progress=False)
    assert calls == []                 # a finished run is not redone
    # every start of the run left one environment line, saying how far the run already was
    env = [json.loads(line) for line in (tmp_path / "resumed" / "environment.jsonl").read_text().splitlines()]
    assert [e["folds_finished_at_start"] for e in env] == [0, 3, 6]
    assert all(e["folds_total"] == 6 and e["torch"] == torch.__version__ for e in env)
    assert all(e["cpu_capability"] == torch.backends.cpu.get_cpu_capability() for e in env)


def test_cut_off_fold_is_redone(toy, tmp_path):
    ref = run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", progress=False)
    csv = tmp_path / "a" / "predictions.csv"
    whole = csv.read_text()
    lines = whole.splitlines()
    csv.write_text("\n".join(lines[:-1]) + "\n")   # last fold half-written
    calls = []
    assert run_loso(toy.samples, _centroid_fold_fn(toy, calls=calls), tmp_path / "a", progress=False) == ref
    assert calls == [5]
    assert csv.read_text() == whole                 # its first rows dropped before it was written again, not twice


def test_a_line_cut_short_or_an_empty_file_is_resumed_not_a_traceback(toy, tmp_path):
    """A kill in the middle of an append leaves the last line without its newline, often mid-number: that fold is
    rerun (its cut numbers never read) and the run ends with the uninterrupted metrics. An empty file or a header
    cut short means no fold finished. A file that is not a predictions table is refused by name."""
    ref = run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", progress=False)
    csv = tmp_path / "a" / "predictions.csv"
    whole = csv.read_text()
    for damaged, redone in ((whole[:-7], [5]),                      # the last row cut inside a score
                            (whole[:whole.index("\n") + 9], [0, 1, 2, 3, 4, 5]),   # the first row cut short
                            ("", [0, 1, 2, 3, 4, 5]),                  # killed before anything was written
                            (whole[:20], [0, 1, 2, 3, 4, 5])):          # the header cut short
        csv.write_text(damaged)
        calls = []
        assert run_loso(toy.samples, _centroid_fold_fn(toy, calls=calls), tmp_path / "a", progress=False) == ref
        assert calls == redone
        assert csv.read_text() == whole
    csv.write_text('fold,dataset\n"0,casme2\n')
    with pytest.raises(LosoStateError, match=rf"^{re.escape(str(csv))}: not a predictions table \(.*\); delete the "
                                             "file to restart the run$"):
        run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", progress=False)
    csv.write_text("fold,dataset\n0,casme2\n")
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", progress=False)
    assert str(exc.value) == (f"{csv}: missing column(s) ['subject', 'clip', 'y_true', 'y_pred', 'score_negative', "
                              "'score_positive', 'score_surprise']; delete the file to restart the run")
    first = whole.splitlines()[1].split(",")
    csv.write_text(whole.replace(f",{first[2]},", ",casme2/zz,", 1))
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", progress=False)
    assert str(exc.value) == (f"{csv}: subject 'casme2/zz' is not a fold of this run (was the file edited?); delete the "
                              "file to restart the run")


def test_a_damaged_run_header_or_config_is_named_on_resume(toy, tmp_path):
    """run.json or config.yaml cut short (or not a mapping) cannot vouch for the finished folds: the resume is refused
    naming the file, not a JSON or YAML traceback."""
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", config={"model": "centroid"}, progress=False)
    for name, damaged in (("run.json", '{"protocol": "CD'), ("config.yaml", "model: [centroid"),
                          ("run.json", "[1, 2]")):
        d = tmp_path / "a" / name
        whole = d.read_text()
        d.write_text(damaged)
        with pytest.raises(LosoStateError, match=rf"{name}: cannot be read .*looks damaged.*use another --out"):
            run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "a", config={"model": "centroid"},
                     progress=False)
        d.write_text(whole)
    calls = []
    run_loso(toy.samples, _centroid_fold_fn(toy, calls=calls), tmp_path / "a", config={"model": "centroid"},
             progress=False)
    assert calls == []                 # restored: the finished run is recognised again


def test_grouped_training_resume_is_exact(toy, tmp_path):
    """Several folds per call (grouped STSTNet): a run killed in the second group resumes identically."""
    cfg = RecognizerConfig(epochs=1, batch_size=16)
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = toy.samples["subject"].tolist()

    def folds_fn(folds, fail=False):
        if fail and folds[0].index >= 2:  # second group of two folds
            raise RuntimeError("killed")
        return fit_predict_folds(cfg, toy.features, toy.labels, subjects, folds, seed=0, progress=False)

    ref = run_loso(toy.samples, None, tmp_path / "full", folds_fn=folds_fn, folds_per_call=2, progress=False)
    with pytest.raises(RuntimeError):
        run_loso(toy.samples, None, tmp_path / "res", folds_fn=lambda f: folds_fn(f, True), folds_per_call=2,
                 progress=False)
    assert run_loso(toy.samples, None, tmp_path / "res", folds_fn=folds_fn, folds_per_call=2, progress=False) == ref
    a = pd.read_csv(tmp_path / "full" / "predictions.csv")
    b = pd.read_csv(tmp_path / "res" / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)


def test_oracle_epoch_is_labelled_everywhere(toy, tmp_path):
    y = toy.labels.numpy()

    def fold_fn(fold):  # epochs 1 and 3 are perfect on the test subject, 0 and 2 are wrong
        wrong = np.eye(3)[(y[fold.test_idx] + 1) % 3]
        right = np.eye(3)[y[fold.test_idx]]
        return np.stack([wrong, right, wrong, right])

    m = run_loso(toy.samples, fold_fn, tmp_path / "o", oracle_epoch=True, progress=False)
    assert m["oracle_epoch"] is True and m["overall"]["UF1"] == pytest.approx(1.0)
    pred = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert (pred["oracle_epoch"] == 1).all()                # the first of the best epochs
    assert "ORACLE EPOCH" in (tmp_path / "o" / "metrics.md").read_text().splitlines()[0]
    with pytest.raises(ValueError, match="oracle_epoch"):
        run_loso(toy.samples, fold_fn, tmp_path / "honest", progress=False)


def test_bad_inputs(toy, tmp_path):
    bad = toy.samples.copy()
    bad.loc[4, "label"] = 7
    with pytest.raises(ValueError, match="row 4 .*label 7"):
        run_loso(bad, _centroid_fold_fn(toy), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="scores of shape"):
        run_loso(toy.samples, lambda f: np.zeros((1, 3)), tmp_path / "c", progress=False)
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "d", config={"a": 1}, progress=False)
    with pytest.raises(LosoStateError, match=r"different config \(.*config.yaml: a: 1 there, 2 now\)"):
        run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "d", config={"a": 2}, progress=False)
    with pytest.raises(LosoStateError, match="protocol"):
        run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "d", protocol="SDE", dataset="samm",
                 config={"a": 1}, progress=False)


def test_reference_rows_label_every_oracle_number():
    """In a composite CDE metrics.md every reference row whose number picked epochs on the test subject says ORACLE
    in its own line, and our measured oracle row is among them."""
    from icegan.metrics import METRIC_KEYS
    from icegan.protocol import REFERENCES, _markdown
    m = {k: 0.7 for k in METRIC_KEYS}
    md = _markdown({"protocol": "CDE", "n_folds": 68, "n_samples": 442, "oracle_epoch": False, "overall": m,
                    "per_dataset": {"smic": m, "casme2": m, "samm": m}}, "run")
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    oracle = [r["method"] for r in REFERENCES if "best epoch" in r["selection"]]
    assert "STSTNet, this project's C recipe, mean of 3 seeds" in oracle and len(oracle) >= 3
    for name in oracle:
        assert "| ORACLE" in lines[name], name
    # every reference row says how its number was selected: honest, ORACLE, or that the paper does not say
    for r in REFERENCES:
        assert any(w in r["selection"] for w in ("honest", "ORACLE", "not stated")), r["method"]
        assert ("honest" in r["selection"]) != ("ORACLE" in r["selection"]) or "not stated" in r["selection"], r


def test_per_subject_csv_matches_the_predictions(toy, tmp_path):
    """per_subject.csv: one row per held-out subject, clip and correct counts recomputed from predictions.csv, class
    counts summing to the clips; the totals give the pooled accuracy."""
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "r", progress=False)
    pred = pd.read_csv(tmp_path / "r" / "predictions.csv", dtype={"subject": str})
    per = pd.read_csv(tmp_path / "r" / "per_subject.csv", dtype={"subject": str})
    assert per["subject"].tolist() == list(dict.fromkeys(pred["subject"]))
    for _, r in per.iterrows():
        rows = pred[pred["subject"] == r["subject"]]
        assert r["n_clips"] == len(rows) and r["n_correct"] == int((rows["y_true"] == rows["y_pred"]).sum())
        assert r["accuracy"] == pytest.approx(r["n_correct"] / r["n_clips"], abs=1e-4)
        assert [r["n_negative"], r["n_positive"], r["n_surprise"]] == [int((rows["y_true"] == c).sum()) for c in range(3)]
    assert per["n_correct"].sum() / per["n_clips"].sum() == pytest.approx((pred["y_true"] == pred["y_pred"]).mean())


def test_per_subject_png_draws_every_subject_by_dataset(toy, tmp_path):
    """per_subject.png beside per_subject.csv: one bar per tested subject, panels by dataset (in the tables' order),
    subjects in the
    table's order, bar length the subject's accuracy; an empty table is refused."""
    from PIL import Image

    from icegan.protocol import per_subject_png
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "r", progress=False)
    with Image.open(tmp_path / "r" / "per_subject.png") as im:
        assert im.format == "PNG" and min(im.size) > 100
    per = pd.read_csv(tmp_path / "r" / "per_subject.csv", dtype={"subject": str})
    table = pd.DataFrame({"dataset": ["samm", "casme2", "samm", "casme2", "smic"], "subject": ["samm/2", "casme2/b",
                          "samm/1", "casme2/a", "smic/s1"], "n_clips": [4, 1, 2, 3, 2], "n_correct": [1, 1, 2, 0, 1]})
    table["accuracy"] = table["n_correct"] / table["n_clips"]
    drawn = per_subject_png(table, tmp_path / "p.png", "t")
    assert drawn == [("smic", "smic/s1", 0.5), ("casme2", "casme2/b", 1.0), ("casme2", "casme2/a", 0.0),
                     ("samm", "samm/2", 0.25), ("samm", "samm/1", 1.0)]      # the tables' order: SMIC, CASME II, SAMM
    assert sorted(s for _, s, _ in per_subject_png(per, tmp_path / "q.png", "t")) == sorted(per["subject"])
    with pytest.raises(ValueError, match="no subjects"):
        per_subject_png(table.iloc[:0], tmp_path / "e.png", "t")
    # one dataset (an SDE run): still wide enough for the legend and a wrapped title (was 340 px, both cut off)
    per_subject_png(table[table["dataset"] == "samm"], tmp_path / "one.png", "t")
    with Image.open(tmp_path / "one.png") as im:
        assert im.size[0] >= 700


def test_long_figure_titles_are_wrapped_to_the_figure_width():
    """A run name with its ORACLE mark is broken into lines that fit the figure (at 12 pt, 0.6 em a character), with
    no word lost; a short title stays one line."""
    from icegan.protocol import fit_title
    title = ("features_ststnet_s0 [ORACLE EPOCH: best epoch per test subject, not honest] (features_ststnet, "
             "ststnet, 100 epochs): SDE LOSO: accuracy per subject")
    lines = fit_title(title, 7.0).split("\n")
    assert len(lines) == 3 and max(map(len, lines)) <= int(0.95 * 7.0 * 72 / 7.2) == 66
    assert " ".join(lines) == title
    assert fit_title("CDE LOSO", 3.4) == "CDE LOSO"


def test_confusion_png_colours_each_true_class_by_its_own_share(tmp_path):
    """The confusion figure's colours are row shares (the diagonal is recall, what UAR averages), not raw counts that
    made a well-recognised minority class look pale; a dataset without a class gets an empty row, not zeros."""
    from PIL import Image

    from icegan.protocol import confusion_png
    pred = pd.DataFrame({"dataset": ["casme2"] * 7 + ["samm"] * 4,
                         "y_true": [0, 0, 0, 0, 0, 2, 2, 0, 0, 1, 1],
                         "y_pred": [0, 0, 0, 1, 1, 2, 2, 0, 1, 1, 1]})
    drawn = dict(confusion_png(pred, tmp_path / "c.png", "t"))
    assert list(drawn) == ["Full", "CASME II", "SAMM"]
    np.testing.assert_allclose(drawn["CASME II"][0], [0.6, 0.4, 0.0])       # 3 of 5 negatives right
    np.testing.assert_allclose(drawn["CASME II"][2], [0.0, 0.0, 1.0])       # 2 of 2 surprises: full colour
    assert np.isnan(drawn["CASME II"][1]).all() and np.isnan(drawn["SAMM"][2]).all()
    np.testing.assert_allclose(np.diag(drawn["Full"]), [4 / 7, 1.0, 1.0])        # 3 of 5 and 1 of 2 negatives
    with Image.open(tmp_path / "c.png") as im:
        assert im.format == "PNG" and im.size[0] > 2.5 * im.size[1]         # three panels side by side


def test_the_pages_name_the_seed_and_recognizer_of_the_run(toy, tmp_path):
    """Two seeds (or epoch counts) of one config file wrote pages and figures that read alike; metrics.md now names the
    seed and the recognizer, and the figures' titles too (recipe_line)."""
    from icegan.protocol import recipe_line
    cfg = {"name": "x", "seed": 3, "model": {"name": "ststnet", "epochs": 7}}
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "r", config=cfg, progress=False)
    assert "Recipe: seed 3, ststnet, 7 epochs (the whole config: `config.yaml` beside this file)." in \
        (tmp_path / "r" / "metrics.md").read_text()
    assert recipe_line({"seed": 0, "model": {"name": "logreg", "epochs": 100}}) == "seed 0, logreg"   # no epochs
    assert recipe_line({"seed": 2, "recognizer": {"name": "offtanet", "epochs": 60}}) == "seed 2, offtanet, 60 epochs"
    assert recipe_line(None) == "" and recipe_line({"other": 1}) == ""
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "bare", progress=False, name="g|rf")
    md = (tmp_path / "bare" / "metrics.md").read_text()
    assert "Recipe:" not in md and "| **this run** (g\\|rf) | honest |" in md      # a | in the name stays in its cell


def test_dataset_order_is_the_tables_order():
    from icegan.protocol import dataset_order
    assert dataset_order(["samm", "casme2", "smic", "samm"]) == ["smic", "casme2", "samm"]
    assert dataset_order(["mmew", "casme2", "4dme"]) == ["casme2", "4dme", "mmew"]


def test_reference_rows_warn_when_the_run_is_not_the_whole_composite():
    """A CDE run over part of the composite (a smoke run over two datasets) keeps the reference rows but says its
    numbers are not comparable with them; a CDE run over one dataset's clips shows none and says it is that dataset's
    LOSO; the full 442 clips do not carry either sentence."""
    from icegan.metrics import METRIC_KEYS
    from icegan.protocol import _markdown
    m = {k: 0.7 for k in METRIC_KEYS}
    base = {"protocol": "CDE", "n_folds": 4, "oracle_epoch": False, "overall": m, "per_dataset": {"casme2": m, "samm": m}}
    part = _markdown(dict(base, n_samples=19), "run")
    assert "HTNet" in part and "This run scored 19 clips, not the 442 of the composite" in part
    one = _markdown(dict(base, n_samples=118, per_dataset={"casme2": m}), "run")
    assert "HTNet" not in one and "holds CASME II clips only" in one and "protocol=SDE dataset=casme2" in one
    full = _markdown(dict(base, n_samples=442, per_dataset={"smic": m, "casme2": m, "samm": m}), "run")
    assert "HTNet" in full and "not comparable with these rows" not in full


def test_only_neutral_new_keys_are_tolerated_on_resume():
    """A saved config lacking a key added later resumes only for keys whose default reproduces the older code
    (NEUTRAL_NEW_KEYS); a missing flow.input_size, whose default changed the features, is refused."""
    from icegan.config import to_dict, without_neutral_keys
    from icegan.pipeline import MainConfig

    def same(old, new):
        return without_neutral_keys(old) == without_neutral_keys(new)
    new = to_dict(MainConfig())
    old = {k: (dict(v) if isinstance(v, dict) else v) for k, v in new.items()}
    del old["recognizer"]["module"], old["flow"]["module"]
    assert same(old, new)
    del old["flow"]["input_size"]
    assert not same(old, new)
    changed = {k: (dict(v) if isinstance(v, dict) else v) for k, v in new.items()}
    changed["flow"]["module"] = "x.py:Net"
    old = {k: (dict(v) if isinstance(v, dict) else v) for k, v in new.items()}
    del old["flow"]["module"]
    assert not same(old, changed)              # the key is not at its neutral value now


def test_every_neutral_new_key_is_the_default_of_its_config():
    """Each NEUTRAL_NEW_KEYS entry names a real key of the main job's or `icegan loso`'s config at its default value:
    a wrong neutral value would let a resumed run mix two experiments."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import NEUTRAL_NEW_KEYS, to_dict
    from icegan.pipeline import MainConfig

    defaults = {"main": to_dict(MainConfig()), "loso": to_dict(LosoConfig())}
    for path, neutral in NEUTRAL_NEW_KEYS.items():
        section, key = path.split(".")
        found = [d[section][key] for d in defaults.values() if key in d.get(section, {})]
        assert found, f"{path} is no key of MainConfig or LosoConfig"
        assert all(v == neutral for v in found), f"{path}: neutral {neutral!r} but default {found!r}"


def test_resume_refuses_predictions_made_on_other_labels(toy, tmp_path):
    """A finished fold whose y_true disagrees with today's labels (a corrected annotation sheet, the same clip names)
    is refused by name instead of being kept beside folds scored on the new labels."""
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "r", progress=False)
    changed = toy.samples.copy()
    changed.loc[2, "label"] = (int(changed.loc[2, "label"]) + 1) % 3
    clip = changed.loc[2, "clip"]
    was, now = int(toy.samples.loc[2, "label"]), int(changed.loc[2, "label"])
    with pytest.raises(LosoStateError, match=rf"predictions.csv: fold '\S+' was scored on other labels \(1 clip\(s\), "
                                             rf"e.g. clip '{clip}': y_true {was} there, label {now} now\); resuming "
                                             "would mix two annotations: use another --out or delete that folder$"):
        run_loso(changed, _centroid_fold_fn(toy), tmp_path / "r", progress=False)


def test_data_digest_names_the_rows_labels_and_arrays(toy):
    """The digest is the same for equal data (tensor or array of the same values), and changes with a label, a clip's
    order, one map value, an array's dtype or its shape."""
    from icegan.protocol import data_digest
    s, x = toy.samples, toy.features
    d = data_digest(s, x)
    assert len(d) == 16 and d == data_digest(s.copy(), x.clone()) == data_digest(s, x.numpy())
    other = s.copy()
    other.loc[0, "label"] = (int(other.loc[0, "label"]) + 1) % 3
    x2 = x.clone()
    x2[3, 1, 2, 2] += 1e-3
    changed = [data_digest(other, x), data_digest(s.iloc[::-1].reset_index(drop=True), x), data_digest(s, x2),
               data_digest(s, x.double()), data_digest(s, x.reshape(len(x), -1)), data_digest(s)]
    assert len({d, *changed}) == 1 + len(changed)


def test_metrics_md_has_a_column_pair_per_dataset_scored():
    """The table of metrics.md has UF1/UAR columns for the datasets the run scored, in the tables' order: one dataset
    for an SDE run, a dataset outside the composite too (whose numbers had no column before)."""
    from icegan.metrics import METRIC_KEYS
    from icegan.protocol import _markdown
    m = {k: 0.5 for k in METRIC_KEYS}
    sde = _markdown({"protocol": "SDE", "n_folds": 3, "n_samples": 30, "oracle_epoch": False, "overall": m,
                     "per_dataset": {"casme2": m}}, "run")
    assert "| Method | Selection | Full UF1 | Full UAR | CASME II UF1 | CASME II UAR |\n|---|---|---|---|---|---|\n" in sde
    mixed = _markdown({"protocol": "CDE", "n_folds": 3, "n_samples": 30, "oracle_epoch": False, "overall": m,
                       "per_dataset": {"mmew": m, "samm": m}}, "run")
    assert "| Full UF1 | Full UAR | SAMM UF1 | SAMM UAR | mmew UF1 | mmew UAR |" in mixed
    # each cell holds its own number: distinct values for every dataset and metric
    full, c2 = dict(m, UF1=0.5, UAR=0.55), dict(m, UF1=0.6, UAR=0.7)
    own = _markdown({"protocol": "SDE", "n_folds": 3, "n_samples": 30, "oracle_epoch": False, "overall": full,
                     "per_dataset": {"casme2": c2}}, "run")
    assert "| honest | 0.5000 | 0.5500 | 0.6000 | 0.7000 |" in own


def test_per_dataset_metrics_pool_each_datasets_own_clips():
    """summarize_predictions: each dataset's metrics come from its own clips only (casme2 all right: 1.0; samm all
    wrong: 0.0), the overall from all of them, and the datasets in the tables' order (SMIC, CASME II, SAMM)."""
    from icegan.protocol import summarize_predictions
    pred = pd.DataFrame({"dataset": ["samm"] * 3 + ["casme2"] * 3, "y_true": [0, 1, 2, 0, 1, 2],
                         "y_pred": [1, 2, 0, 0, 1, 2]})
    m = summarize_predictions(pred, "CDE", 2, False)
    assert list(m["per_dataset"]) == ["casme2", "samm"]
    assert m["per_dataset"]["casme2"]["UF1"] == 1.0 and m["per_dataset"]["samm"]["UF1"] == 0.0
    assert m["per_dataset"]["samm"]["UAR"] == 0.0 and m["overall"]["UAR"] == pytest.approx(0.5)
    assert m["n_samples"] == 6 and m["n_folds"] == 2


def test_a_folder_of_another_run_is_refused_saying_why_and_what_to_do(toy, tmp_path):
    """Resuming into a folder of another run is refused with the folder, what differs, why it matters (data,
    weights or the config's first four differences and how many more) and what to do; the folder is left as it was."""
    out = tmp_path / "r"
    cfg = {k: i for i, k in enumerate("abcdef")}
    prov = {"data": "d1", "weights": "w1"}
    run_loso(toy.samples, _centroid_fold_fn(toy), out, config=cfg, provenance=prov, progress=False)
    files = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()}
    todo = "; use another --out or delete that folder"
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid_fold_fn(toy), out, config=cfg, provenance={"data": "d2", "weights": "w1"}, progress=False)
    assert str(exc.value) == (f"{out} holds a different LOSO run (differs in ['provenance']) (its data d1 vs now d2: the "
                              "clips, their labels or their maps changed, e.g. a corrected annotation sheet or a "
                              f"regenerated feature table){todo}")
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid_fold_fn(toy), out, config=cfg, provenance={"data": "d1", "weights": "w2"}, progress=False)
    assert str(exc.value) == (f"{out} holds a different LOSO run (differs in ['provenance']) (its provenance "
                              f"{prov} vs now {{'data': 'd1', 'weights': 'w2'}}: e.g. the weights file changed, or the "
                              f"folder was made before icegan recorded it){todo}")
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid_fold_fn(toy), out, protocol="SDE", dataset="samm", config=cfg, provenance=prov, progress=False)
    assert str(exc.value) == f"{out} holds a different LOSO run (differs in ['dataset', 'folds', 'protocol']){todo}"
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid_fold_fn(toy), out, config={k: v + 10 for k, v in cfg.items()}, provenance=prov, progress=False)
    assert str(exc.value) == (f"{out} holds a run made with a different config ({out / 'config.yaml'}: a: 0 there, 10 "
                              "now, b: 1 there, 11 now, c: 2 there, 12 now, d: 3 there, 13 now and 2 more); resuming "
                              "would mix two experiments: use another --out or delete that folder")
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file()} == files


def test_scores_that_cannot_be_scored_name_the_fold(toy, tmp_path):
    """Oracle scores of the wrong shape and a single infinite score (not only all-NaN) stop the run naming the fold;
    the message of a diverged fold says what to do."""
    first = make_folds(toy.samples["subject"].tolist(), "CDE")[0]
    n = len(first.test_idx)

    def extra_clip(fold):
        return np.zeros((2, len(fold.test_idx) + 1, 3))
    with pytest.raises(ValueError, match=rf"^fold '{first.subject}': oracle scores must be \(n_epochs, {n}, 3\), got "
                                         rf"\(2, {n + 1}, 3\)$"):
        run_loso(toy.samples, extra_clip, tmp_path / "o", oracle_epoch=True, progress=False)

    def one_inf(fold):
        s = np.full((len(fold.test_idx), 3), 1 / 3)
        s[0, 1] = np.inf
        return s
    with pytest.raises(FloatingPointError, match=rf"^fold '{first.subject}': the model's scores are NaN or Inf: its "
                                                 r"training diverged \(lower the learning rate"):
        run_loso(toy.samples, one_inf, tmp_path / "inf", progress=False)


def test_a_partial_main_job_run_names_data_max_folds_in_its_metrics_md(toy, tmp_path):
    """The main job cuts its folds with data.max_folds (icegan loso with max_folds): metrics.md names the key the
    run's config has."""
    from icegan.pipeline import load_main_config
    from icegan.protocol import max_folds_key
    assert max_folds_key(load_main_config(None, [])) == "data.max_folds"
    assert max_folds_key({"max_folds": 2, "data": {"source": "megc2019_htnet"}}) == "max_folds"
    assert max_folds_key(None) == "max_folds"
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "m", config={"data": {"max_folds": 2}}, max_folds=2,
             progress=False)
    md = (tmp_path / "m" / "metrics.md").read_text()
    assert "were run (`data.max_folds`, for smoke tests)" in md
    run_loso(toy.samples, _centroid_fold_fn(toy), tmp_path / "l", config={"max_folds": 2}, max_folds=2, progress=False)
    assert "were run (`max_folds`, for smoke tests)" in (tmp_path / "l" / "metrics.md").read_text()
