"""Second review of this session's fixes: a five-class model fitted on bare ids read the bare ids of ANY table without
provenance.json as its set's (a MEGC2019 table's 0 negative read as happiness, a wrong UF1 printed; adce436), an
SRFlowNet context width below model.hidden passed the config and failed in torch's split_with_sizes (b0a6503), and
icegan compare's LaTeX note left every line after a line break of an entry's label outside its '%' comment."""
import hashlib
import io
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest
import torch
from test_label_sets import write_five_class_table
from test_report56 import ROWS, _lr_run

from icegan.cli import main
from icegan.commands.predict import predict_table
from icegan.data.feature_table import UnrecordedIdsError

# 1. -------------------------------------------------------------------------------------------------------------

ONLY = (r"ids are read as ids of casme2_5 only in the table a model was fitted on \(the same content\) or in a "
        r"table whose provenance\.json records casme2_5")


def _megc_table(folder):
    """CASME II clips labelled with MEGC2019 ids (0 negative, 1 positive, 2 surprise), no provenance.json."""
    (folder / "maps").mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for k, lab in enumerate([0, 1, 2, 0, 2]):
        np.save(folder / "maps" / f"m{k}.npy", (rng.random((3, 28, 28)) * 0.5).astype(np.float32))
        rows.append({"dataset": "casme2", "subject": "sub09", "clip": f"EP{k}", "label": lab,
                     "path": f"maps/m{k}.npy"})
    pd.DataFrame(rows).to_csv(folder / "features.csv", index=False)
    return folder / "features.csv"


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("bare")
    ids = write_five_class_table(d / "ids", subjects=3, per_class=1, ids=True)
    model = d / "five.pt"
    assert main(["fit", "--out", str(model), "--no-progress", "data.source=table", f"data.table={ids}",
                 "data.labels=casme2_5", "model.name=logreg", "threads=1"]) == 0
    return model, ids


def test_fit_records_the_digest_of_the_bare_id_table(bare_model):
    model, ids = bare_model
    meta = torch.load(model, weights_only=True)
    assert meta["training"]["bare_ids_of"] == {"labels": "casme2_5",
                                               "table_sha256": hashlib.sha256(ids.read_bytes()).hexdigest()}


def test_a_model_fitted_on_bare_ids_refuses_them_in_another_table(bare_model, tmp_path, capsys):
    """The MEGC2019 table of /tmp/aud_review2/bare_ids_other_set.py: rc 0 and UF1 0.2222 of 0 negative read as
    happiness; now refused as before adce436, saying which tables' ids are read as the set's."""
    model, ids = bare_model
    meg = _megc_table(tmp_path / "megc")
    with pytest.raises(UnrecordedIdsError, match=rf"features\.csv, line 2 \(clip 'EP0'\): label '0' is a bare "
                                                 rf"class id.*{ONLY}"):
        predict_table([model], meg)
    assert main(["predict", "--model", str(model), "--table", str(meg), "--out", str(tmp_path / "p.csv")]) == 2
    assert "is a bare class id" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
    # the training table itself, and a byte-for-byte copy of it, are read as fit read them
    out, _, _ = predict_table([model], ids)
    assert out["y_true"].tolist() == [0, 1, 2, 3, 4] * 3
    # the training table with one label changed is another table: refused
    t = pd.read_csv(ids)
    t.loc[0, "label"] = 1
    t["path"] = [str(ids.parent / p) for p in t["path"]]
    t.to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(UnrecordedIdsError, match=ONLY):
        predict_table([model], tmp_path / "edited.csv")


def test_a_model_with_the_earlier_record_of_the_set_alone_refuses_bare_ids(bare_model, tmp_path):
    """A model written by adce436 recorded the set's name only (no table digest): its bare ids are not trusted."""
    model, ids = bare_model
    payload = torch.load(model, weights_only=True)
    payload["training"]["bare_ids_of"] = "casme2_5"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(UnrecordedIdsError, match=ONLY):
        predict_table([tmp_path / "old.pt"], ids)


