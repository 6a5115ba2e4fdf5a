"""The recognition engine's mixup as a function of its own (icegan.recognition.mixup_batch), and properties of the
fold executors (icegan.executors: ProcessGroupMap in local processes, RayExecutor on the fake Ray of
tests/test_executors.py).

* ``mixup_batch`` mixes every row with its partner by one share λ ∈ [0, 1]: the maps and the soft targets are the
  convex combinations λ a + (1 − λ) b (one-hot targets become soft targets that still sum to 1), the labels' loss
  weights are λ and 1 − λ times the rows' own weights on pairs of two training rows; shapes and dtypes are kept; the
  partners come from the generator passed in, the shares from torch's global RNG (Beta(α, α): small α, λ near 0 or
  1); the formulas are bit-for-bit those train_models used inline before, and train_models mixes through it.
* ``ProcessGroupMap`` yields every group once with ``folds_fn(group)``, runs every fold once, and a failing group's
  error names its folds; ``RayExecutor`` yields every fold once, in order on the fake cluster, with at most
  ``workers`` in flight, and a failing fold's error names it.
"""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from icegan.recognition import MixupBatch, mixup_batch

SEARCH = settings.default.max_examples > 100          # HYPOTHESIS_PROFILE=search: more draws of the slow ones


# ------------------------------------------------------------------------------------------------------------ mixup

