"""Tests written by a mutation audit of the recognizer networks (icegan.models.recognizers), the training loop of the
neural recognizers (icegan.recognition.train_models, predict_models, fit_predict_folds), the recognizer settings
(icegan.recognizer_config) and the ICE-GAN generator (icegan.models.generator): each one fails on a small deliberate
change of the code that the earlier tests let pass (named in the test's docstring). Expected values are worked out by
hand in the comments, or rebuilt from the layers the papers describe with plain torch operations, never copied from
the code's output."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _training_recorder import record_training_batches

from icegan.data.toy_features import make_toy_features
from icegan.models.generator import Generator
from icegan.models.recognizers import OffTANet, STSTNet
from icegan.recognition import RecognizerConfig, predict_models, train_models
from icegan.recognizer_config import SKLEARN_MODELS

# ------------------------------------------------------------------------------------------ icegan.models.recognizers


def _randomise_batch_norms(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Give every batch norm non-trivial running statistics and affine weights (a fresh one is the identity)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)


def test_ststnet_eval_forward_is_the_papers_layers_by_hand():
    """STSTNet (Liong et al., FG 2019) in evaluation mode rebuilt from its weights with plain torch operations: each
    stream's 3×3 convolution (padding 1: 28 → 28), 3×3 max pooling with stride 3 and padding 1 (28 → 10), ReLU,
    the 3 + 5 + 8 stream channels concatenated in that order, batch norm with the running statistics, no dropout,
    2×2 average pooling (10 → 5) and one linear layer over the (16, 5, 5) maps flattened channel by channel.
    Mutations killed: the ReLU after the pooling dropped, the 2×2 average pooling made a max pooling, the linear
    layer's bias dropped, batch norm normalising with the batch's statistics (or multiplying by sqrt(var + eps)) in
    evaluation mode, dropout left on in evaluation mode."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = STSTNet(dropout=0.5)
    _randomise_batch_norms(net, gen)
    with torch.no_grad():
        net.fc.bias.copy_(torch.rand(net.fc.bias.shape, generator=gen))
    net.eval()
    x = torch.rand(4, 3, 28, 28, generator=gen)
    with torch.no_grad():
        parts = [F.max_pool2d(F.conv2d(x, cv.weight, cv.bias, padding=1), 3, stride=3, padding=1) for cv in net.streams]
        h = torch.relu(torch.cat(parts, 1))                                           # (4, 16, 10, 10)
        assert h.shape == (4, 16, 10, 10)
        stat = {k: torch.cat([getattr(bn, k) for bn in net.bns])[None, :, None, None]
                for k in ("running_mean", "running_var", "weight", "bias")}
        h = (h - stat["running_mean"]) / torch.sqrt(stat["running_var"] + 1e-5) * stat["weight"] + stat["bias"]
        h = F.avg_pool2d(h, 2)                                                        # (4, 16, 5, 5)
        want = h.flatten(1) @ net.fc.weight[0] + net.fc.bias[0]                       # (4, 3)
        got = net(x)
        again = net(x)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert torch.equal(got, again)                                                    # no dropout when evaluating


def test_every_recognizer_parameter_gets_a_gradient():
    """One backward pass through STSTNet and Off-TANet (training mode, a loss that depends on every logit) reaches
    every parameter with a non-zero gradient. Mutations killed: Off-TANet's residual 1×1 shortcut dropped, its
    attention block's shortcut or spatial attention multiplied out (0 · x). (The channel attention's single hidden
    ReLU unit, which has no bias, can start dead and then never learn: seed 0 is one where it starts alive.)"""
    for build in (lambda: STSTNet(dropout=0.0), lambda: OffTANet(input_size=28, stem_stride=1, dropout=0.0)):
        torch.manual_seed(0)
        x = torch.rand(6, 3, 28, 28)
        net = build()
        out = net.train()(x)
        (out * torch.arange(1.0, 4.0)).pow(2).sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, f"{type(net).__name__}.{name}: no gradient"


