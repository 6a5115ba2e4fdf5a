"""Flow weights that learned from the real onset->apex frames of held-out subjects (``real_pair_subjects`` of
self-supervised or fine-tuned weights): the run's outputs say so, not only a log line. run_loso records them
(metrics.json ``real_motion_seen``, a bold "Not leak-free" line in metrics.md), ``icegan table`` shows such a run as
"NOT leak-free", ``icegan features`` writes them into provenance.json (``real_motion_subjects``) and ``icegan loso``
on those maps warns and passes them on. Without the record every output is as before."""
import json
import logging

import numpy as np
import pytest

from icegan.data.toy_features import make_toy_features
from icegan.protocol import run_loso
from icegan.report import TableEntry, results_table


@pytest.fixture(scope="module")
def toy():
    return make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)


def _centroid(fs):
    x = fs.features.flatten(1).numpy()
    y = fs.labels.numpy()

    def fold_fn(fold):
        means = np.stack([x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)])
        return -((x[fold.test_idx][:, None] - means[None]) ** 2).sum(-1)
    return fold_fn


def test_run_loso_records_held_out_subjects_whose_motion_trained_the_flow(toy, tmp_path):
    subjects = sorted(set(toy.samples["subject"]))
    first, second = subjects[0], subjects[1]
    spelt = first.upper()                          # matched as one subject id (icegan.protocol.subject_key)
    m = run_loso(toy.samples, _centroid(toy), tmp_path / "seen", config={"model": "centroid"}, progress=False,
                 motion_seen=[spelt, "elsewhere/s9"], motion_seen_by="flow.weights: selfsup.pt")
    assert m["real_motion_seen"] == {"subjects": [first], "held_out_subjects": len(subjects),
                                     "source": "flow.weights: selfsup.pt"}
    assert json.loads((tmp_path / "seen" / "metrics.json").read_text())["real_motion_seen"]["subjects"] == [first]
    md = (tmp_path / "seen" / "metrics.md").read_text().splitlines()
    sel = next(i for i, line in enumerate(md) if "Selection:" in line)
    note = md[sel + 2]
    assert note.startswith("**Not leak-free:**"), md[:6]
    assert f"1 of the {len(subjects)} held-out subjects ({first})" in note
    assert "flow.weights: selfsup.pt" in note and "tvl1 or farneback" in note and "trained without them" in note
    assert "| NOT leak-free |" in md[sel + 6]

    # the same run without the record, or with a seen subject that the run does not test: metrics.json unchanged
    plain = run_loso(toy.samples, _centroid(toy), tmp_path / "plain", config={"model": "centroid"}, progress=False)
    assert "real_motion_seen" not in plain
    assert {k: v for k, v in m.items() if k != "real_motion_seen"} == plain
    run_loso(toy.samples, _centroid(toy), tmp_path / "untested", config={"model": "centroid"}, progress=False,
             max_folds=1, name="cut", motion_seen=[second], motion_seen_by="x")
    run_loso(toy.samples, _centroid(toy), tmp_path / "cut", config={"model": "centroid"}, progress=False, max_folds=1,
             name="cut")
    for name in ("metrics.json", "metrics.md"):
        assert (tmp_path / "untested" / name).read_text() == (tmp_path / "cut" / name).read_text()
    assert "leak-free" not in (tmp_path / "plain" / "metrics.md").read_text()

    # icegan table: NOT leak-free in the Selection column of every format, honest for the plain run
    entries = [TableEntry("seen", [tmp_path / "seen"]), TableEntry("plain", [tmp_path / "plain"])]
    rows = results_table(entries).splitlines()[2:]
    assert rows[0].startswith("| seen | NOT leak-free |") and rows[1].startswith("| plain | honest |")
    csv = results_table(entries, "csv").splitlines()
    assert csv[1].startswith("seen,NOT leak-free,") and csv[2].startswith("plain,honest,")
    tex = results_table(entries, "latex")
    assert "seen & NOT leak-free &" in tex and "plain & honest &" in tex
    assert "NOT leak-free: the flow network" in tex
    assert "leak-free" not in results_table([entries[1]], "latex")


