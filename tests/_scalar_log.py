"""A stand-in for TensorBoard's ``SummaryWriter`` that keeps what the trainers log, for tests to read back."""
from __future__ import annotations


class ScalarLog:
    """Keeps every ``add_scalar(tag, value, step)`` call in ``rows``, in call order and with the value exactly as
    given (its type too); images are accepted and dropped."""

    def __init__(self):
        self.rows: list[tuple[str, object, int]] = []

    def add_scalar(self, tag, value, step):
        self.rows.append((tag, value, step))

    def add_image(self, *args, **kwargs):
        pass

    @property
    def values(self) -> dict[str, list[float]]:
        """Each tag's values as floats, in call order."""
        out: dict[str, list[float]] = {}
        for tag, value, _ in self.rows:
            out.setdefault(tag, []).append(float(value))
        return out

    @property
    def by_step(self) -> dict[int, dict[str, object]]:
        """step → {tag: value} (a tag logged twice at one step keeps its last value)."""
        out: dict[int, dict[str, object]] = {}
        for tag, value, step in self.rows:
            out.setdefault(step, {})[tag] = value
        return out
