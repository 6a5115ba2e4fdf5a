"""Your own recognizer (`model.name=custom model.module=SPEC`): loading, the training contract, leak-freeness,
seeds, errors, and a short real `icegan loso` run with resume and provenance."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from icegan.cli import main
from icegan.config import ConfigError, load_config
from icegan.commands.loso import LosoConfig
from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import (PlainRecognizer, build_recognizer, load_recognizer_factory,
                                       recognizer_source_sha256)
from icegan.protocol import make_folds
from icegan.recognition import (RecognizerConfig, check_custom_recognizer, fit_predict_folds, fit_recognizer,
                                member_seed, train_models)

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_recognizer.py"
EXAMPLE_SPEC = f"{EXAMPLE}:TwoLayerCNN"

PLUGIN = '''
import torch
from torch import nn

SEEN = []          # max |x| of every batch forwarded in training mode


class Recorder(nn.Module):
    def __init__(self, num_classes, input_size):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * input_size * input_size, num_classes)

    def forward(self, x):
        if self.training:
            SEEN.append(float(x.abs().max()))
        return self.fc(self.bn(x).flatten(1))


def only_classes(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, num_classes))


def everything(**kwargs):
    only_classes.last_kwargs = kwargs
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * kwargs["input_size"] ** 2, kwargs["num_classes"]))


def wrong_width(input_size):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * input_size * input_size, 5))


def crashes(input_size):
    return nn.Sequential(nn.Linear(10, 3))


class TrainRaise(Recorder):
    def forward(self, x):
        if self.training:
            raise RuntimeError("only when training")
        return super().forward(x)


class IntegerLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(len(x), 3, dtype=torch.long)


def integer_logits():
    return IntegerLogits()


class WithBatchNorm1d(nn.Module):
    def __init__(self, input_size):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * input_size * input_size, 8), nn.BatchNorm1d(8),
                                 nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)


NOT_CALLABLE = 3
'''


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN)
    return path


def _module_of(spec):
    """The module namespace (a dict) of the file a spec names."""
    return vars(sys.modules[load_recognizer_factory(spec).__module__])


def test_file_and_module_specs_resolve(plugin):
    assert load_recognizer_factory(f"{plugin}:Recorder").__name__ == "Recorder"
    assert load_recognizer_factory("torch.nn:Linear") is nn.Linear
    assert load_recognizer_factory("torch.nn:modules.linear.Linear") is nn.Linear     # dotted attribute
    # one import per process: the file's module state is shared between loads
    assert _module_of(f"{plugin}:Recorder") is _module_of(f"{plugin}:only_classes")


@pytest.mark.parametrize("spec,msg", [
    ("no_colon", "expected 'package.module:factory'"),
    ("{plugin}", "expected 'package.module:factory'"),
    ("{dir}/absent.py:Net", "not found"),
    ("{plugin}:Absent", "has no attribute 'Absent'"),
    ("{plugin}:NOT_CALLABLE", "is a int, not a class or function"),
    ("no_such_package_xyz.mod:Net", "cannot import 'no_such_package_xyz'"),
])
def test_bad_specs_are_named(spec, msg, plugin):
    spec = spec.format(plugin=plugin, dir=plugin.parent)
    with pytest.raises(ValueError) as exc:
        load_recognizer_factory(spec)
    assert msg in str(exc.value) and repr(spec) in str(exc.value)


def test_a_misspelt_factory_names_the_closest_one(plugin):
    """``...:TwoLayerCN`` (a letter short) names the factory the file has; a name like none of them gets no guess."""
    spec = f"{EXAMPLE}:TwoLayerCN"
    with pytest.raises(ValueError) as exc:
        load_recognizer_factory(spec)
    assert str(exc.value).endswith("has no attribute 'TwoLayerCN' (did you mean 'TwoLayerCNN'?)"), str(exc.value)
    with pytest.raises(ValueError) as exc:
        load_recognizer_factory(f"{plugin}:Absent")
    assert str(exc.value).endswith("has no attribute 'Absent'")


def test_an_import_error_inside_the_file_keeps_its_message(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\nraise RuntimeError('needs a GPU driver')\n")
    with pytest.raises(ValueError, match="RuntimeError: needs a GPU driver"):
        load_recognizer_factory(f"{bad}:Net")
    bad.write_text("def Net(:\n")
    with pytest.raises(ValueError, match="SyntaxError"):
        load_recognizer_factory(f"{bad}:Net")


def test_factory_gets_only_the_arguments_it_names(plugin):
    m = build_recognizer("custom", module=f"{plugin}:only_classes", input_size=28, dropout=0.3)
    assert isinstance(m, PlainRecognizer) and m(torch.rand(4, 3, 28, 28)).shape == (4, 3)
    build_recognizer("custom", module=f"{plugin}:everything", input_size=12, dropout=0.3)
    assert _module_of(f"{plugin}:everything")["only_classes"].last_kwargs == {
        "num_classes": 3, "in_channels": 3, "input_size": 12, "dropout": 0.3}
    with pytest.raises(ValueError, match="one copy per fold"):
        build_recognizer("custom", n_models=2, module=f"{plugin}:only_classes")
    with pytest.raises(ValueError, match="needs model.module"):
        build_recognizer("custom")
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_recognizer("custom", module="torch.nn:Identity")


def test_wrong_outputs_are_reported_before_training(plugin):
    x = torch.rand(5, 3, 28, 28)
    with pytest.raises(ValueError, match=r"returned \(2, 5\) float32 for input \(2, 3, 28, 28\)"):
        check_custom_recognizer(RecognizerConfig(name="custom", module=f"{plugin}:wrong_width"), x)
    with pytest.raises(ValueError, match="failed in evaluation on a batch of shape"):
        check_custom_recognizer(RecognizerConfig(name="custom", module=f"{plugin}:crashes"), x)
    with pytest.raises(ValueError, match="failed in a training step.*RuntimeError: only when training"):
        check_custom_recognizer(RecognizerConfig(name="custom", module=f"{plugin}:TrainRaise"), x)
    with pytest.raises(ValueError, match=r"returned \(2, 3\) int64 .* floating-point class logits"):
        check_custom_recognizer(RecognizerConfig(name="custom", module=f"{plugin}:integer_logits"))
    check_custom_recognizer(RecognizerConfig(name="custom", module=EXAMPLE_SPEC), x)      # fine: no error
    check_custom_recognizer(RecognizerConfig(), x)                                          # built-ins: no-op


def test_config_errors(plugin, tmp_path):
    with pytest.raises(ConfigError, match="model.name=custom needs model.module"):
        load_config(LosoConfig, None, ["model.name=custom"])
    with pytest.raises(ConfigError, match="read only with model.name=custom"):
        load_config(LosoConfig, None, [f"model.module={plugin}:Recorder"])
    with pytest.raises(ConfigError, match="has no attribute"):
        load_config(LosoConfig, None, ["model.name=custom", f"model.module={plugin}:Nope"])
    with pytest.raises(ConfigError, match="oracle_epoch"):
        load_config(LosoConfig, None, ["model.name=custom", f"model.module={plugin}:Recorder", "oracle_epoch=true"])


def test_training_batches_hold_training_rows_only(plugin):
    """The custom module's batch norm cannot mask rows, so the loop must never forward a non-training row in
    training mode: rows outside the mask are marked with a value no training row has."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features.clone(), fs.labels
    mask = torch.ones(1, len(y), dtype=torch.bool)
    mask[0, :7] = False
    x[:7] = 50.0
    seen = _module_of(f"{plugin}:Recorder")["SEEN"]
    seen.clear()
    cfg = RecognizerConfig(name="custom", module=f"{plugin}:Recorder", epochs=3, batch_size=5, shift_px=1,
                           mixup_alpha=0.4)
    train_models(cfg, x, y, mask, seed=0, progress=False)
    n_train = int(mask.sum())
    assert len(seen) == 3 * -(-n_train // 5)            # every epoch covers the training rows, in ceil(n/5) batches
    assert max(seen) <= 1.0


def test_held_out_subject_does_not_change_its_fold():
    """Relabelling the held-out subject leaves its fold's predictions bit-identical (its labels reach neither the
    loss, the class weights nor the inner validation); scrambling it changes another fold, which trains on it.
    (That its features never reach a training batch: test_training_batches_hold_training_rows_only.)"""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    cfg = RecognizerConfig(name="custom", module=EXAMPLE_SPEC, epochs=3, batch_size=8, shift_px=1, seeds=2,
                           inner_val_fraction=0.25, eval_every=1)
    x, y = fs.features, fs.labels
    p1 = fit_predict_folds(cfg, x, y, subjects, folds, seed=3, progress=False)
    held = torch.as_tensor(folds[0].test_idx)
    y2 = y.clone()
    y2[held] = (y2[held] + 1) % 3
    p2 = fit_predict_folds(cfg, x, y2, subjects, folds, seed=3, progress=False)
    np.testing.assert_array_equal(p1[0], p2[0])
    assert not np.array_equal(p1[1], p2[1])
    x2 = x.clone()
    x2[held] = torch.rand_like(x2[held])
    p3 = fit_predict_folds(cfg, x2, y, subjects, folds[1:], seed=3, progress=False)
    assert not np.array_equal(p1[1], p3[0])


def test_seed_members_are_averaged(plugin):
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features, fs.labels
    base = dict(name="custom", module=EXAMPLE_SPEC, epochs=2, batch_size=8)
    both = fit_recognizer(RecognizerConfig(**base, seeds=2), x, y, seed=5, progress=False)(x)
    one = fit_recognizer(RecognizerConfig(**base), x, y, seed=5, progress=False)(x)
    two = fit_recognizer(RecognizerConfig(**base), x, y, seed=member_seed(5, 1), progress=False)(x)
    assert member_seed(5, 0) == 5 and member_seed(5, 1) not in (5, 6) and member_seed(5, 1) != member_seed(6, 1)
    np.testing.assert_allclose(both, (one + two) / 2, rtol=1e-6, atol=1e-7)
    assert not np.allclose(one, two)
    np.testing.assert_allclose(both.sum(1), 1.0, rtol=1e-5)


def test_custom_recognizer_learns_a_toy_task():
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=3, seed=1)
    subj = fs.samples["subject"].to_numpy()
    test = subj == "samm/s03"
    cfg = RecognizerConfig(name="custom", module=EXAMPLE_SPEC, epochs=25, batch_size=32, lr=3e-3)
    p = fit_recognizer(cfg, fs.features[~test], fs.labels[~test], seed=0, progress=False)(fs.features[test])
    assert (p.argmax(1) == fs.labels[test].numpy()).mean() >= 0.75


