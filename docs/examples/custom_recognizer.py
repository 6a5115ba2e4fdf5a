"""An example of your own recognizer for ``icegan loso`` (and ``icegan suite``, nested selection included).

Run it under the same honest composite LOSO as the built-in networks::

    icegan loso --config configs/features_ststnet.yaml --out runs/mynet \
        model.name=custom model.module=docs/examples/custom_recognizer.py:TwoLayerCNN

Contract: the factory (a class or a function) returns a ``torch.nn.Module`` that maps (B, 3, S, S) flow features (u,
v, optical strain, each in [0, 1]; S = ``model.input_size`` pixels) to (B, K) class logits: K = 3 for MEGC2019's
classes (negative, positive, surprise), 5 under ``data.labels=casme2_5`` or ``samm_5``. It receives those of
``num_classes`` (K), ``in_channels``, ``input_size`` and ``dropout`` that its signature names. Everything else
(AdamW, the schedule, class weights, flips, shifts, mixup, seeds, test-time augmentation, inner-validation early
stopping, resuming) is icegan's, as for STSTNet.
"""
import torch
from torch import nn


class TwoLayerCNN(nn.Module):
    """Two 3×3 conv–BN–ReLU–max-pool stages (16, 32 filters) and a linear classifier.

    Args:
        num_classes: K (3 for MEGC2019). in_channels: C (3: u, v, strain). input_size: S in pixels (28 for the
            megc2019_htnet maps; a multiple of 4). dropout: before the classifier, in [0, 1).

    ``forward(x)``: (B, C, S, S) → (B, K) logits.
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, input_size: int = 28, dropout: float = 0.5):
        super().__init__()
        if input_size % 4:
            raise ValueError(f"TwoLayerCNN needs input_size divisible by 4, got {input_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(32 * (input_size // 4) ** 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
