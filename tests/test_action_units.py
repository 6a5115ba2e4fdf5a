"""FACS action units as an auxiliary target (model.au_weight): sheet parsing, targets of the real composite, the
STSTNet head, the loss by hand, training, isolation of the held-out rows, and the command's errors."""
import pytest
import torch
from _model_checks import assert_only_second_copy_changed
from _scalar_log import ScalarLog

from icegan.cli import main
from icegan.data.action_units import EMFACS_ACTION_UNITS, action_unit_targets, parse_action_units
from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import STSTNet
from icegan.recognition import RecognizerConfig, _action_unit_loss, train_models


@pytest.mark.parametrize("cell,units", [
    ("4+L10", {4, 10}), ("R12A+R14A", {12, 14}), ("15A+17", {15, 17}), ("12", {12}),
    ("(R6 or R12)+R15", {6, 12, 15}),           # SAMM's alternatives: all present
    ("ref(7B)+43C", {7, 43}), ("10A/B", {10}), ("A/L12", {12}), ("A9E+ref(10)", {9, 10}),
    ("R14+17+soft focus", {14, 17}), (12, {12}),
    ("?", None), ("", None), ("  ", None),      # not coded
])
def test_parse_action_units_sheet_quirks(cell, units):
    assert parse_action_units(cell) == units


def test_parse_action_units_rejects_numbers_outside_facs():
    with pytest.raises(ValueError, match=r"samm clip 'x': action-unit cell '4\+120' holds 120"):
        parse_action_units("4+120", where="samm clip 'x'")
    with pytest.raises(ValueError, match="holds 0"):
        parse_action_units("0")


def test_targets_of_the_real_composite(shared_data):
    """Every CASME II and SAMM clip of the composite is coded in its sheet (278 = 145 + 133), no SMIC clip is; known
    cells land in the right columns."""
    from icegan.data.features import load_megc2019_features
    s = load_megc2019_features(shared_data / "megc2019_htnet").samples
    t, known = action_unit_targets(s["dataset"].tolist(), s["subject"].tolist(), s["clip"].tolist(),
                                   shared_data / "annotations")
    assert t.shape == (442, len(EMFACS_ACTION_UNITS)) and t.dtype == torch.float32
    assert int(known.sum()) == 278
    assert torch.equal(known, torch.tensor((s["dataset"] != "smic").tolist()))
    assert float(t[~known].abs().sum()) == 0.0
    col = {au: i for i, au in enumerate(EMFACS_ACTION_UNITS)}

    def row(sub, clip):
        return t[int(s.index[(s["subject"] == sub) & (s["clip"] == clip)][0])]

    want = torch.zeros(len(EMFACS_ACTION_UNITS))
    want[col[12]] = 1                                           # CASME II sub01 EP02_01f: "12"
    assert torch.equal(row("casme2/sub01", "EP02_01f"), want)
    want = torch.zeros(len(EMFACS_ACTION_UNITS))
    want[[col[4], col[7]]] = 1                                  # SAMM 006_1_2: "4+7"
    assert torch.equal(row("samm/006", "006_1_2"), want)
    want = torch.zeros(len(EMFACS_ACTION_UNITS))
    want[col[4]] = 1                                            # CASME II sub01 EP19_05f: "4+L10" (10 not a column)
    assert torch.equal(row("casme2/sub01", "EP19_05f"), want)


def test_targets_errors_and_uncoded_cells(shared_data, tmp_path):
    ann = shared_data / "annotations"
    # a CASME II clip whose sheet cell is '?' is not coded: no targets, like a SMIC clip
    t, known = action_unit_targets(["casme2", "smic"], ["sub05", "smic/s01"], ["EP13_04f", "s01_ne_01"], ann)
    assert known.tolist() == [False, False] and float(t.sum()) == 0.0
    with pytest.raises(ValueError, match=r"clip 'EP99_99' of subject 'sub01' \(casme2\) is not in .*CASME2-coding"):
        action_unit_targets(["casme2"], ["casme2/sub01"], ["EP99_99"], ann)
    with pytest.raises(FileNotFoundError, match="SAMM_Micro_FACS_Codes_v2.xlsx"):
        action_unit_targets(["samm"], ["006"], ["006_1_2"], tmp_path)
    with pytest.raises(ValueError, match="one entry per clip"):
        action_unit_targets(["samm"], ["006", "007"], ["006_1_2"], ann)


