"""Seeds derived from a run's seed stay in [0, SEED_MAX]: a config takes any seed up to SEED_MAX = 2**32 - 1, and the
seeds derived from it by adding an offset (a fold's ``seed + fold.index``, a forest's ``seed + 1000 · fold.index``)
wrap around (:func:`flownet.user_numbers.derived_seed`) instead of passing SEED_MAX and crashing a later fold in
numpy's legacy seeding or scikit-learn's ``random_state``. Small seeds (every recorded run) derive what they did."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flownet.user_numbers import SEED_MAX, derived_seed
from icegan.data.toy_features import make_toy_features
from icegan.protocol import make_folds

ROOT = Path(__file__).resolve().parents[1]


@given(st.integers(0, SEED_MAX - 100_000), st.integers(0, 100_000))
def test_derived_seed_is_the_plain_sum_below_seed_max(seed, offset):
    assert derived_seed(seed, offset) == seed + offset


def test_derived_seed_wraps_past_seed_max_into_the_seeds_numpy_and_scikit_learn_take():
    assert derived_seed(5, 1000 * 2) == 2005
    assert derived_seed(SEED_MAX, 0) == SEED_MAX
    assert derived_seed(SEED_MAX, 1) == 0
    assert derived_seed(SEED_MAX, 1000 * 2) == 1999
    assert derived_seed(SEED_MAX - 10, 1000 + 3) == 992
    for offset in (0, 1, 7919, 1000 * 60, 2 ** 40):
        s = derived_seed(SEED_MAX, offset)
        assert 0 <= s <= SEED_MAX
        np.random.RandomState(s)                    # numpy's legacy seeding refuses anything outside [0, SEED_MAX]


def test_feature_loso_noise_filter_with_seed_max_trains_every_fold(monkeypatch):
    """``icegan loso`` with seed=SEED_MAX and model.noise_filter=forest: the forest of fold k gets the fold's seed
    wrapped (SEED_MAX + 1000 · k mod 2**32) and every fold is scored; the forest of fold 1 was refused by
    scikit-learn (random_state 4294968295) after fold 0's forest had been fitted."""
    import icegan.label_noise as label_noise
    from icegan.commands.loso import LosoConfig, fold_runner
    from icegan.config import load_config

    seeds, real = [], label_noise.flag_noisy_labels

    def spy(x, y, trees, seed, *a, **kw):
        seeds.append(seed)
        return real(x, y, trees, seed, *a, **kw)

    monkeypatch.setattr(label_noise, "flag_noisy_labels", spy)
    cfg = load_config(LosoConfig, None, ["data.source=toy", "threads=1", f"seed={SEED_MAX}", "model.epochs=1",
                                         "model.batch_size=8", "model.noise_filter=forest", "model.forest_trees=5",
                                         "model.folds_per_group=0"])
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    folds = make_folds(fs.samples["subject"].tolist(), "CDE")[:3]
    fn, _, _ = fold_runner(cfg, fs, progress=False)
    scores = fn(folds)
    assert seeds == [SEED_MAX, 999, 1999]
    assert len(scores) == 3
    for f, s in zip(folds, scores):
        assert s.shape == (len(f.test_idx), 3) and np.allclose(s.sum(1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    from _flow_sizes import save_main_job_weights
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


MAIN_TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "gan.epochs=1", "gan.batch_size=8",
             "gan.base_channels=8", "gan.d_base_channels=8", "gan.synthetic_ratio=0.5", "recognizer.epochs=1",
             "recognizer.batch_size=16", "threads=1", "device=cpu", f"seed={SEED_MAX}"]


@pytest.mark.parametrize("extra", [["gan.enabled=false", "recognizer.name=random_forest", "recognizer.forest_trees=5"],
                                   ["recognizer.name=ststnet", "gan.joint=true"]])
def test_main_job_with_seed_max_trains_every_fold(extra, tiny_flow, tmp_path, monkeypatch):
    """The main job (synthetic data) with seed=SEED_MAX: every fold runs, the recognizer of fold k seeded with
    SEED_MAX + k wrapped. It crashed at fold 1 (np.random.seed(4294967296): 'Seed must be between 0 and 2**32 - 1'),
    and a scikit-learn recognizer would then have been refused its random_state."""
    import icegan.pipeline as pipeline
    from icegan.pipeline import FoldRunner, build_flow, compute_flow_features, load_main_config, load_samples, to_unit
    cfg = load_main_config(None, MAIN_TINY + [f"flow.weights={tiny_flow}", *extra])
    clips = load_samples(cfg, progress=False)
    est = build_flow(cfg, torch.device("cpu"))
    feats = compute_flow_features(est, to_unit(clips.onset), to_unit(clips.apex), cfg.recognizer.input_size)
    seen, real = [], pipeline.fit_predict

    def spy(*a, **kw):
        seen.append(kw["seed"])
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "fit_predict", spy)
    folds = make_folds(clips.samples["subject"].tolist(), "CDE")
    assert len(folds) == 3
    for f in folds:
        s = FoldRunner(cfg, clips, feats, est, tmp_path / str(f.index), torch.device("cpu"))(f)
        assert s.shape == (len(f.test_idx), 3) and np.isfinite(s).all()
    assert seen == [SEED_MAX, 0, 1]


def _seed_sums(tree: ast.AST):
    """The ``+`` expressions of ``tree`` with an operand named ``seed`` or ``*.seed`` (``seed + 1000 * index``,
    ``cfg.seed + fold.index``, ``10_000 + seed``); strings and comments are not code, so never found."""
    def is_seed(node):
        return (isinstance(node, ast.Name) and node.id == "seed") or \
            (isinstance(node, ast.Attribute) and node.attr == "seed")
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (is_seed(node.left) or is_seed(node.right)):
            yield node


# seeds derived by a plain sum on purpose: a consumer that takes any non-negative integer, from a seed not bounded by
# SEED_MAX (file, the expression as written)
PLAIN_SUMS = {
    ("icegan/data/synthetic_me.py", "10_000 + seed"),            # numpy's default_rng takes any non-negative seed
    # a flow config's train.seed is any non-negative integer; torch's generator takes seeds up to 2**64 - 1
    ("flownet/train.py", "t.seed + step"),
    ("flownet/selfsup.py", 't.seed + state["step"]'),
    ("flownet/models/decflow.py", "t.seed + step"),
}


def test_no_seed_is_derived_by_a_plain_sum_outside_derived_seed():
    """Every seed of icegan/ and flownet/ derived by adding an offset goes through derived_seed, but for the plain
    sums listed (consumers that take any non-negative integer)."""
    found = set()
    for pkg in ("icegan", "flownet"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for node in _seed_sums(ast.parse(text, filename=str(path))):
                found.add((path.relative_to(ROOT).as_posix(), ast.get_source_segment(text, node)))
    assert found - PLAIN_SUMS == set(), "seeds derived by a plain sum (use flownet.user_numbers.derived_seed)"


def test_the_scan_finds_seed_sums_in_code_only():
    code = '''"""seed + 1000 * index"""
def f(seed, cfg, fold, k):
    # cfg.seed + 1
    a = seed + 1000 * k
    b = np.random.seed(cfg.seed + fold.index)
    c = derived_seed(seed, 1) + seed_count
    d = cfg.seed * 100003 + k
    return "seed + 1"
'''
    assert [ast.get_source_segment(code, n) for n in _seed_sums(ast.parse(code))] == ["seed + 1000 * k",
                                                                                      "cfg.seed + fold.index"]
