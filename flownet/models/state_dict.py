"""Strict loading of a state dict into a flow network, with an error that says what does not match."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn

__all__ = ["load_state_dict_strict"]


def load_state_dict_strict(module: nn.Module, sd: object, source: str, what: str = "the model",
                           convert: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
    """Load ``sd`` into ``module`` only if its keys and tensor shapes match exactly.

    Args:
        module: the network to load into.
        sd: a state dict (name → tensor) read from a weights file.
        source: what the weights came from (a path, ``train.init_weights: <path>``), put first in errors.
        what: how errors name the model (e.g. ``SRFlowNet({config})``).
        convert: applied to every tensor before loading (e.g. half → float).

    Raises:
        ValueError: ``sd`` is not a dict of tensors, or keys are missing / unexpected / of the wrong shape
            (names ``source``, ``what`` and the first three keys of each kind with their counts).
    """
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{source}: not a state dict of tensors")
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        raise ValueError(f"{source}: weights do not match {what}: missing {missing[:3]} ({len(missing)}), "
                         f"unexpected {extra[:3]} ({len(extra)}), wrong shape {wrong[:3]} ({len(wrong)})")
    module.load_state_dict({k: convert(v) for k, v in sd.items()} if convert else sd)