def test_sheet_row_for_the_uncoded_clip_is_real(shared_data):
    """The '?' clip used above is a real row of the sheet (so the test above tests the '?' rule, not a missing row)."""
    from icegan.data.sheets import read_casme2_sheet
    rows = {(r.subject, r.clip): r.action_units for r in read_casme2_sheet(shared_data / "annotations" /
                                                                            "CASME2-coding-20140508.xlsx")}
    assert rows[("sub05", "EP13_04f")] == "?"


def test_ststnet_auxiliary_head():
    """aux_outputs=0 builds the network of before (same parameters); A >= 1 adds a grouped head on the same pooled
    features, (B, G, A) for G copies and (B, A) for one; with_aux without the head is an error."""
    torch.manual_seed(0)
    plain = STSTNet(n_models=2)
    torch.manual_seed(0)
    aux = STSTNet(n_models=2, aux_outputs=5)
    assert set(aux.state_dict()) - set(plain.state_dict()) == {"aux_fc.weight", "aux_fc.bias"}
    for k, v in plain.state_dict().items():
        assert torch.equal(v, aux.state_dict()[k]), k          # the head is made after the rest: same draws
    x = torch.rand(4, 3, 28, 28)
    plain.eval(), aux.eval()
    y, a = aux(x, with_aux=True)
    assert y.shape == (4, 2, 3) and a.shape == (4, 2, 5)
    assert torch.equal(y, aux(x)) and torch.equal(y, plain(x))
    one = STSTNet(aux_outputs=5).eval()
    assert one(x, with_aux=True)[1].shape == (4, 5)
    with pytest.raises(ValueError, match="with_aux=True needs an STSTNet built with aux_outputs"):
        plain(x, with_aux=True)
    with pytest.raises(ValueError, match="aux_outputs must be an integer >= 0"):
        STSTNet(aux_outputs=-1)


def test_action_unit_loss_known_values():
    """Per model: the weighted mean over rows of the mean binary cross-entropy over the units, by hand."""
    logits = torch.tensor([[[0.0, 2.0]], [[-1.0, 1.0]], [[3.0, 0.0]]])      # (B=3, G=1, A=2)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = torch.tensor([[1.0], [0.0], [2.0]])

    def bce(z, y):
        p = 1 / (1 + torch.exp(-torch.tensor(z)))
        return float(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))
    rows = [(bce(0.0, 1) + bce(2.0, 0)) / 2, (bce(-1.0, 0) + bce(1.0, 1)) / 2, (bce(3.0, 1) + bce(0.0, 1)) / 2]
    want = (1 * rows[0] + 0 * rows[1] + 2 * rows[2]) / 3
    torch.testing.assert_close(_action_unit_loss(logits, t, w), torch.tensor([want]))
    assert float(_action_unit_loss(logits, t, torch.zeros(3, 1))) == 0.0           # no known row: no loss


def _toy_action_units(fs):
    """Targets that follow the class (unit k present for class k, unit 3 for every clip), every row known."""
    t = torch.zeros(len(fs), 4)
    t[torch.arange(len(fs)), fs.labels] = 1
    t[:, 3] = 1
    return t, torch.ones(len(fs), dtype=torch.bool)