def _draw_batch(seed: int, B: int, G: int, K: int, dtype: torch.dtype):
    """(x (B, 3, 5, 5), mask (B, G) 0/1, weight (B, G) ≥ 0 and 0 off the mask, labels (B,), one-hot (B, K))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, 5, 5, generator=g).to(dtype)
    mask = (torch.rand(B, G, generator=g) < 0.7).float()
    weight = torch.rand(B, G, generator=g) * 3 * mask
    y = torch.randint(0, K, (B,), generator=g)
    return x, mask, weight, y, F.one_hot(y, K).float()


@settings(max_examples=200 if SEARCH else 40)
@given(st.integers(0, 10 ** 6), st.integers(1, 9), st.integers(1, 3), st.integers(2, 5),
       st.sampled_from([0.05, 0.2, 0.4, 1.0, 4.0]), st.sampled_from([torch.float32, torch.float64]))
def test_mixup_mixes_maps_targets_and_weights_by_one_convex_share(seed, B, G, K, alpha, dtype):
    x, mask, weight, y, onehot = _draw_batch(seed, B, G, K, dtype)
    torch.manual_seed(seed + 1)
    m = mixup_batch(x, mask, weight, alpha, torch.Generator().manual_seed(seed), targets=onehot)
    assert isinstance(m, MixupBatch)
    j, lam = m.partner, m.lam
    assert sorted(j.tolist()) == list(range(B)) and j.dtype == torch.int64              # a permutation of the batch
    assert lam.shape == (B,) and bool(((lam >= 0) & (lam <= 1)).all())
    # shapes and dtypes kept
    assert m.x.shape == x.shape and m.x.dtype == dtype
    assert m.targets.shape == (B, K) and m.targets.dtype == onehot.dtype
    assert m.mask.shape == m.weight_a.shape == m.weight_b.shape == (B, G)
    # the maps: a convex combination of the pair, elementwise between the two, with the share λ
    share = lam.to(dtype)[:, None, None, None]
    torch.testing.assert_close(m.x, share * x + (1 - share) * x[j])
    lo, hi = torch.minimum(x, x[j]), torch.maximum(x, x[j])
    tol = 4 * torch.finfo(torch.float32).eps       # λ and 1 - λ are float32: they sum to 1 within its rounding
    assert bool(((m.x >= lo - tol) & (m.x <= hi + tol)).all())
    # the one-hot targets: soft targets that sum to 1, the own label at λ and the partner's at 1 - λ (same share)
    torch.testing.assert_close(m.targets.sum(1), torch.ones(B))
    rows = torch.arange(B)
    own = m.targets[rows, y]
    want = torch.where(y == y[j], torch.ones(B), lam)
    torch.testing.assert_close(own, want)
    diff = y != y[j]
    torch.testing.assert_close(m.targets[rows, y[j]][diff], (1 - lam)[diff])
    # the labels' loss weights: λ and 1 - λ times each row's own weight, on pairs of two training rows only
    torch.testing.assert_close(m.mask, mask * mask[j])
    torch.testing.assert_close(m.weight_a, m.mask * weight * lam[:, None])
    torch.testing.assert_close(m.weight_b, m.mask * weight[j] * (1 - lam[:, None]))
    assert bool(((m.weight_a >= 0) & (m.weight_b >= 0)).all())
    assert bool((m.weight_a + m.weight_b)[m.mask == 0].eq(0).all())


def test_mixup_is_bit_for_bit_the_formulas_train_models_used_inline():
    """The refactoring kept every number: the maps, action-unit targets and label weights are exactly (torch.equal)
    the expressions train_models evaluated inline before mixup_batch existed, with the same draws (the permutation
    from the generator passed in, then Beta(α, α) from the global RNG)."""
    B, G, K = 12, 3, 3
    x, mask, rw, y, _ = _draw_batch(7, B, G, K, torch.float32)
    x = x.contiguous(memory_format=torch.channels_last)
    cw = torch.rand(G, K, generator=torch.Generator().manual_seed(3)) + 0.5
    au = torch.rand(B, 4, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(11)
    m = mixup_batch(x, mask, rw * cw.t()[y], 0.4, torch.Generator().manual_seed(5), targets=au)
    # the inline code of train_models (before): same generators, same order
    aux = torch.Generator().manual_seed(5)
    torch.manual_seed(11)
    j = torch.randperm(B, generator=aux)
    lam = torch.distributions.Beta(0.4, 0.4).sample((B,))
    assert torch.equal(m.partner, j) and torch.equal(m.lam, lam)
    assert torch.equal(m.x, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[j])
    both = mask * mask[j]
    assert torch.equal(m.mask, both)
    assert torch.equal(m.weight_a, both * rw * cw.t()[y] * lam[:, None])
    assert torch.equal(m.weight_b, both * rw[j] * cw.t()[y[j]] * (1 - lam[:, None]))
    la = lam[:, None]
    assert torch.equal(m.targets, la * au + (1 - la) * au[j])


def test_mixup_draws_partners_from_the_generator_and_shares_from_the_global_rng():
    x, mask, w, _, _ = _draw_batch(0, 16, 2, 3, torch.float32)
    torch.manual_seed(1)
    a = mixup_batch(x, mask, w, 0.4, torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    b = mixup_batch(x, mask, w, 0.4, torch.Generator().manual_seed(3))          # another generator: other partners
    torch.manual_seed(9)
    c = mixup_batch(x, mask, w, 0.4, torch.Generator().manual_seed(2))          # another global seed: other shares
    assert torch.equal(a.lam, b.lam) and not torch.equal(a.partner, b.partner)
    assert torch.equal(a.partner, c.partner) and not torch.equal(a.lam, c.lam)
    assert a.targets is None
    gen = torch.Generator().manual_seed(2)
    mixup_batch(x, mask, w, 0.4, gen)
    assert torch.equal(torch.randint(0, 10 ** 6, (4,), generator=gen),                 # one randperm(B) drawn from it
                       torch.randint(0, 10 ** 6, (4,), generator=_after_randperm(2, 16)))


def _after_randperm(seed: int, n: int) -> torch.Generator:
    g = torch.Generator().manual_seed(seed)
    torch.randperm(n, generator=g)
    return g


def test_mixup_share_follows_alpha():
    """Small α: λ near 0 or 1 (the pair barely mixes; P(min(λ, 1 − λ) < 0.01) = 0.955 at α = 0.01); large α: λ near
    1/2 (P(0.4 < λ < 0.6) = 0.956 at α = 50)."""
    x, mask, w, _, _ = _draw_batch(0, 500, 1, 3, torch.float32)
    torch.manual_seed(0)
    small = mixup_batch(x, mask, w, 0.01, torch.Generator().manual_seed(0)).lam
    large = mixup_batch(x, mask, w, 50.0, torch.Generator().manual_seed(0)).lam
    assert float((torch.minimum(small, 1 - small) < 0.01).float().mean()) > 0.9
    assert float(((large - 0.5).abs() < 0.1).float().mean()) > 0.9


@pytest.mark.parametrize("alpha", [0.0, -0.2, float("nan"), float("inf"), 0.001, 0.0099])
def test_mixup_refuses_alpha_outside_positive_finite(alpha):
    """Below the config's floor (MIXUP_ALPHA_FLOOR) torch's Beta sampler returns λ = 0.5 for part of the rows."""
    x, mask, w, _, _ = _draw_batch(0, 4, 1, 3, torch.float32)
    with pytest.raises(ValueError, match=r"mixup_batch needs alpha \(model.mixup_alpha\) a finite number >= 0.01"):
        mixup_batch(x, mask, w, alpha, torch.Generator())


def test_mixup_refuses_masks_weights_and_targets_of_another_batch():
    x, mask, w, _, onehot = _draw_batch(0, 4, 2, 3, torch.float32)
    with pytest.raises(ValueError, match=r"mask and weight of shape \(B, G\) with B=4 rows, got \(3, 2\), \(4, 2\)"):
        mixup_batch(x, mask[:3], w, 0.4, torch.Generator())
    with pytest.raises(ValueError, match=r"got \(4, 2\), \(4, 1\)"):
        mixup_batch(x, mask, w[:, :1], 0.4, torch.Generator())
    with pytest.raises(ValueError, match=r"targets of shape \(B, K\) with B=4 rows, got \(2, 3\)"):
        mixup_batch(x, mask, w, 0.4, torch.Generator(), targets=onehot[:2])


def test_train_models_mixes_every_batch_through_mixup_batch(monkeypatch):
    """One call per step with the config's α, the batch's training mask and row weights (class weights included),
    and the action-unit targets; the trained model is the same as without the spy."""
    import icegan.recognition as recognition
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import RecognizerConfig, train_models
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    x, y = fs.features, fs.labels
    au = (F.one_hot(y, 3).float(), torch.ones(len(y), dtype=torch.bool))
    mask = torch.ones(2, len(y), dtype=torch.bool)
    mask[0, :4] = False
    cfg = RecognizerConfig(epochs=2, batch_size=8, mixup_alpha=0.3, au_weight=1.0, hflip=False, tta_hflip=False)
    plain, _ = train_models(cfg, x, y, mask, seed=2, progress=False, action_units=au)
    calls = []

    def spy(xb, mb, weight, alpha, generator, targets=None):
        calls.append((xb.shape[0], alpha, mb.clone(), weight.clone(), targets))
        return mixup_batch(xb, mb, weight, alpha, generator, targets)
    monkeypatch.setattr(recognition, "mixup_batch", spy)
    spied, _ = train_models(cfg, x, y, mask, seed=2, progress=False, action_units=au)
    assert [c[0] for c in calls] == [8, 4] * 2 and {c[1] for c in calls} == {0.3}
    assert all(c[4] is not None and c[4].shape == (c[0], 3) for c in calls)
    assert all(bool(((c[3] > 0) == (c[2] > 0)).all()) for c in calls)       # weight > 0 exactly on training rows
    for k, v in plain.state_dict().items():
        assert torch.equal(v, spied.state_dict()[k]), k


# -------------------------------------------------------------------------------------------------------- executors

class RecordGroup:
    """A picklable fold-group function (pickled by reference to this module, which the spawned workers import) that
    leaves one file per fold it runs in ``log_dir`` and returns ``index * 10`` per fold; fails on the group holding
    fold ``fail_on``."""

    def __init__(self, log_dir: str, fail_on: int = -1):
        self.log_dir, self.fail_on = log_dir, fail_on

    def __call__(self, folds):
        import os
        import uuid
        if any(f.index == self.fail_on for f in folds):
            raise ValueError(f"group with fold {self.fail_on} broke")
        for f in folds:
            open(os.path.join(self.log_dir, f"{f.index}-{uuid.uuid4().hex}"), "w").close()
        return [f.index * 10 for f in folds]


def _fold_list(n: int):
    import numpy as np

    from icegan.protocol import Fold
    return [Fold(i, f"casme2/sub{i + 1:02d}", np.arange(2), np.arange(1), writer=lambda: None) for i in range(n)]


@st.composite
def fold_groups(draw):
    """1-5 folds cut into 1-5 consecutive non-empty groups (icegan loso's fold groups), and 1-2 workers."""
    n = draw(st.integers(1, 5))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1))) if n > 1 else []
    folds = _fold_list(n)
    bounds = [0, *cuts, n]
    return [folds[a:b] for a, b in zip(bounds, bounds[1:])], draw(st.integers(1, 2))


