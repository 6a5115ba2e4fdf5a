"""A recorder of the batches a recognizer trains on, for tests of icegan.recognition.train_models."""
import torch


def record_training_batches(monkeypatch) -> list:
    """Route train_models' forward passes through a recorder, as ``distributed.wrap_ddp`` would wrap the network:
    returns the list that receives a detached copy of every (B, 3, H, W) batch the network gets (after
    augmentation), in the order of the steps."""
    from icegan import recognition
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x, **kw):
            seen.append(x.detach().clone())
            return self.model(x, **kw)
    monkeypatch.setattr(recognition.distributed, "wrap_ddp", lambda model, device=None: Recorder(model))
    return seen
