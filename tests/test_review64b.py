"""Review 64b: the advice of table's metrics/predictions refusal fits what was edited; a run folder's provenance hint
says an old folder's unrecorded keys once and a key this run no longer records as such; an ensemble of members with
as many but other held-out folds names them; the suite's "Every run" table words a missing UF1 as icegan table does."""
from types import SimpleNamespace

import pytest
from _runs import edit_metrics, random_prob_fn, write_finished_run, write_metrics

from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.protocol import LosoStateError, _provenance_hint, run_loso
from icegan.report import _load

WEIGHTS = {"flow_weights": "a.pt", "flow_weights_sha256": "1"}


@pytest.fixture(scope="module")
def toy():
    """6 subjects of 2 datasets (3 each, 2 clips per class): 6 CDE folds."""
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


def _set_uf1(d, value):
    edit_metrics(d, lambda m: m["overall"].update(UF1=value))


def test_the_metrics_refusal_says_a_same_out_rerun_only_for_an_edited_metrics_json(toy, tmp_path):
    """It advised "restore them or run the command ... again with the same --out" for both files, but a rerun with
    the same --out refuses a folder whose predictions.csv labels were edited. metrics.json alone edited: that rerun
    writes it again from the predictions, and the table shows the run again."""
    out = tmp_path / "run"
    run_loso(toy.samples, random_prob_fn(1), out, progress=False)
    _set_uf1(out, 0.99)
    with pytest.raises(ValueError) as exc:
        _load(out)
    assert str(exc.value).endswith(
        "the two files disagree (was one edited, or copied from another run?); restore them; if metrics.json alone "
        "was edited, run the command that wrote this folder again with the same --out (it writes its results again "
        "from predictions.csv); otherwise delete this folder (or give another --out) and run it again"), str(exc.value)
    run_loso(toy.samples, random_prob_fn(1), out, progress=False)
    assert _load(out)["overall"]["UF1"] != 0.99


@pytest.mark.parametrize("was, now, hint", [
    ({}, WEIGHTS, "the folder was made before icegan recorded flow_weights, flow_weights_sha256"),
    (WEIGHTS, {}, "this run records no flow_weights, flow_weights_sha256 (it loads no flow.weights)"),
    ({"recognizer_source_sha256": "1"}, {}, "this run records no recognizer_source_sha256 (it uses no recognizer_module)"),
    (WEIGHTS, {**WEIGHTS, "flow_weights_sha256": "2"}, "the weights file changed (flow.weights)")])
def test_the_provenance_hint_says_unrecorded_keys_once_and_keys_no_longer_recorded(was, now, hint):
    changed = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    assert _provenance_hint(was, now, changed) == hint


@pytest.mark.parametrize("was, now, hint", [
    (None, WEIGHTS, "the folder was made before icegan recorded flow_weights, flow_weights_sha256)"),
    (WEIGHTS, None, "this run records no flow_weights, flow_weights_sha256 (it loads no flow.weights))")])
def test_a_resume_refused_for_weights_provenance_says_it_once(toy, tmp_path, was, now, hint):
    """An old folder without provenance resumed by a run with flow weights said "the folder was made before icegan
    recorded flow_weights; the folder was made before icegan recorded flow_weights_sha256"; a folder of a run with
    weights resumed by one without said "the weights file changed", though this run loads none."""
    out = tmp_path / "run"
    run_loso(toy.samples, random_prob_fn(1), out, progress=False, provenance=was, config={"seed": 0})
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, random_prob_fn(1), out, progress=False, provenance=now, config={"seed": 0})
    msg = str(exc.value)
    assert hint in msg and msg.count("made before") <= 1 and "the weights file changed" not in msg, msg


def test_hde_members_of_as_many_but_other_datasets_name_them(tmp_path):
    """HDE members of casme2+samm and casme2+smic said "(2 vs 2 datasets, first difference 'samm' vs 'smic')"."""
    for name, ds in (("a", ("casme2", "samm")), ("b", ("casme2", "smic"))):
        fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2, datasets=ds)
        run_loso(fs.samples, random_prob_fn(1), tmp_path / name, protocol="HDE", progress=False)
    with pytest.raises(EnsembleError) as exc:
        ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "ens")
    assert (f"in its folds (2 vs 2 datasets; smic only in {tmp_path / 'b'}; samm only in {tmp_path / 'a'}); "
            in str(exc.value)), str(exc.value)


def test_the_suite_every_run_table_words_a_missing_uf1_as_icegan_table(tmp_path):
    """A member metrics.json without overall.UF1 said "'overall.UF1' is None, not a number"."""
    from icegan.suite import per_seed_table
    rows = [(f"casme2/s{i}", f"c{j}", j % 3, (i + j) % 3) for i in range(3) for j in range(3)]
    d = write_finished_run(tmp_path / "st", rows, datasets=lambda s: s.split("/")[0])
    write_metrics(d)
    f = d / "metrics.json"
    edit_metrics(d, lambda m: m["overall"].pop("UF1"))
    plan = [SimpleNamespace(label="ST", seed=0, out=d, over_seeds=False)]
    suite = SimpleNamespace(labels=["ST"], seeds=[0])
    with pytest.raises(ValueError) as exc:
        per_seed_table(suite, plan, {d})
    with pytest.raises(ValueError) as table:
        _load(d)
    assert str(exc.value) == str(table.value)
    assert str(exc.value).startswith(f"{f}: no 'overall.UF1' (not an icegan metrics.json, or cut down); "), exc.value