_FIVE = _fold_list(5)
_THREE_GROUPS = ([_FIVE[:2], _FIVE[2:3], _FIVE[3:]], 2)        # more groups than workers, groups of 1 and 2 folds


@settings(max_examples=30 if SEARCH else 2, deadline=None)       # each example starts worker processes (seconds)
@given(fold_groups())
@example(_THREE_GROUPS)
def test_process_group_map_yields_every_group_once_and_runs_every_fold_once(groups_workers):
    """Whatever the groups: one (group, folds_fn(group)) per group (in completion order: the set of groups is the
    input's), the group handed back is the caller's own (with its writer), and each fold ran exactly once."""
    import os
    import tempfile

    from icegan.executors import ProcessGroupMap
    groups, workers = groups_workers
    with tempfile.TemporaryDirectory() as log_dir:
        out = list(ProcessGroupMap(workers, threads=1)(RecordGroup(log_dir), groups))
        ran = sorted(int(name.split("-")[0]) for name in os.listdir(log_dir))
    assert len(out) == len(groups)
    assert sorted(id(g) for g, _ in out) == sorted(id(g) for g in groups)          # each input group, once
    assert all(r == [f.index * 10 for f in g] for g, r in out)
    assert ran == [f.index for g in groups for f in g]                                  # every fold exactly once


