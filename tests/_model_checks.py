"""Assertions shared by the recognizer tests."""
import torch


def assert_only_second_copy_changed(m1: torch.nn.Module, m2: torch.nn.Module) -> None:
    """Two trainings of a 2-copy grouped network: copy 0 is bit-identical in every tensor of the state, copy 1
    differs in at least one (tensors are split by their leading copy dimension; scalars are skipped)."""
    s1, s2 = m1.state_dict(), m2.state_dict()
    for k, a in s1.items():
        if a.dim() == 0:
            continue
        torch.testing.assert_close(a.reshape(2, -1)[0], s2[k].reshape(2, -1)[0], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(a.reshape(2, -1)[1], s2[k].reshape(2, -1)[1]) for k, a in s1.items() if a.dim() > 0)
