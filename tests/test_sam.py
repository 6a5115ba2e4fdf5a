"""Sharpness-aware minimisation (model.sam_rho): the SAM gradient by hand, per copy of a grouped network, and in
training (off is bit-identical, on changes the network, held-out rows stay out, errors)."""
import pytest
import torch
from _model_checks import assert_only_second_copy_changed

from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import GroupedLinear
from icegan.recognition import RecognizerConfig, sam_gradient, train_models


class _Toy(torch.nn.Module):
    """Two copies of a linear map with a batch-norm-like buffer that the forward pass changes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = GroupedLinear(2, 3, 2)
        self.register_buffer("seen", torch.zeros(2))

    def forward(self, x):                       # x (B, 3) -> (B, 2 copies, 2)
        self.seen += 1
        return self.lin(x[:, None].expand(-1, 2, -1))


def _loss(model, x, t):
    return ((model(x) - t) ** 2).sum()


def test_sam_gradient_by_hand():
    """The gradient sam_gradient leaves is, for each copy, the gradient of its own loss at w_g + rho g_g / |g_g|,
    with g_g its gradient at w_g; the weights and buffers come back unchanged."""
    torch.manual_seed(1)
    x, t = torch.randn(5, 3), torch.randn(5, 2, 2)
    model = _Toy()
    w0 = {k: v.clone() for k, v in model.named_parameters()}
    _loss(model, x, t).backward()
    seen = model.seen.clone()
    rho = 0.3
    sam_gradient(model, 2, rho, lambda: _loss(model, x, t))
    for k, v in model.named_parameters():
        assert torch.equal(v, w0[k]), k                                          # back at w
    assert torch.equal(model.seen, seen)                                          # the second pass left no trace
    for g in range(2):                                                            # copy by copy, by hand
        w = {k: v[g].clone().requires_grad_(True) for k, v in w0.items()}

        def loss(w):
            return ((x @ w["lin.weight"] + w["lin.bias"] - t[:, g]) ** 2).sum()
        grads = torch.autograd.grad(loss(w), list(w.values()))
        norm = torch.sqrt(sum((gr ** 2).sum() for gr in grads))
        moved = {k: (v + rho * gr / norm).detach().requires_grad_(True) for (k, v), gr in zip(w.items(), grads)}
        want = torch.autograd.grad(loss(moved), list(moved.values()))
        for (k, v), wg in zip(model.named_parameters(), want):
            torch.testing.assert_close(v.grad[g], wg, rtol=1e-5, atol=1e-6, msg=f"{k}, copy {g}")


def test_sam_gradient_refuses_unsplit_parameters():
    model = _Toy()
    model.shared = torch.nn.Parameter(torch.ones(3))       # 3 rows do not split into 2 copies
    (_loss(model, torch.ones(1, 3), torch.zeros(1, 2, 2)) + model.shared.sum()).backward()
    with pytest.raises(ValueError, match=r"split into its 2 copies .* shape \(3,\)"):
        sam_gradient(model, 2, 0.1, lambda: model.shared.sum())


@pytest.mark.parametrize("name", ["ststnet", "offtanet"])
def test_sam_in_training(name):
    """sam_rho = 0 is bit-identical to the code without it; > 0 changes the network; rows held out of copy 0 cannot
    reach copy 0 (the per-copy norm keeps the copies independent), for both grouped networks."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features, fs.labels
    mask = torch.ones(2, len(y), dtype=torch.bool)
    held = torch.arange(len(y)) < 6
    mask[0, held] = False
    kw = dict(name=name, epochs=2, batch_size=8, shift_px=1)
    if name == "offtanet":
        kw.update(input_size=x.shape[-1], stem_stride=1)

    def state(x, y, **extra):
        m, _ = train_models(RecognizerConfig(**kw, **extra), x, y, mask, seed=1, progress=False)
        return m

    plain = state(x, y)
    off = state(x, y, sam_rho=0.0)
    assert all(torch.equal(v, off.state_dict()[k]) for k, v in plain.state_dict().items())
    on = state(x, y, sam_rho=0.05)
    assert any(not torch.equal(v, on.state_dict()[k]) for k, v in plain.state_dict().items() if v.is_floating_point())
    x2, y2 = x.clone(), y.clone()
    x2[held] = torch.rand_like(x2[held])
    y2[held] = (y2[held] + 1) % 3
    assert_only_second_copy_changed(on, state(x2, y2, sam_rho=0.05))


@pytest.mark.parametrize("kw,msg", [({"sam_rho": -0.1}, "model.sam_rho must be a finite number >= 0"),
                                    ({"sam_rho": float("nan")}, "model.sam_rho must be a finite number >= 0"),
                                    ({"sam_rho": 0.05, "name": "logreg"}, "model.sam_rho=0.05 applies to the networks")])
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RecognizerConfig(**kw)