def test_offtanet_attention_is_a_softmax_over_the_whole_map_with_the_position_code():
    """Off-TANet's self-attention (class docstring of ``_AttentionResidual``): A = softmax over all S² entries of
    Q Kᵀ + Q Pᵀ, output A ⊙ V, P[i, j] = e_i + e_j with e_i = sin (i even) or cos (i odd) of 1 / 10000^((i // 2) / S).
    With q = 1, k = 0 and v = 1 everywhere (the qkv 1×1 convolution's weights zeroed, its biases set), the logit at
    (i, j) is Σ_m P[j, m] = S e_j + Σ_m e_m, so A[i, j] = exp(S e_j) / (S Σ_j' exp(S e_j')) for every channel; this is
    what reaches the block's last convolution. Mutations killed: the softmax taken along each row (every row summing
    to 1), the position code dropped (A = 1 / S²)."""
    torch.manual_seed(0)
    net = OffTANet(input_size=28, stem_stride=1).eval()                   # stem 28 → 28, attention maps 7 × 7
    att = net.att
    C, S = att.cin, 7
    with torch.no_grad():
        att.qkv.weight.zero_()
        att.qkv.bias.copy_(torch.cat([torch.ones(C), torch.zeros(C), torch.ones(C)]))     # q, k, v of one copy
    seen = []
    att.conv2.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        net(torch.rand(2, 3, 28, 28))
    i = np.arange(S)
    arg = 1.0 / 10000.0 ** ((i // 2) / S)
    e = np.where(i % 2 == 0, np.sin(arg), np.cos(arg))
    col = np.exp(S * e) / (S * np.exp(S * e).sum())                          # A[i, j] for every row i
    want = torch.tensor(np.broadcast_to(col[None, :], (S, S)).copy(), dtype=torch.float32)
    (h,) = seen
    assert h.shape == (2, C, S, S)
    torch.testing.assert_close(h, want.expand_as(h), rtol=1e-5, atol=1e-7)


def test_offtanet_channel_then_spatial_attention_by_hand():
    """Off-TANet's attention block before its self-attention (class docstring of ``_AttentionResidual``): h = CA(h) · h
    with CA = sigmoid(fc2(relu(fc1(avg-pool h))) + fc2(relu(fc1(max-pool h)))) over each channel's map, then
    h = SA(h) · h with SA = sigmoid(3×3 conv of the channel mean and channel max maps), rebuilt with plain torch
    operations from the maps that leave its first convolution. The hidden unit's weights are made positive so that it
    is active (its input, after a ReLU, is >= 0). Mutations killed: the max-pooled branch of the channel attention
    dropped, the spatial attention dropped."""
    torch.manual_seed(0)
    net = OffTANet(input_size=28, stem_stride=1).eval()
    att = net.att
    with torch.no_grad():
        att.ca_fc1.weight.abs_()
    seen = {}
    att.conv1.register_forward_hook(lambda module, args, out: seen.__setitem__("h", out.detach().clone()))
    att.qkv.register_forward_pre_hook(lambda module, args: seen.__setitem__("qkv_in", args[0].detach().clone()))
    with torch.no_grad():
        net(torch.rand(2, 3, 28, 28))
        h = seen["h"]                                                                  # (2, 28, 7, 7)
        w1, w2 = att.ca_fc1.weight[:, :, 0, 0], att.ca_fc2.weight[:, :, 0, 0]          # (1, 28), (28, 1)
        avg, mx = h.mean((2, 3)), h.amax((2, 3))                                       # (2, 28)
        ca = torch.sigmoid(torch.relu(avg @ w1.t()) @ w2.t() + torch.relu(mx @ w1.t()) @ w2.t())
        h = ca[:, :, None, None] * h
        stats = torch.stack([h.mean(1), h.amax(1)], 1)                                 # (2, 2, 7, 7)
        h = torch.sigmoid(F.conv2d(stats, att.sa_conv.weight, padding=1)) * h
    torch.testing.assert_close(seen["qkv_in"], h, rtol=1e-5, atol=1e-6)


def test_offtanet_head_is_three_linear_layers_with_relu_between():
    """Off-TANet's MLP (class docstring: flatten → 64 → ReLU → dropout → 64 → ReLU → dropout → K), in evaluation
    mode, rebuilt from the flattened features that reach its first layer. Mutation killed: the ReLU after the first
    layer dropped."""
    torch.manual_seed(0)
    net = OffTANet(input_size=28, stem_stride=1).eval()
    seen = []
    net.fc1.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        got = net(torch.rand(3, 3, 28, 28))
        (h,) = seen                                                          # (3, 1, 8 · 3 · 3)
        assert h.shape == (3, 1, 72)
        h = h[:, 0]
        for fc in (net.fc1, net.fc2):
            h = torch.relu(h @ fc.weight[0] + fc.bias[0])
        want = h @ net.fc3.weight[0] + net.fc3.bias[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ icegan.recognition


def _tagged_toy(n_subjects: int = 1, clips_per_class: int = 2):
    """The toy feature set (2 datasets × n_subjects subjects × 3 classes × clips) with every row's index written into
    one pixel of its strain map (``x[i, 2, 0, 0] = i / 100``), so that a training batch tells which rows it holds."""
    fs = make_toy_features(n_subjects_per_dataset=n_subjects, clips_per_class=clips_per_class)
    x = fs.features.float().clone()
    x[:, 2, 0, 0] = torch.arange(len(x), dtype=torch.float32) / 100
    return x, fs.labels.long(), fs


def _training_rows(batches: list) -> list:
    """The row indices of each recorded training batch (:func:`record_training_batches`), read back from the tag
    ``x[:, 2, 0, 0] = row / 100`` of :func:`_tagged_toy`, in batch order."""
    return [[int(v) for v in torch.round(x[:, 2, 0, 0] * 100).tolist()] for x in batches]


def _plain(**kw) -> RecognizerConfig:
    """Settings with every augmentation off, so that the network receives the training rows as they are."""
    base = dict(hflip=False, tta_hflip=False, shift_px=0, rotate_deg=0.0, scale_jitter=0.0, cutout_px=0,
                mixup_alpha=0.0)
    base.update(kw)
    return RecognizerConfig(**base)


def test_every_epoch_visits_each_training_row_once_in_a_new_order(monkeypatch):
    """12 training rows in batches of 5: 3 steps per epoch (5, 5 and the last 2 rows), each epoch a permutation of
    the training rows (a row no model trains on, here rows 0 and 1, is never drawn), a new permutation every epoch;
    the same seed draws the same batches, another seed others. Mutations killed: the last partial batch dropped
    (n // batch_size steps), the rows never shuffled, the batch order not drawn from the seed."""
    seen = record_training_batches(monkeypatch)
    x, y, _ = _tagged_toy(clips_per_class=2)                                 # 12 rows
    x, y = torch.cat([x[:2], x]), torch.cat([y[:2], y])                      # 14 rows, 0 and 1 held out
    x[:, 2, 0, 0] = torch.arange(14, dtype=torch.float32) / 100
    mask = torch.ones(1, 14, dtype=torch.bool)
    mask[0, :2] = False
    cfg = _plain(epochs=4, batch_size=5)

    def batches(seed):
        seen.clear()
        train_models(cfg, x, y, mask, seed=seed, progress=False)
        return _training_rows(seen)

    first = batches(0)
    assert [len(b) for b in first] == [5, 5, 2] * 4
    epochs = [sum(first[3 * e:3 * e + 3], []) for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(2, 14))
    assert len({tuple(order) for order in epochs}) == 4                  # 4 of 12! orders: a repeat is a bug
    assert batches(0) == first
    assert batches(1) != first


def test_the_optimiser_gets_the_configured_rate_decay_and_cosine_schedule(monkeypatch):
    """AdamW with model.lr and model.weight_decay; under lr_schedule=cosine the rate of optimiser step t (0-based) is
    lr · (1 + cos(π t / T)) / 2 with T = steps per epoch × epochs (12 rows in batches of 5: 3 steps, T = 9), falling
    from lr to near 0 at the last step; under constant it stays lr. Mutations killed: the cosine rising (1 − cos),
    the schedule ignored, T one epoch short (the rate 0 for the last epoch), weight decay or lr not passed to AdamW,
    the last partial batch dropped (6 steps)."""
    real = torch.optim.AdamW
    steps = []

    class SpyAdamW(real):
        def step(self, closure=None):
            steps.append((self.param_groups[0]["lr"], self.param_groups[0]["weight_decay"]))
            return super().step(closure)
    monkeypatch.setattr(torch.optim, "AdamW", SpyAdamW)
    x, y, _ = _tagged_toy(clips_per_class=2)
    mask = torch.ones(1, len(y), dtype=torch.bool)
    train_models(_plain(epochs=3, batch_size=5, lr=0.02, weight_decay=0.03), x, y, mask, seed=0, progress=False)
    T = 9
    want = [0.02 * (1 + math.cos(math.pi * t / T)) / 2 for t in range(T)]
    assert [lr for lr, _ in steps] == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert all(wd == 0.03 for _, wd in steps)
    steps.clear()
    train_models(_plain(epochs=3, batch_size=5, lr=0.02, lr_schedule="constant"), x, y, mask, seed=0, progress=False)
    assert [lr for lr, _ in steps] == [0.02] * T


def test_predict_models_scores_in_evaluation_mode_and_gives_the_mode_back():
    """predict_models on a network left in training mode (dropout 0.5): the probabilities are softmax(logits) of the
    network in evaluation mode (the same on every call, each row summing to 1 over the K classes, shaped (N, G, K)),
    and the network is back in training mode afterwards; train_models returns its network in evaluation mode.
    Mutations killed: the training mode not given back after scoring, the trained network returned in training
    mode."""
    torch.manual_seed(0)
    net = STSTNet(dropout=0.5).train()
    x = torch.rand(5, 3, 28, 28)
    p = predict_models(net, x, tta_hflip=False)
    assert net.training
    assert p.shape == (5, 1, 3)
    with torch.no_grad():
        want = net.eval()(x).softmax(-1)
    torch.testing.assert_close(p[:, 0], want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(p.sum(-1), torch.ones(5, 1))
    x, y, _ = _tagged_toy()
    model, _ = train_models(_plain(epochs=1, batch_size=6), x, y, torch.ones(1, len(y), dtype=torch.bool), seed=0,
                            progress=False)
    assert not model.training


def test_resize_features_is_bilinear_at_pixel_centres():
    """resize_features (maps to model.input_size, e.g. 28 → 112 for Off-TANet) interpolates bilinearly between pixel
    centres: a 2×2 map m[r, c] = 2 r + c doubled to 4×4 samples the source at (i + 0.5) / 2 − 0.5, i.e. at −0.25
    (clamped to 0), 0.25, 0.75 and 1.25 (clamped to 1) along each axis, so out[i, j] = 2 w_i + w_j with
    w = (0, 0.25, 0.75, 1); a map already at the size is returned as it is. Mutation killed: nearest-neighbour
    resizing."""
    from icegan.recognition import resize_features
    m = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).expand(1, 3, 2, 2)
    w = torch.tensor([0.0, 0.25, 0.75, 1.0])
    want = (2 * w[:, None] + w[None, :]).expand(1, 3, 4, 4)
    torch.testing.assert_close(resize_features(m, 4), want, rtol=0, atol=1e-6)
    assert resize_features(m, 2) is m


def test_train_models_refuses_the_edge_values_of_its_own_checks():
    """The edges train_models checks against the data it is given: a label equal to K (3 classes: 0..2), a model
    (copy 1) without a training row, model.shift_px equal to the map size S = 28 (0..27 allowed); predict_models
    refuses tta_shift_px = S the same way. Mutations killed: the label bound checked with > K (F.one_hot then
    fails later without naming the labels), the empty-model check dropped, shift_px = S accepted."""
    x, y, _ = _tagged_toy()
    ones = torch.ones(1, len(y), dtype=torch.bool)
    bad = y.clone()
    bad[0] = 3
    with pytest.raises(ValueError, match=r"^labels must lie in 0\.\.2, got 0\.\.3$"):
        train_models(_plain(epochs=1), x, bad, ones, progress=False)
    empty = torch.ones(2, len(y), dtype=torch.bool)
    empty[1] = False
    with pytest.raises(ValueError, match=r"^model 1 has no training samples$"):
        train_models(_plain(epochs=1), x, y, empty, progress=False)
    with pytest.raises(ValueError, match=r"^model\.shift_px must lie in 0\.\.27 pixels, got 28$"):
        train_models(_plain(epochs=1, input_size=56, shift_px=28), x, y, ones, progress=False)   # 28-pixel maps
    with pytest.raises(ValueError, match=r"^model\.tta_shift_px must lie in 0\.\.27 pixels, got 28$"):
        predict_models(STSTNet(), x, tta_shift_px=28)


# ------------------------------------------------------------------------------------------ icegan.recognizer_config


@pytest.mark.parametrize("name", SKLEARN_MODELS)
def test_every_network_only_setting_is_refused_for_the_scikit_learn_recognizers(name):
    """Each setting that only the networks read (augmentations, test-time shifts, inner validation, snapshots,
    smoothing, weight averaging, SAM, cutout) is refused on its own for logreg, random_forest and gradient_boosting,
    naming it. Mutations killed: scale_jitter, tta_shift_px, average_last or rotate_deg left out of the refused
    list (a scikit-learn run would then silently ignore it)."""
    for key, value in (("shift_px", 1), ("rotate_deg", 5.0), ("scale_jitter", 0.1), ("mixup_alpha", 0.2),
                       ("tta_shift_px", 1), ("inner_val_fraction", 0.2), ("average_last", 2),
                       ("label_smoothing", 0.1), ("ema_decay", 0.5), ("sam_rho", 0.05), ("cutout_px", 4)):
        with pytest.raises(ValueError, match=rf"^model\.{key}={value} applies to the networks \(ststnet, offtanet\), "
                                             rf"not to {name}; set it to 0$"):
            RecognizerConfig(name=name, **{key: value})

@pytest.mark.parametrize("key, low", [("epochs", 1), ("batch_size", 0), ("shift_px", 0)])
def test_a_nan_count_is_refused_naming_its_key(key, low):
    """A NaN where a count is expected (a YAML ``.nan``, which is a float) is refused like a count below its lower
    bound, naming the key. Mutation killed: the lower-bound check written as ``value < low`` (False for NaN, so NaN
    passed)."""
    with pytest.raises(ValueError, match=rf"^model\.{key} must be >= {low}.*, got nan$"):
        RecognizerConfig(**{key: float("nan")})


# ------------------------------------------------------------------------------------------ icegan.models.generator


def _small_generator(**kw) -> Generator:
    torch.manual_seed(0)
    return Generator(img_size=16, z_dim=4, id_dim=8, base_channels=8, max_channels=16, **kw).eval()


def test_noise_identity_and_class_each_enter_the_synthesis_seed():
    """The seed s = [e, z, one_hot(c)] (Sec. III-A): changing the noise z alone, or the identity embedding e alone
    (decode with the same GRM maps), changes the apex; ``embed`` is the ``e`` of ``encode`` (the identity embedding of
    the identity-preserving losses is the one the decoder reads). Mutations killed: z multiplied out of the seed,
    ``embed`` computed through other layers than ``encode``."""
    g = _small_generator()
    onset = torch.rand(2, 1, 16, 16) * 2 - 1
    z = torch.randn(2, 4)
    c = torch.tensor([1, 2])
    with torch.no_grad():
        e, gs = g.encode(onset)
        base = g.decode(onset, e, gs, z, c)
        torch.testing.assert_close(g.embed(onset), e, rtol=0, atol=0)
        assert (g.decode(onset, e, gs, z + 1.0, c) - base).abs().max() > 1e-5
        assert (g.decode(onset, e + 1.0, gs, z, c) - base).abs().max() > 1e-5
        torch.testing.assert_close(g(onset, z, c), base, rtol=0, atol=0)


def test_the_motion_heads_intensity_residual_is_added_in_tanh_space():
    """Motion head (our addition, class docstring): apex = tanh(atanh(0.999 · W(onset, φ)) + r). With the last
    deconvolution zeroed but for a bias r = 0.5 on the intensity channel (flow correction 0) and a zero prior, φ = 0,
    so the apex is tanh(atanh(0.999 · onset) + 0.5), computed here with numpy. Mutation killed: the residual r
    ignored."""
    g = _small_generator(motion_head=True)
    last = g.decoder[-1][0]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[0] = 0.5
    onset = torch.linspace(-0.9, 0.9, 256).view(1, 1, 16, 16)
    with torch.no_grad():
        out = g(onset, torch.zeros(1, 4), torch.tensor([1]))
    want = np.tanh(np.arctanh(0.999 * onset.numpy().astype(np.float64)) + 0.5)
    np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=2e-5)
