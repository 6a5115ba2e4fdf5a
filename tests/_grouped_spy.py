"""A spy on the grouped recognizer's predictions, for tests that read every fold copy's probabilities."""
from __future__ import annotations


def record_grouped_predictions(monkeypatch) -> list:
    """Make :func:`icegan.recognition._predict` append a CPU copy of each (N, G, K) probability tensor it returns to
    the list returned here (one entry per call, in call order), leaving its results unchanged."""
    import icegan.recognition as recognition
    seen: list = []
    real = recognition._predict

    def spy(*a, **kw):
        p = real(*a, **kw)
        seen.append(p.detach().cpu().clone())
        return p
    monkeypatch.setattr(recognition, "_predict", spy)
    return seen