# 2. -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, last", [({"context_layers": (32, 32, 48, 64, 32)}, 32),
                                      ({"context_layers": (32, 32, 48, 64, 1)}, 1), ({"hidden": 160}, 128)])
def test_a_context_width_below_hidden_is_refused_naming_both_keys(kw, last):
    """context_layers[-1] holds the GRU's hidden state and the context channels: a narrower one failed in torch's
    split_with_sizes (split_sizes=[64, -32])."""
    from flownet.models.srflownet import SRFlowNetConfig
    hidden = kw.get("hidden", 64)
    with pytest.raises(ValueError, match=rf"^model\.context_layers\[4\] \({last}\) must be >= model\.hidden "
                                         rf"\({hidden}\)"):
        SRFlowNetConfig(**kw)


def test_a_context_width_equal_to_hidden_runs():
    """No context channels: the network still runs (and the face preset and defaults pass)."""
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    cfg = SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 16), hidden=16,
                          corr_levels=2, motion_channels=16, super_kernel=3, flow_head_hidden=8, mask_hidden=8,
                          iters=1, motion_corr_channels=8, motion_flow_channels=8, gru_kernel=3, ffn_expansion=1)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = SRFlowNet(cfg)(x, x)
    flow = out[-1] if isinstance(out, (list, tuple)) else out
    assert flow.shape == (1, 2, 32, 32) and torch.isfinite(flow).all()
    SRFlowNetConfig()
    SRFlowNetConfig.face()


# 3. -------------------------------------------------------------------------------------------------------------

def test_compare_latex_note_keeps_every_line_of_a_label_in_the_comment(tmp_path):
    """An entry label with a line break: the rest of the note (raw '_' and '±') was outside the '% Note:' comment."""
    s0 = _lr_run(tmp_path, "lr_s0", 0, ROWS)
    s1 = _lr_run(tmp_path, "lr_s1", 1, ROWS[::-1])
    for label in ("LR\nv2", "LR\r\nv2", "LR"):
        buf = io.StringIO()
        with redirect_stdout(buf):
            assert main(["compare", f"{label}={s0},{s1}", "--resamples", "200", "--format", "latex"]) == 0
        text = buf.getvalue()
        lines = text.splitlines()
        start = next(i for i, ln in enumerate(lines) if ln.startswith("% Note: entry 'LR"))
        end = next(i for i in range(start, len(lines)) if lines[i].endswith("not a measured spread."))
        assert all(ln.startswith("% ") for ln in lines[start:end + 1]), lines[start:end + 1]
        assert end - start == (0 if label == "LR" else 1)
        assert lines[start + (end - start)].startswith("% v2': runs " if label != "LR" else "% Note: entry 'LR': ")
        # nothing outside a comment holds the note's raw characters
        assert not any("±" in ln or "lr_s0" in ln for ln in lines if not ln.startswith("%"))


def test_the_suite_page_carries_the_same_predictions_note(tmp_path):
    """A toy suite of a logistic regression run with seeds 0 and 1 (deterministic: the same predictions):
    results.md and results.tex pool them (n 2, ± 0) with the note naming both runs."""
    from test_suite import CONFIGS

    from icegan.suite import run_suite
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: toy\nseeds: [0, 1]\nresamples: 200\nruns:\n  - {{label: floor, config: "
                     f"{CONFIGS}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}\n")
    out = tmp_path / "out"
    run_suite(suite, out, ["threads=1", "max_folds=2"], progress=False)
    a, b = out / "floor_s0", out / "floor_s1"
    note = (f"entry 'floor': runs {a} and {b} have the same predictions (predictions.csv, the same rows in any "
            "order): this recipe's result does not depend on its seed here; ± 0 is not a measured spread")
    md = (out / "results.md").read_text(encoding="utf-8")
    assert f"Note: {note}." in md and "| floor [PARTIAL: 2 of 8 folds] | honest | CDE | 2 | 1.0000 ± 0.0000 |" in md
    tex = (out / "results.tex").read_text(encoding="utf-8")
    assert "have the same predictions" in tex and "$\\pm$ 0 is not a measured spread.}" in tex
    assert str(a).replace("_", "\\_") in tex and str(a) not in tex        # in the caption, escaped