def test_au_weight_in_training():
    """au_weight=0 ignores the action units (bit-identical to no targets); au_weight > 0 changes the class network
    and trains the head (its predictions match the targets of the training rows); with no row known the head keeps
    its initial weights (no weight decay) while the rest trains; missing or bad targets are errors."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    x, y = fs.features, fs.labels
    mask = torch.ones(1, len(y), dtype=torch.bool)
    au = _toy_action_units(fs)

    def fit(au_weight, units=au, **kw):
        cfg = RecognizerConfig(epochs=40, batch_size=0, lr=0.02, weight_decay=0.0, au_weight=au_weight, **kw)
        m, _ = train_models(cfg, x, y, mask, seed=2, progress=False, action_units=units)
        return m

    base = train_models(RecognizerConfig(epochs=40, batch_size=0, lr=0.02, weight_decay=0.0), x, y, mask, seed=2,
                        progress=False)[0].state_dict()
    for k, v in fit(0.0).state_dict().items():
        assert torch.equal(v, base[k]), k
    m = fit(1.0)
    assert any(not torch.equal(v, m.state_dict()[k]) for k, v in base.items() if v.is_floating_point())
    _, a = m(x, with_aux=True)
    assert ((torch.sigmoid(a) > 0.5).float() == au[0]).float().mean() > 0.9
    torch.manual_seed(2)
    init = STSTNet(n_models=1, aux_outputs=4).state_dict()
    none_known = fit(1.0, units=(au[0], torch.zeros(len(y), dtype=torch.bool)))
    assert torch.equal(none_known.state_dict()["aux_fc.weight"], init["aux_fc.weight"])
    assert not torch.equal(none_known.state_dict()["fc.weight"], init["fc.weight"])
    with pytest.raises(ValueError, match=r"model.au_weight=1.0 needs the action units of every row"):
        train_models(RecognizerConfig(epochs=1, au_weight=1.0), x, y, mask, progress=False)
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        fit(1.0, units=(au[0] * 2, au[1]))


def test_au_weight_scales_the_action_unit_loss_by_hand():
    """The first epoch's logged loss (one full batch, no augmentation) is the initial network's class cross-entropy
    (classes weighted n / (K n_c)) plus au_weight times the mean binary cross-entropy of its action-unit head,
    computed here by hand."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    x, y = fs.features, fs.labels
    y = torch.where(torch.arange(len(y)) == 0, (y + 1) % 3, y)       # unequal classes: the weights matter
    mask = torch.ones(1, len(y), dtype=torch.bool)
    au = _toy_action_units(fs)
    rec = ScalarLog()
    cfg = RecognizerConfig(epochs=1, batch_size=0, dropout=0.0, hflip=False, tta_hflip=False, au_weight=0.5)
    train_models(cfg, x, y, mask, seed=3, progress=False, action_units=au, writer=rec)
    torch.manual_seed(3)
    net = STSTNet(n_models=1, aux_outputs=4, dropout=0.0).train()
    with torch.no_grad():
        logits, a = net(x, sample_mask=mask.t().float(), with_aux=True)
    assert cfg.class_weighting
    w = (len(y) / (3 * torch.bincount(y, minlength=3).float()))[y]
    ce = torch.nn.functional.cross_entropy(logits.reshape(len(y), -1), y, reduction="none")
    class_ce = float((w * ce).sum() / w.sum())
    bce = torch.nn.functional.binary_cross_entropy_with_logits(a.reshape(len(y), -1), au[0])
    assert rec.values["train/ststnet/loss"][0] == pytest.approx(class_ce + 0.5 * float(bce), rel=1e-5)


