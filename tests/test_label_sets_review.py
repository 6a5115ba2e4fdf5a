"""Label sets at the seams a review found: the places that still assumed MEGC2019's three classes where a run of
CASME II's five (data.labels=casme2_5) reaches them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

FIVE = ("happiness", "disgust", "repression", "surprise", "others")


def _five_class_clips(n_subjects: int = 3, per_class: int = 2, seed: int = 0):
    """(x, y, subjects): ``per_class`` clips of each of 5 classes per subject, 3×8×8 maps."""
    g = torch.Generator().manual_seed(seed)
    n = n_subjects * 5 * per_class
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % 5
    x[:, 0] += 0.2 * y[:, None, None]
    subjects = [f"casme2/s{i // (5 * per_class)}" for i in range(n)]
    return x, y, subjects


@pytest.mark.parametrize("setting", ["subject_weighting", "class_balance"])
def test_sklearn_recognizer_with_sample_weights_fits_five_classes(setting):
    """Subject weighting or per-dataset class balance (sample weights) of a scikit-learn recognizer on five classes:
    before, its class weights were counted over 3 classes and a label 3 or 4 crashed in torch (one_hot)."""
    from icegan.protocol import Fold
    from icegan.recognition import fit_predict_sklearn, fit_recognizer
    from icegan.recognizer_config import RecognizerConfig
    x, y, subjects = _five_class_clips()
    kw = {"subject_weighting": True} if setting == "subject_weighting" else {"class_balance": "per_dataset"}
    cfg = RecognizerConfig(name="logreg", **kw)
    train = np.arange(10, 30)
    fold = Fold(0, "casme2/s0", train, np.arange(10))
    p = fit_predict_sklearn(cfg, x, y, fold, n_classes=5, subjects=subjects)
    assert p.shape == (10, 5)
    assert np.allclose(p.sum(1), 1.0)
    assert (p[:, 3:] > 0).all()                     # classes 3 and 4 were fitted, not left at 0
    fitted = fit_recognizer(cfg, x[train], y[train], n_classes=5, subjects_train=[subjects[i] for i in train])
    assert fitted(x[:10]).shape == (10, 5)


def test_loso_help_names_a_features_command_that_makes_a_five_class_table(capsys):
    """`icegan loso --help` on data.labels names the `icegan features` command whose table it reads; that command's
    config must load with casme2_5 (before: configs/casme2.yaml data.labels=casme2_5, refused for composite_only)."""
    import re
    import shlex
    from pathlib import Path

    import icegan
    from icegan.cli import main
    from icegan.pipeline import load_main_config
    with pytest.raises(SystemExit):
        main(["loso", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    labels = text[text.index("data.labels=megc2019|casme2_5"):]
    command = re.search(r"`icegan features --config ([^`]+)`", labels).group(1)
    config, *overrides = shlex.split(command)
    cfg = load_main_config(Path(icegan.__file__).resolve().parents[1] / config, overrides)
    assert cfg.data.labels == "casme2_5"
    assert "(B, K) logits" in text and "(B, 3) logits" not in text      # a custom network of a five-class run


def _suite(folder, runs: str):
    """A suite file in ``folder`` of the logistic-regression recipe with the run lines ``runs``."""
    from pathlib import Path

    import icegan
    recipe = Path(icegan.__file__).resolve().parents[1] / "configs" / "features_logreg.yaml"
    path = folder / "suite.yaml"
    path.write_text("name: mix\nseeds: [0]\nruns:\n" + runs.replace("RECIPE", str(recipe)))
    return path


def test_suite_of_two_label_sets_is_refused_before_any_run(tmp_path):
    """A suite whose runs score two label sets: refused when it is planned, naming both runs and their data.labels
    (before: every run trained, then the comparison refused them and no results.md was written)."""
    from icegan.config import ConfigError
    from icegan.suite import load_suite, plan_suite
    table = "[data.source=table, data.table=t.csv, protocol=SDE, dataset=casme2"
    path = _suite(tmp_path, f"  - {{label: five, config: RECIPE, overrides: {table}, data.labels=casme2_5]}}\n"
                            f"  - {{label: three, config: RECIPE, overrides: {table}]}}\n")
    with pytest.raises(ConfigError, match=r"suite runs 'five' \(data.labels=casme2_5\) and 'three' "
                                          r"\(data.labels=megc2019\) score different classes"):
        plan_suite(load_suite(path), path, tmp_path / "out")
    same = _suite(tmp_path, f"  - {{label: a, config: RECIPE, overrides: {table}, data.labels=casme2_5]}}\n"
                            f"  - {{label: b, config: RECIPE, overrides: {table}, data.labels=casme2_5]}}\n")
    assert [p.label for p in plan_suite(load_suite(same), same, tmp_path / "out")] == ["a", "b"]


def _finished_run(folder, classes, subjects=("casme2/s0", "casme2/s1"), seed=0):
    """A finished run folder of ``classes`` as run_loso writes it: two SDE folds of CASME II, 10 clips each, labels
    cycling through the classes."""
    import pandas as pd

    from icegan.protocol import run_loso
    k = len(classes)
    samples = pd.DataFrame({"dataset": "casme2", "subject": [s for s in subjects for _ in range(10)],
                            "clip": [f"c{i}" for i in range(10 * len(subjects))],
                            "label": [i % k for _ in subjects for i in range(10)]})
    rng = np.random.default_rng(seed)

    def fold_fn(fold):
        return rng.dirichlet(np.ones(k), size=len(fold.test_idx))
    run_loso(samples, fold_fn, folder, protocol="SDE", dataset="casme2", progress=False, classes=classes)
    return folder


def test_table_names_the_classes_of_runs_of_another_label_set(tmp_path):
    """`icegan table` over five-class runs: a Classes column (only then) and a LaTeX caption naming CASME II's five
    classes (before: no word of the classes, and the caption said MEGC2019); an entry mixing label sets is refused."""
    from icegan.report import TableEntry, results_table
    five = _finished_run(tmp_path / "five", FIVE)
    three = _finished_run(tmp_path / "three", ("negative", "positive", "surprise"))
    table = results_table([TableEntry("A", [five]), TableEntry("B", [three])])
    head, _, a, b = table.splitlines()
    assert head.startswith("| Method | Selection | Protocol | Classes | n |")
    assert a.startswith("| A | honest | SDE | 5 (casme2_5) | 1 |")
    assert b.startswith("| B | honest | SDE | 3 (megc2019) | 1 |")
    latex = results_table([TableEntry("A", [five])], "latex")
    assert "(MEGC2019)" not in latex
    assert "CASME II 5 classes (happiness, disgust, repression, surprise, others)" in latex
    assert "5 (casme2\\_5)" in latex
    csv = results_table([TableEntry("A", [five])], "csv").splitlines()
    assert csv[0].startswith("Method,Selection,Protocol,Classes,n,")
    assert csv[1].startswith("A,honest,SDE,5 (casme2_5),1,")
    only_three = results_table([TableEntry("B", [three])])          # MEGC2019 alone: the table as before
    assert only_three.startswith("| Method | Selection | Protocol | n |") and "Classes" not in only_three
    assert "(MEGC2019)" in results_table([TableEntry("B", [three])], "latex")
    with pytest.raises(ValueError, match=r"table entry 'AB': its runs score different classes \(\['casme2_5', "
                                         r"'megc2019'\]"):
        results_table([TableEntry("AB", [five, three])])


def test_ensemble_of_two_label_sets_names_them(tmp_path):
    """`icegan ensemble` of a five-class and a three-class run of the same clips: refused naming both label sets and
    data.labels (before: 'differs in y_true' at the first clip whose class id differs, which said nothing of why)."""
    from icegan.ensemble import EnsembleError, ensemble_runs
    five = _finished_run(tmp_path / "five", FIVE)
    three = _finished_run(tmp_path / "three", ("negative", "positive", "surprise"))
    with pytest.raises(EnsembleError, match=r"three scores the classes of the label set megc2019 \(negative, positive, "
                                            r"surprise\) and \S+five those of casme2_5 \(happiness, .*data.labels"):
        ensemble_runs([five, three], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()


def test_gan_sample_grid_tag_names_every_class_of_a_five_class_generator():
    """The TensorBoard sample grid of an ICE-GAN conditioned on five classes (the main job with data.labels=casme2_5)
    is tagged with its five class columns (before: 'onset_apex_class0_class1_class2' over a grid of seven columns)."""
    from icegan.gan.trainer import GanConfig, train_gan

    class Log:
        def __init__(self):
            self.images = {}

        def add_image(self, tag, img, step):
            self.images[tag] = img

        def __getattr__(self, name):                 # add_scalar, flush: nothing kept
            return lambda *a, **k: None
    cfg = GanConfig()
    cfg.data.img_size = 32
    m = cfg.model
    m.n_classes = 5
    m.g_base_channels, m.g_max_channels, m.d_base_channels = 8, 16, 8
    m.id_dim, m.z_dim, m.d_adv, m.d_exp = 16, 8, 8, 8
    t = cfg.train
    t.progress, t.batch_size, t.hflip, t.epochs = False, 10, False, 1
    torch.manual_seed(0)
    onset = torch.rand(10, 1, 32, 32) * 2 - 1
    log = Log()
    train_gan(onset, onset.clone(), torch.arange(10) % 5, cfg, device="cpu", log=log)
    tags = [k for k in log.images if k.startswith("samples/")]
    assert tags == ["samples/onset_apex_class0_class1_class2_class3_class4"]
    assert log.images[tags[0]].shape[-1] == 2 + 7 * (32 + 2)           # 7 columns: onset, apex, 5 classes
    # a generator whose config names its classes (a main-job fold's, model.classes) is tagged with the names
    m.classes = ["anger", "contempt", "happiness", "surprise", "other"]
    log = Log()
    train_gan(onset, onset.clone(), torch.arange(10) % 5, cfg, device="cpu", log=log)
    assert [k for k in log.images if k.startswith("samples/")] == [
        "samples/onset_apex_anger_contempt_happiness_surprise_other"]


def test_resuming_a_run_folder_with_the_other_label_set_names_data_labels(tmp_path):
    """A five-class run folder resumed as a three-class run (and back): refused, the message giving both runs' classes
    and the setting, data.labels (before: only 'differs in ['classes', 'provenance']')."""
    from icegan.protocol import LosoStateError
    five = _finished_run(tmp_path / "run", FIVE)
    with pytest.raises(LosoStateError, match=r"its classes happiness, disgust, repression, surprise, others vs now "
                                             r"negative, positive, surprise: another label set, data.labels"):
        _finished_run(five, ("negative", "positive", "surprise"))
    three = _finished_run(tmp_path / "run3", ("negative", "positive", "surprise"))
    with pytest.raises(LosoStateError, match=r"its classes negative, positive, surprise vs now happiness, .*"
                                             r"data.labels"):
        _finished_run(three, FIVE)


def test_merge_runs_of_five_classes(tmp_path):
    """bench/merge_runs.py over two five-class runs of disjoint subjects: metrics and reports over the five classes
    (before: scored as 3 classes, 'y_true[..] = 3 is outside the class ids 0..2'); runs of two label sets refused."""
    import json

    import pandas as pd

    from _bench import load_bench
    from icegan.metrics import compute_metrics
    mod = load_bench("merge_runs")
    a = _finished_run(tmp_path / "a", FIVE)
    b = _finished_run(tmp_path / "b", FIVE, subjects=("casme2/s2", "casme2/s3"), seed=1)
    m = mod.merge_runs([a, b], tmp_path / "merged")
    pred = pd.read_csv(tmp_path / "merged" / "predictions.csv")
    assert len(pred) == 40
    assert m["overall"]["UF1"] == pytest.approx(compute_metrics(pred["y_true"], pred["y_pred"], 5)["UF1"])
    assert json.loads((tmp_path / "merged" / "metrics.json").read_text())["n_samples"] == 40
    assert "| Full | others |" in (tmp_path / "merged" / "metrics.md").read_text()
    three = _finished_run(tmp_path / "c", ("negative", "positive", "surprise"), subjects=("casme2/s4", "casme2/s5"))
    with pytest.raises(ValueError, match=r"c scores the classes of megc2019 and \S+a those of casme2_5; merge runs of "
                                         r"one label set \(data.labels\)"):
        mod.merge_runs([a, three], tmp_path / "merged2")


def test_the_table_source_hint_of_five_classes_names_a_config_that_loads():
    """data.labels=casme2_5 on the megc2019_htnet source is refused with the `icegan features` command that writes a
    five-class table; its config must load (before: 'CONFIG data.labels=casme2_5', which configs/casme2.yaml, the
    CASME II config, refuses for composite_only: true)."""
    import re
    from pathlib import Path

    import icegan
    from icegan.commands.loso import LosoConfig
    from icegan.config import ConfigError, load_config
    from icegan.pipeline import load_main_config
    with pytest.raises((ConfigError, ValueError), match="needs data.source=table") as err:
        load_config(LosoConfig, None, ["data.labels=casme2_5"])
    command = re.search(r"`icegan features --config (\S+)`", str(err.value))
    assert command, str(err.value)
    config = command.group(1)
    assert load_main_config(Path(icegan.__file__).resolve().parents[1] / config, []).data.labels == "casme2_5"


def test_class_ids_of_an_exported_table_are_read_with_the_label_set_it_was_written_with(tmp_path):
    """A table `icegan features` wrote for MEGC2019 (class ids, provenance.json recording data.labels, or none before
    label sets) read with data.labels=casme2_5: refused naming the setting (before: read silently, MEGC2019's
    1 = positive taken as CASME II's 1 = disgust). The same table with its own set, and class names, read as before."""
    import json

    from icegan.data.feature_table import load_table_features
    maps = tmp_path / "maps"
    maps.mkdir()
    rows = ["dataset,subject,clip,label,path"]
    for i in range(4):
        np.save(maps / f"c{i}.npy", np.full((3, 8, 8), 0.1 * i, dtype=np.float32))
        rows.append(f"casme2,sub0{i % 2},EP{i},{i % 3},maps/c{i}.npy")
    table = tmp_path / "features.csv"
    table.write_text("\n".join(rows) + "\n")
    prov = tmp_path / "provenance.json"
    for recorded in ({"labels": "megc2019"}, {}):                 # {}: an export made before label sets
        prov.write_text(json.dumps({"flow": {"method": "tvl1"}, "size": 8, **recorded}))
        with pytest.raises(ValueError, match=r"features.csv: its labels are class ids of the label set megc2019 "
                                             r"\(\S+provenance.json records data.labels: megc2019.*not of casme2_5.*"
                                             r"set data.labels=megc2019"):
            load_table_features(table, labels="casme2_5")
        assert load_table_features(table).samples["label"].tolist() == [0, 1, 2, 0]
    named = tmp_path / "named.csv"             # class names say their set: read with it, whatever the provenance
    named.write_text(table.read_text().replace(",0,maps", ",happiness,maps").replace(",1,maps", ",disgust,maps")
                     .replace(",2,maps", ",others,maps"))
    assert load_table_features(named, labels="casme2_5").samples["label"].tolist() == [0, 1, 4, 0]
    prov.unlink()                              # a table of your own (no provenance): ids read as data.labels says
    assert load_table_features(table, labels="casme2_5").samples["label"].tolist() == [0, 1, 2, 0]


def test_clips_with_a_five_class_config_say_to_add_megc2019_labels(tmp_path):
    """`icegan features --config configs/casme2_5class.yaml --clips LIST` (the config whose maps a five-class model
    was fitted on, as `icegan predict --help` says to give): refused saying what to add, data.labels=megc2019, with
    which it runs (before: 'the dataset 'clips' of data.prepare.datasets has no such classes ...; leave it out', of a
    dataset the user never listed)."""
    from pathlib import Path

    import icegan
    from icegan.config import ConfigError
    from icegan.pipeline import load_main_config, with_clip_list
    config = Path(icegan.__file__).resolve().parents[1] / "configs" / "casme2_5class.yaml"
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset\np01,take1,frames,1\n")
    with pytest.raises(ConfigError, match=r"--clips: a clip list's labels are MEGC2019 classes .* "
                                          r"data.labels=casme2_5: add data.labels=megc2019"):
        with_clip_list(load_main_config(config, []), clips)
    cfg = with_clip_list(load_main_config(config, ["data.labels=megc2019"]), clips)
    assert [d.name for d in cfg.data.prepare.datasets] == ["clips"] and cfg.data.labels == "megc2019"


def test_predict_help_names_the_clip_list_command_of_a_five_class_model(capsys):
    """`icegan predict --help` gives `icegan features --config C --clips LIST` for new clips, C the config of the
    model's maps; for a five-class model (C = configs/casme2_5class.yaml) that command is refused unless
    data.labels=megc2019 is added (:func:`icegan.pipeline.with_clip_list`), which the help must say."""
    from icegan.cli import main
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    clips = text[text.index("Your own recordings"):]
    assert "for a model of data.labels=casme2_5 or samm_5 add data.labels=megc2019" in clips[:400]


def test_table_of_a_run_folder_without_predictions_reads_its_classes_from_run_json(tmp_path):
    """A five-class run folder copied with its metrics alone (no predictions.csv): `icegan table` still names its
    classes, from run.json's ``classes`` (before: read as MEGC2019's three); a MEGC2019 run's run.json has none and
    stays MEGC2019; classes of no label set are refused naming run.json."""
    import json

    from icegan.report import TableEntry, results_table, run_label_set
    five = _finished_run(tmp_path / "five", FIVE)
    three = _finished_run(tmp_path / "three", ("negative", "positive", "surprise"))
    for run in (five, three):
        (run / "predictions.csv").unlink()
    assert run_label_set(five).name == "casme2_5"
    assert run_label_set(three).name == "megc2019"
    assert results_table([TableEntry("A", [five])]).splitlines()[2].startswith("| A | honest | SDE | 5 (casme2_5) |")
    h = json.loads((five / "run.json").read_text())
    h["classes"] = ["a", "b"]
    (five / "run.json").write_text(json.dumps(h))
    with pytest.raises(ValueError, match=r"five/run\.json: 'classes' no label set has the classes \['a', 'b'\]"):
        run_label_set(five)


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_compare_names_the_classes_of_five_class_runs(tmp_path, capsys, fmt):
    """`icegan compare` of five-class runs names their classes, as `icegan table` does (before: no word of them):
    the Markdown legend's Classes line, the LaTeX caption, a CSV classes column; MEGC2019 runs' tables unchanged."""
    from icegan.cli import main
    a, b = _finished_run(tmp_path / "a", FIVE), _finished_run(tmp_path / "b", FIVE, seed=1)
    assert main(["compare", f"a={a}", f"b={b}", "--resamples", "100", "--format", fmt]) == 0
    five = capsys.readouterr().out
    c, d = (_finished_run(tmp_path / n, ("negative", "positive", "surprise"), seed=s) for n, s in (("c", 0), ("d", 1)))
    assert main(["compare", f"c={c}", f"d={d}", "--resamples", "100", "--format", fmt]) == 0
    three = capsys.readouterr().out
    title = "CASME II 5 classes (happiness, disgust, repression, surprise, others)"
    if fmt == "markdown":
        assert f"Classes: {title} (data.labels=casme2_5)." in five and "Classes:" not in three
    elif fmt == "latex":
        assert f"UF1 and UAR of SDE LOSO on CASME II runs of {title} with 95 \\% subject-bootstrap" in five
        assert "\\caption{UF1 and UAR of SDE LOSO on CASME II runs with 95 \\% subject-bootstrap" in three
    else:
        assert five.splitlines()[0].startswith("label,runs,selection,protocol,classes,UF1,")
        assert five.splitlines()[1].startswith("a,1,honest,SDE,casme2_5,")
        assert three.splitlines()[0].startswith("label,runs,selection,protocol,UF1,")
