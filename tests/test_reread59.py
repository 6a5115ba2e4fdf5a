"""Re-read 59 (q59a item 7): ``--fold`` text holding two kinds of whitespace names "whitespace" once."""
import pytest

from icegan.commands.gan import _fold_override


def test_fold_with_a_space_and_a_tab_says_whitespace_once():
    with pytest.raises(ValueError) as err:
        _fold_override("sub01 sub02\tsub03,")
    text = str(err.value)
    assert "this holds whitespace ','; to hold out" in text, text
    assert "whitespace whitespace" not in text
    assert "data.holdout_subjects=[sub01,sub02,sub03]" in text


def test_fold_of_one_subject_is_a_one_item_list():
    assert _fold_override("006") == 'data.holdout_subjects=["006"]'