@settings(max_examples=30 if SEARCH else 1, deadline=None)
@given(fold_groups(), st.integers(0, 4))
@example(_THREE_GROUPS, 4)
def test_process_group_map_error_names_the_failing_group(groups_workers, pick):
    """A failing group's error reaches the caller with its message and a note naming that group's held-out subjects
    and fold numbers (or its one fold)."""
    import tempfile

    from icegan.executors import ProcessGroupMap
    groups, workers = groups_workers
    fail_on = pick % sum(len(g) for g in groups)
    bad = next(g for g in groups if any(f.index == fail_on for f in g))
    with tempfile.TemporaryDirectory() as log_dir:
        with pytest.raises(ValueError, match=f"group with fold {fail_on} broke") as info:
            list(ProcessGroupMap(workers, threads=1)(RecordGroup(log_dir, fail_on), groups))
    if not hasattr(info.value, "add_note"):            # Python 3.10: no notes
        return
    note = " ".join(info.value.__notes__)
    if len(bad) == 1:
        assert f"(in the fold of held-out subject {bad[0].subject}, fold {bad[0].index + 1})" in note
    else:
        assert all(f.subject in note for f in bad)
        assert f"folds {bad[0].index + 1}-{bad[-1].index + 1})" in note
    others = [f.subject for g in groups if g is not bad for f in g]
    assert not any(s in note for s in others)


@settings(max_examples=200 if SEARCH else 30)
@given(st.integers(1, 7), st.integers(0, 8), st.integers(-1, 6))
def test_ray_executor_on_fake_ray_runs_every_fold_once(n, workers, fail_on):
    """On the fake Ray of tests/test_executors.py (tasks finish in submission order): every fold is submitted at most
    once and at most ``workers`` are in flight (all when 0); without a failure every fold is yielded once, in order,
    with its score; a failing fold raises an error naming it after the folds before it were yielded, and the folds
    still in flight are cancelled."""
    import sys

    import icegan.environment
    from icegan.executors import RayExecutor
    from test_executors import _FakeRay, _Reported
    folds = _fold_list(n)
    fake = _FakeRay()
    got = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "ray", fake)
        mp.setattr(icegan.environment, "limit_threads", lambda k: None)
        run = RayExecutor(workers=workers, num_cpus=1)(_Reported(fail_on=fail_on), folds)
        if fail_on in range(n):
            with pytest.raises(ValueError, match=f"fold {fail_on} broke") as info:
                for fold, score in run:
                    got.append((fold, score))
            if hasattr(info.value, "add_note"):
                assert (f"(in the fold of held-out subject {folds[fail_on].subject}, fold {fail_on + 1})"
                        in info.value.__notes__)
        else:
            got = list(run)
    submitted = [t[1].index for t in fake.tasks]
    limit = workers if workers > 0 else n
    assert submitted == list(range(len(submitted))) and fake.peak <= limit
    assert all(t[1].writer is None for t in fake.tasks)             # the TensorBoard writer stays on the driver
    if fail_on in range(n):
        assert [(f.index, s) for f, s in got] == [(i, i * 10) for i in range(fail_on)]
        assert fake.cancelled == list(range(fail_on + 1, len(submitted))) and not fake.in_flight
    else:
        assert len(submitted) == n and [(f, s) for f, s in got] == [(f, f.index * 10) for f in folds]
        assert all(g is f for (g, _), f in zip(got, folds))


# ------------------------------------------------------------------------------------------------------- dead code

def test_ststnet_holds_only_the_layers_its_forward_uses():
    """STSTNet's 2x2 average pooling is F.avg_pool2d in forward; the nn.AvgPool2d it also built (``self.avg``) was
    never called. Without it the weights (state_dict keys, the saved recognizers' format) and outputs are those of
    the same seed."""
    from icegan.models.recognizers import STSTNet
    torch.manual_seed(0)
    m = STSTNet(n_models=2, aux_outputs=2).eval()
    assert [n for n, _ in m.named_children()] == ["streams", "bns", "pool", "drop", "fc", "aux_fc"]
    keys = [f"streams.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    keys += [f"bns.{i}.{p}" for i in range(3)
             for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    assert list(m.state_dict()) == keys + ["fc.weight", "fc.bias", "aux_fc.weight", "aux_fc.bias"]
    x = torch.rand(3, 3, 28, 28)
    y, a = m(x, with_aux=True)
    assert y.shape == (3, 2, 3) and a.shape == (3, 2, 2)
