"""``icegan suite``: the command line's overrides replace a run's own of the same keys in any form (a section
mapping, a dotted key, a whole list and one of its items), so every planned command line sets each key once and
``icegan loso`` accepts it."""
import shlex

import pytest

from icegan.commands.loso import LosoConfig
from icegan.config import load_config, refuse_repeated_keys
from icegan.suite import load_suite, own_overrides, plan_suite

from test_suite import TINY


def _planned(tmp_path, own: str, suite_over: list[str]):
    """The STSTNet run of TINY with its own overrides ``own`` (YAML list text), planned with ``suite_over``: its
    command line's override words and the config they load."""
    path = tmp_path / "suite.yaml"
    path.write_text(TINY.replace("overrides: [model.epochs=2]", f"overrides: {own}"))
    plan = plan_suite(load_suite(path), path, tmp_path / "out", suite_over)
    p = next(x for x in plan if x.label == "STSTNet" and x.seed == 0)
    words = shlex.split(p.command)
    config, over = words[words.index("--config") + 1], words[words.index("--out") + 2:]
    return p, config, over


@pytest.mark.parametrize("own, suite_over, kept", [
    ("['model={epochs: 1, lr: 0.01}']", ["threads=1", "model.epochs=2"], ["model.lr=0.01"]),
    ("[model.epochs=1, model.lr=0.01]", ["threads=1", "model={epochs: 2}"], ["model.lr=0.01"]),
    ("['model={epochs: 1, lr: 0.01}']", ["threads=1", "model={epochs: 2}"], ["model.lr=0.01"]),
])
def test_the_suites_override_replaces_a_runs_own_of_the_same_key_in_any_form(tmp_path, own, suite_over, kept):
    """A run's "model={epochs: 1, lr: 0.01}" under the suite's model.epochs=2 (or the reverse) was kept whole: the
    printed command set model.epochs twice, which icegan loso refuses."""
    p, config, over = _planned(tmp_path, own, suite_over)
    assert over == ["seed=0", "name=ststnet_s0", *kept, *suite_over]
    refuse_repeated_keys(over)                       # icegan loso's check of its command line
    for cfg in (p.config, load_config(LosoConfig, config, over)):
        assert (cfg.model.epochs, cfg.model.lr, cfg.threads) == (2, 0.01, 1)


def test_own_overrides_keeps_what_the_command_line_leaves():
    """Numbers keep their written text, texts and lists read back the same; a whole list the command line sets an
    item of is dropped (the command line's wins), an item of a list it sets whole too."""
    assert own_overrides(["model={epochs: 1, lr: 1.0e-3, lr_schedule: cosine, shift_px: [1, 2]}", "workers=1"],
                         ["model.epochs=2"]) == ['model.lr=1.0e-3', 'model.lr_schedule="cosine"',
                                                 "model.shift_px=[1, 2]", "workers=1"]
    assert own_overrides(["data.prepare.datasets=[{name: a}]"], ["data.prepare.datasets.0.name=b"]) == []
    assert own_overrides(["data.prepare.datasets.0.name=b"], ["data.prepare.datasets=[{name: a}]"]) == []
    assert own_overrides(["model={epochs: 1}", "model.lr=0.1"], ["model.dropout=0.2"]) == ["model={epochs: 1}",
                                                                                             "model.lr=0.1"]
    # an override the config reader will refuse is left to it (named there), unless the command line replaces it
    assert own_overrides(["model=[", "workers=1"], ["workers=2"]) == ["model=["]
