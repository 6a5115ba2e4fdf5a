"""squash's documented small-vector lengths (icegan/models/capsules.py; Sabour et al. 2017 Eq. 1, ICE-GAN ref. [13],
shared/papers/icegan_identity_aware_capsule_gan.txt Sec. III-B): eps sits under the square root, so a vector of
length r comes out at r³/((1+r²)·sqrt(r² + eps)), 29% short of r²/(1+r²) at r = 1e-4 and 0.5% at 1e-3 (eps = 1e-8).
Moving eps outside the root (sqrt(r²) + eps) leaves large vectors unchanged: only these lengths tell the two apart."""
import math

import pytest
import torch

from icegan.models.capsules import squash


@pytest.mark.parametrize("r", [1e-4, 3e-4, 1e-3, 1e-2, 1.0, 10.0])
def test_squash_length_is_the_documented_formula_with_eps_under_the_root(r):
    s = torch.tensor([[r * 0.6, r * 0.8, 0.0]], dtype=torch.float64)     # length r, direction (0.6, 0.8, 0)
    out = squash(s)
    want = r ** 3 / ((1 + r * r) * math.sqrt(r * r + 1e-8))
    assert out.norm().item() == pytest.approx(want, rel=1e-9)
    assert torch.allclose(out / out.norm(), s / s.norm(), atol=1e-12)       # direction kept


def test_squash_shortfall_at_small_lengths_matches_the_docstring():
    lengths = {r: squash(torch.tensor([[r, 0.0]], dtype=torch.float64)).norm().item() for r in (1e-4, 3e-4, 1e-3)}
    shortfall = {r: 1 - v / (r * r / (1 + r * r)) for r, v in lengths.items()}
    assert shortfall[1e-4] == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-4)     # 29%
    assert shortfall[3e-4] == pytest.approx(0.0513, abs=1e-3)                   # 5%
    assert shortfall[1e-3] == pytest.approx(0.0050, abs=1e-4)                   # 0.5%
    assert squash(torch.zeros(1, 4, dtype=torch.float64)).abs().max().item() == 0.0
