"""Recognizer settings, STSTNet's dropout and the metrics' inputs (review 60): a shift the maps cannot take is refused
with the settings, not after a fold group has trained; a dropout probability the 1/256 byte mask cannot represent is
applied exactly; confusion counts and labels that are not counts or class ids are refused; zero rows to score are
named."""
import numpy as np
import pytest
import torch

from icegan.metrics import compute_metrics, uf1_uar_from_confusion
from icegan.models.recognizers import STSTNet, fast_dropout
from icegan.recognition import RecognizerConfig, predict_models


@pytest.mark.parametrize("key", ["shift_px", "tta_shift_px"])
def test_a_shift_of_the_map_size_is_refused_with_the_settings(key):
    """model.tta_shift_px >= input_size was accepted by the config and refused by predict_models, after the whole fold
    group had trained (tta_shift_px=40 on the 28-pixel maps); shift_px the same, after the features were made."""
    with pytest.raises(ValueError, match=rf"^model\.{key} must lie in 0\.\.27 pixels \(0 = off\), got 28$"):
        RecognizerConfig(**{key: 28})
    with pytest.raises(ValueError, match=rf"^model\.{key} must lie in 0\.\.13 pixels \(0 = off\), got 40$"):
        RecognizerConfig(input_size=14, **{key: 40})
    assert getattr(RecognizerConfig(**{key: 27}), key) == 27
    assert getattr(RecognizerConfig(input_size=56, **{key: 28}), key) == 28
    from icegan.pipeline import RecognizerSection
    with pytest.raises(ValueError, match=rf"^recognizer\.{key} must lie in 0\.\.27 pixels"):
        RecognizerSection(**{key: 28})


@pytest.mark.parametrize("p", [0.001, 0.3, 0.999])
def test_a_dropout_probability_off_the_1_256_grid_drops_its_share(p):
    """fast_dropout rounded p to a multiple of 1/256: 0.001 dropped nothing, 0.999 everything (nn.Dropout: 0.1 %,
    99.9 %). Such a p now takes torch's exact dropout: the share dropped is p, the kept ones scaled by 1 / (1 - p).
    On the grid (the shipped 0.5 and 0.25 among them) the byte mask stays, draw for draw:
    test_recognizers.py::test_fast_dropout_mask_is_the_byte_draw_scaled."""
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    out = fast_dropout(x, p, training=True)
    dropped = float((out == 0).float().mean())
    assert abs(dropped - p) < 4 * (p * (1 - p) / x.numel()) ** 0.5 + 1e-6, dropped        # 4 standard errors
    assert torch.allclose(out[out != 0], torch.full((), 1 / (1 - p)))


@pytest.mark.parametrize("bad, what", [(-1, "-1"), (np.nan, "nan"), (np.inf, "inf")])
def test_confusion_counts_that_are_not_counts_are_refused(bad, what):
    """A negative count gave UF1 1.444, a NaN count UF1 NaN (UAR 1.0): both are now a ValueError."""
    cm = np.array([[[2, 0, 0], [0, 1, 0], [0, 0, 1]], [[2, bad, 0], [0, 1, 0], [0, 0, 1]]], dtype=float)
    with pytest.raises(ValueError, match=rf"^confusion matrices must hold finite non-negative counts, got {what}"):
        uf1_uar_from_confusion(cm)
    uf1, uar = uf1_uar_from_confusion(cm[:1])
    assert uf1.tolist() == [1.0] and uar.tolist() == [1.0]


def test_confusion_counts_with_two_bad_cells_name_the_first_and_its_index():
    """With two bad cells the message names the first bad value (row-major order) with its own index, not the index
    of another bad cell."""
    with pytest.raises(ValueError) as err:
        uf1_uar_from_confusion(np.array([[1, -1], [2, np.nan]]))
    assert str(err.value) == "confusion matrices must hold finite non-negative counts, got -1.0 at index (0, 1)"


@pytest.mark.parametrize("labels", [["0", "1"], np.array(["0", "1"], dtype=object), [None, 1]])
def test_labels_that_are_not_class_ids_are_refused(labels):
    """String labels crashed in np.mod with a TypeError; now a ValueError that says what the labels must be."""
    with pytest.raises(ValueError, match=r"^y_true must hold integer class ids, got "):
        compute_metrics(labels, [0, 1])
    with pytest.raises(ValueError, match=r"^y_pred must hold integer class ids, got "):
        compute_metrics([0, 1], labels)


def test_predict_models_on_zero_rows_says_so():
    """torch.cat() of no batches raised 'expected a non-empty list of Tensors'; no caller scores zero rows (feature
    tables and clip lists refuse to be empty), so it is a ValueError naming the shape."""
    with pytest.raises(ValueError, match=r"^predict_models needs at least one row of features, got x of shape "
                                         r"\(0, 3, 28, 28\)$"):
        predict_models(STSTNet(), torch.zeros(0, 3, 28, 28))
