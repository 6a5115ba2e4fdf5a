"""Flags of the ``bench/`` scripts refused where their value means nothing, before any work: ``classical_loso.py
--jobs -1`` (scikit-learn's "all cores", which no --jobs / --workers flag of the project takes) and
``learning_curve.py --target`` outside a UF1's range [0, 1]; and ``noise_filter_share.py --seed`` near ``SEED_MAX``,
whose per-fold forest seeds now wrap as a run's do (:func:`flownet.user_numbers.derived_seed`)."""
import os
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from flownet.user_numbers import SEED_MAX, derived_seed
from _bench import bench_parser, load_bench

ROOT = Path(__file__).resolve().parents[1]


def _refused(name: str, argv: list[str], monkeypatch, capsys) -> str:
    """argparse's error for ``bench/<name>.py argv`` (the exit code must be 2)."""
    parser = bench_parser(name, monkeypatch)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


# --- classical_loso.py --jobs ----------------------------------------------------------------------------------------

def test_classical_loso_jobs_minus_one_asks_for_a_positive_count(monkeypatch, capsys):
    """-1 (scikit-learn's n_jobs for all cores) is refused, as by every --jobs / --workers flag of the project, with a
    message that says to give a positive count rather than only a range."""
    err = _refused("classical_loso", ["--jobs", "-1"], monkeypatch, capsys)
    for word in ("--jobs", ">= 1", "positive count", "-1", "all cores"):
        assert word in err, f"{word!r} not in {err!r}"


def test_classical_loso_jobs_positive_is_read(monkeypatch):
    parser = bench_parser("classical_loso", monkeypatch)
    assert parser.parse_args(["--jobs", "4"]).jobs == 4
    assert parser.parse_args([]).jobs == 2


# --- noise_filter_share.py --seed ------------------------------------------------------------------------------------

def _folds(n: int) -> list:
    return [SimpleNamespace(index=i) for i in range(n)]


def test_forest_seeds_are_seed_plus_1000_per_fold():
    mod = load_bench("noise_filter_share")
    assert mod.forest_seeds(7, _folds(3)) == [7, 1007, 2007]
    largest = SEED_MAX - 1000 * 67                      # the 68 CDE folds: the last has index 67
    assert mod.forest_seeds(largest, _folds(68))[-1] == SEED_MAX


@pytest.mark.parametrize("seed", [SEED_MAX, SEED_MAX - 1000 * 67 + 1])
def test_forest_seeds_past_seed_max_wrap_as_a_runs_do(seed):
    """A --seed that argparse accepts (<= SEED_MAX) but whose later folds' forest seeds pass SEED_MAX: scikit-learn
    refused fold 1's or 67's random_state after the forests before it were fitted. The seeds now wrap, as
    icegan.recognition's noise filter derives them (derived_seed), so the bench measures what a run with that seed
    drops."""
    mod = load_bench("noise_filter_share")
    seeds = mod.forest_seeds(seed, _folds(68))
    assert all(0 <= s <= SEED_MAX for s in seeds)
    assert seeds[0] == seed and seeds[-1] == (seed + 1000 * 67) - (SEED_MAX + 1)


def test_noise_filter_share_seeds_are_the_runs_seeds(shared_data, monkeypatch, capsys):
    """The script with --seed SEED_MAX fits every fold's forest with the seed the noise filter of icegan.recognition
    gives that fold in a run (it stopped before any fold at first, and crashed at fold 1 before that)."""
    import icegan.label_noise
    fitted = []
    monkeypatch.setattr(icegan.label_noise, "flag_noisy_labels",
                        lambda x, y, trees, seed, *a, **kw: fitted.append(seed) or np.zeros(len(y), dtype=bool))
    path = ROOT / "bench" / "noise_filter_share.py"
    monkeypatch.setattr(sys, "argv", [str(path), "--seed", str(SEED_MAX), "--trees", "1"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    environ = dict(os.environ)
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        os.environ.clear()
        os.environ.update(environ)
    assert len(fitted) == 68
    assert fitted == [derived_seed(SEED_MAX, 1000 * i) for i in range(68)]
    assert fitted[:2] == [SEED_MAX, 999]


# --- learning_curve.py --target --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,words", [
    ("1.5", ["--target", "[0, 1]", "UF1", "got 1.5"]),
    ("75", ["--target", "[0, 1]", "got 75"]),
    ("-0.1", ["--target", "[0, 1]", "got -0.1"]),
    ("inf", ["--target", "expected a finite number", "'inf'"]),
])
def test_learning_curve_target_is_a_uf1(value, words, monkeypatch, capsys):
    """--target is the UF1 a fit is extrapolated to: a value above 1 (a percentage, 75) is no UF1 any recognizer
    reaches, and was extrapolated to a meaningless subject count; refused before any run is read."""
    err = _refused("learning_curve", ["run", "--target", value], monkeypatch, capsys)
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.parametrize("value,expected", [("0", 0.0), ("1", 1.0), (" .75", 0.75), ("1e-1", 0.1)])
def test_learning_curve_target_in_range_is_read(value, expected, monkeypatch):
    parser = bench_parser("learning_curve", monkeypatch)
    assert parser.parse_args(["run", "--target", value]).target == expected
    assert parser.parse_args(["run"]).target == 0.75