def test_real_loso_with_a_custom_recognizer_resumes_and_records_its_code(shared_data, tmp_path, capsys):
    """A short real LOSO: every output, the module's SHA-256 in run.json; a rerun resumes with identical
    predictions; a changed module file is refused instead of mixing two models."""
    net = tmp_path / "net.py"
    shutil.copy(EXAMPLE, net)
    out = tmp_path / "run"
    args = ["loso", "--config", "configs/features_ststnet.yaml", "--out", str(out), "--no-progress",
            "model.name=custom", f"model.module={net}:TwoLayerCNN", "model.epochs=2", "max_folds=2"]
    assert main(args) == 0
    for name in ("predictions.csv", "metrics.json", "metrics.md", "confusion.png", "per_subject.csv", "config.yaml"):
        assert (out / name).is_file(), name
    prov = json.loads((out / "run.json").read_text())["provenance"]
    assert {k: v for k, v in prov.items() if k != "data"} == {
        "recognizer_module": f"{net}:TwoLayerCNN", "recognizer_source_sha256": recognizer_source_sha256(f"{net}:TwoLayerCNN")}
    assert len(prov["data"]) == 16                       # the clips' digest (tests/test_loso_cli.py)
    before = (out / "predictions.csv").read_text()
    assert main(args) == 0
    assert (out / "predictions.csv").read_text() == before
    net.write_text(net.read_text().replace("16, 3, padding=1", "24, 3, padding=1").replace("Conv2d(16", "Conv2d(24")
                   .replace("BatchNorm2d(16)", "BatchNorm2d(24)"))
    capsys.readouterr()
    assert main(args) == 2
    assert "provenance" in capsys.readouterr().err


