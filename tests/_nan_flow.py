"""Custom flow networks (``--model custom --module <file>.py:<Name>``) whose flow holds NaN or infinite values, shared
by the tests of the non-finite flow refusals (tests/test_bad_input_flow_gan.py, tests/test_plugins57.py)."""

#: the source of a module of such networks: write it to ``<tmp>/<name>.py`` and name a class (or ``make``)
NAN_NET = '''
import torch


class Nan(torch.nn.Module):
    """NaN flow at every pixel."""
    def forward(self, a, b):
        return torch.full((a.shape[0], 2, a.shape[2], a.shape[3]), float("nan"))


class NanOnSecond(torch.nn.Module):
    """NaN flow for the second pair of each batch only."""
    def forward(self, a, b):
        f = torch.zeros(a.shape[0], 2, a.shape[2], a.shape[3])
        if a.shape[0] > 1:
            f[1, 0, 2, 3] = float("inf")
        return f


class NanOn64(torch.nn.Module):
    """Finite on the 32x32 start-up probe, NaN on the 64x64 clips."""
    def forward(self, a, b):
        f = torch.zeros(a.shape[0], 2, a.shape[2], a.shape[3])
        return f * float("nan") if a.shape[-1] == 64 else f


class NanFlow(torch.nn.Module):
    """A network with a parameter whose flow is NaN at 6 pixels (rows 0..2, columns 0..1)."""
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, img1, img2):
        flow = torch.zeros(img1.shape[0], 2, *img1.shape[2:]) + self.w
        flow[:, :, :3, :2] = float("nan")
        return flow


def make():
    return NanFlow()
'''