@pytest.mark.parametrize("extra", [{}, {"mixup_alpha": 0.4, "shift_px": 1, "average_last": 2, "eval_every": 1}])
def test_held_out_action_units_do_not_influence_training(extra):
    """Changing the features, labels and action units of rows masked out of model 0's training leaves model 0
    bit-identical (also with mixup, shifts and snapshots), while model 1, which trains on them, changes."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features, fs.labels
    t, known = _toy_action_units(fs)
    mask = torch.ones(2, len(y), dtype=torch.bool)
    held = torch.arange(len(y)) < 6
    mask[0, held] = False
    cfg = RecognizerConfig(epochs=3, batch_size=8, au_weight=2.0, **extra)
    m1, _ = train_models(cfg, x, y, mask, seed=1, progress=False, action_units=(t, known))
    t2 = t.clone()
    t2[held] = 1 - t2[held]
    m2, _ = train_models(cfg, x, y, mask, seed=1, progress=False, action_units=(t2, known))
    assert_only_second_copy_changed(m1, m2)


@pytest.mark.parametrize("kw,msg", [
    ({"au_weight": -1.0}, "model.au_weight must be a finite number >= 0"),
    ({"au_weight": float("nan")}, "model.au_weight must be a finite number >= 0"),
    ({"au_weight": 1.0, "name": "offtanet"}, "model.au_weight .* applies to ststnet only, not offtanet"),
    ({"au_weight": 1.0, "name": "random_forest"}, "applies to ststnet only, not random_forest"),
])
def test_au_weight_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RecognizerConfig(**kw)


def test_main_job_refuses_au_weight():
    from icegan.config import ConfigError
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match="recognizer.au_weight .* not by the main job"):
        load_main_config("configs/demo.yaml", ["recognizer.au_weight=1"])


def test_short_real_loso_with_action_units(shared_data, tmp_path):
    """A short real LOSO with the auxiliary target runs and saves the key; the same folds without it score other
    probabilities (the head changed the network)."""
    import pandas as pd
    common = ["--config", "configs/features_ststnet.yaml", "--no-progress", "max_folds=2", "model.epochs=3",
              "threads=1", f"data.root={shared_data / 'megc2019_htnet'}", f"data.annotations={shared_data / 'annotations'}"]
    assert main(["loso", "--out", str(tmp_path / "au"), *common, "model.au_weight=1"]) == 0
    assert main(["loso", "--out", str(tmp_path / "plain"), *common]) == 0
    assert "au_weight: 1.0" in (tmp_path / "au" / "config.yaml").read_text()
    a = pd.read_csv(tmp_path / "au" / "predictions.csv", dtype={"subject": str})
    b = pd.read_csv(tmp_path / "plain" / "predictions.csv", dtype={"subject": str})
    assert a["clip"].tolist() == b["clip"].tolist()
    assert not a["score_negative"].equals(b["score_negative"])


@pytest.mark.parametrize("overrides,msg", [
    (["data.annotations={tmp}"], "model.au_weight=1.0: the casme2 coding sheet is needed"),
    (["data.datasets=[smic]"], "model.au_weight=1.0: no clip of this run has coded action units"),
])
def test_loso_action_unit_errors_are_messages(shared_data, tmp_path, capsys, overrides, msg):
    """Missing sheets, or a run without coded clips, end with the error line and exit 2, before a run folder."""
    overrides = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    rc = main(["loso", "--config", "configs/features_ststnet.yaml", "--out", str(tmp_path / "x"),
               "model.au_weight=1", *overrides])
    err = capsys.readouterr().err
    assert rc == 2 and f"icegan loso: error: {msg}" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_loso_reads_the_sheets_once(shared_data, tmp_path, sheet_reads):
    """The command's pre-check reads the coding sheets and hands the units to the run: one read per command."""
    assert main(["loso", "--config", "configs/features_ststnet.yaml", "--out", str(tmp_path / "au"), "--no-progress",
                 "max_folds=1", "model.epochs=1", "threads=1", f"data.root={shared_data / 'megc2019_htnet'}",
                 f"data.annotations={shared_data / 'annotations'}", "model.au_weight=1"]) == 0
    assert len(sheet_reads) == 1


def test_parse_action_units_keeps_the_ends_of_the_facs_range():
    """1 and 99 are FACS codes (the range's ends are kept); 0 and 100 are not."""
    assert parse_action_units("1+99") == {1, 99}
    for cell in ("0", "100"):
        with pytest.raises(ValueError, match="not a FACS code"):
            parse_action_units(cell)


def test_emfacs_columns_are_the_union_of_the_emotion_prototypes():
    """The target columns are exactly the union of the EMFACS prototypes named in the module, in ascending order."""
    prototypes = {"happiness": {6, 12}, "sadness": {1, 4, 15}, "surprise": {1, 2, 5, 26},
                  "fear": {1, 2, 4, 5, 7, 20, 26}, "anger": {4, 5, 7, 23}, "disgust": {9, 15, 16},
                  "contempt": {12, 14}}
    assert EMFACS_ACTION_UNITS == tuple(sorted(set().union(*prototypes.values())))