def test_a_last_batch_of_one_joins_the_batch_before(plugin, monkeypatch):
    """11 training rows in batches of 5 would leave a batch of one, which BatchNorm1d cannot train on: the custom
    path trains on batches of 5 and 6 instead (every row still trained on each epoch; the built-in networks are
    unchanged)."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    mask = torch.zeros(1, len(fs.labels), dtype=torch.bool)
    mask[0, :11] = True
    seen = []
    forward = torch.nn.BatchNorm1d.forward

    def spy(self, x):
        if self.training:
            seen.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(torch.nn.BatchNorm1d, "forward", spy)
    cfg = RecognizerConfig(name="custom", module=f"{plugin}:WithBatchNorm1d", epochs=2, batch_size=5)
    model, _ = train_models(cfg, fs.features, fs.labels, mask, seed=0, progress=False)
    assert sorted(seen[:2]) == sorted(seen[2:]) == [5, 6]
    assert model(fs.features[:4]).shape == (4, 3)


def test_main_job_names_the_recognizer_key(plugin):
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"recognizer.module='.*wrong_width' returned \(2, 5\)"):
        load_main_config(None, ["recognizer.name=custom", f"recognizer.module={plugin}:wrong_width"])
    with pytest.raises(ConfigError, match="recognizer.name=custom needs recognizer.module"):
        load_main_config(None, ["recognizer.name=custom"])