def test_hde_run_loso_matches_the_subjects_of_the_held_out_datasets(toy, tmp_path):
    """HDE folds hold out datasets: a seen subject inside one is found through the tested clips' subjects."""
    one = sorted(set(toy.samples["subject"]))[0]
    m = run_loso(toy.samples, _centroid(toy), tmp_path / "hde", protocol="HDE", progress=False,
                 motion_seen=[one], motion_seen_by="w")
    assert m["real_motion_seen"]["subjects"] == [one]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``icegan features`` of the tiny synthetic set through one flow network saved twice: with a record of the
    real frames of synthetic/s02 and without one."""
    from _flow_sizes import save_main_job_weights

    from flownet.registry import load_srflownet, save_srflownet
    from icegan.pipeline import export_features, load_main_config
    root = tmp_path_factory.mktemp("fx")
    plain = save_main_job_weights(root / "plain.pt", iters=1)
    seen = save_srflownet(load_srflownet(plain), root / "seen.pt", meta={"real_pair_subjects": ["synthetic/s02"]})
    out = {"weights": seen}
    for name, weights in (("seen", seen), ("plain", plain)):
        cfg = load_main_config(None, ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "threads=1",
                                      "device=cpu", f"flow.weights={weights}"])
        out[name] = export_features(cfg, root / name, progress=False)
    return out


def test_a_main_job_whose_flow_saw_a_tested_subject_records_it(exported, tmp_path):
    """train.py: the subjects its warning names are in metrics.json and metrics.md too (before: a log line only)."""
    from icegan.pipeline import load_main_config, run_main
    cfg = load_main_config(None, ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "threads=1",
                                  "device=cpu", f"flow.weights={exported['weights']}", "gan.enabled=false",
                                  "recognizer.name=logreg", "data.max_folds=2"])
    m = run_main(cfg, tmp_path / "main", progress=False)
    assert m["real_motion_seen"] == {"subjects": ["synthetic/s02"], "held_out_subjects": 2,
                                     "source": f"flow.weights: {exported['weights']}"}
    md = (tmp_path / "main" / "metrics.md").read_text()
    assert "**Not leak-free:** " in md and "1 of the 2 held-out subjects (synthetic/s02)" in md


def _loso(table, out, *extra):
    from icegan.cli import main
    return main(["loso", "--out", str(out), "--no-progress", "data.source=table", f"data.table={table}",
                 "model.name=logreg", "model.logreg_max_iter=50", "threads=1", *extra])


def test_exported_maps_record_the_seen_subjects_and_loso_on_them_says_so(exported, tmp_path, caplog):
    prov = json.loads((exported["seen"].parent / "provenance.json").read_text())
    assert prov["real_motion_subjects"] == ["synthetic/s02"]
    assert "real_motion_subjects" not in json.loads((exported["plain"].parent / "provenance.json").read_text())

    with caplog.at_level(logging.WARNING, logger="icegan"):
        assert _loso(exported["seen"], tmp_path / "seen") == 0
    said = [r.getMessage() for r in caplog.records if "real onset->apex frames" in r.getMessage()]
    assert len(said) == 1 and "1 of its 3 subjects (synthetic/s02)" in said[0] and "provenance.json" in said[0]
    m = json.loads((tmp_path / "seen" / "metrics.json").read_text())
    assert m["real_motion_seen"]["subjects"] == ["synthetic/s02"]
    assert "provenance.json records" in m["real_motion_seen"]["source"]
    assert "**Not leak-free:** " in (tmp_path / "seen" / "metrics.md").read_text()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="icegan"):
        assert _loso(exported["plain"], tmp_path / "plain") == 0
    assert not [r for r in caplog.records if "real onset->apex frames" in r.getMessage()]
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert {k: v for k, v in m.items() if k != "real_motion_seen"} == plain       # same maps, same numbers
    assert "leak-free" not in (tmp_path / "plain" / "metrics.md").read_text()

    # a seen subject that the run does not test (max_folds=1 tests synthetic/s01 only): warned, not recorded
    assert _loso(exported["seen"], tmp_path / "one", "max_folds=1") == 0
    assert "real_motion_seen" not in json.loads((tmp_path / "one" / "metrics.json").read_text())


def test_a_table_without_provenance_or_with_a_bad_record_runs_as_before(exported, tmp_path, caplog):
    import shutil
    bare = tmp_path / "bare"
    shutil.copytree(exported["seen"].parent, bare)
    (bare / "provenance.json").unlink()
    assert _loso(bare / "features.csv", tmp_path / "no_prov") == 0
    assert "real_motion_seen" not in json.loads((tmp_path / "no_prov" / "metrics.json").read_text())

    prov = json.loads((exported["seen"].parent / "provenance.json").read_text())
    (bare / "provenance.json").write_text(json.dumps({**prov, "real_motion_subjects": "synthetic/s02"}))
    with caplog.at_level(logging.WARNING, logger="icegan"):
        assert _loso(bare / "features.csv", tmp_path / "bad") == 0
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "'real_motion_subjects' is not a list of subject ids" in said and str(bare / "provenance.json") in said
