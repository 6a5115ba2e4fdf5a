"""The report commands load neither torch nor scikit-learn: ``icegan.report``, ``protocol``, ``significance`` and
``ensemble`` imported ``icegan.data.features`` (torch, for a subject's dataset prefix) and ``icegan.metrics``
(scikit-learn, for names and a vectorised formula) at module level, so ``icegan table`` and ``compare`` spent about
2.5 s loading libraries they never call. torch is now imported where tensors are made, scikit-learn inside the metric
functions; every name stays importable where it was."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from _runs import write_metrics

HEAVY = ("torch", "sklearn")


def _loaded_after(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter; its stdout and which of :data:`HEAVY` it left in ``sys.modules``."""
    code += f"\nimport sys; print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text, _, loaded = out.stdout.rpartition("LOADED ")
    return text, eval(loaded)


@pytest.mark.parametrize("module", ["icegan.report", "icegan.protocol", "icegan.significance", "icegan.ensemble",
                                    "icegan.metrics", "icegan.data.features"])
def test_report_modules_import_without_torch_or_sklearn(module):
    assert _loaded_after(f"import {module}")[1] == [], f"import {module} loads torch or scikit-learn"


def test_subject_helpers_need_no_torch():
    """A subject's dataset and a sample table's check make no tensor, so they load and run without torch."""
    code = ("import pandas as pd\n"
            "from icegan.data.features import subject_dataset, validate_samples\n"
            "from icegan.protocol import subject_dataset as again\n"
            "s = validate_samples(pd.DataFrame({'dataset': ['casme2'], 'subject': ['casme2/sub01'], 'clip': ['c'], "
            "'label': ['2']}))\n"
            "print(subject_dataset('samm/006'), again is subject_dataset, s['label'].tolist())")
    text, loaded = _loaded_after(code)
    assert text.split() == ["samm", "True", "[2]"] and loaded == []


def test_the_dataset_class_is_built_on_first_use():
    """``MEGC2019Features`` (a ``torch.utils.data.Dataset``) is made when it is first named: the same class on every
    lookup, named and pickled as ``icegan.data.features.MEGC2019Features``, exported by ``import *``."""
    code = ("import pickle, sys, icegan.data.features as f\n"
            "print('torch' in sys.modules)\n"
            "from icegan.data.features import MEGC2019Features as A\n"
            "from icegan.data.features import *\n"
            "import torch.utils.data as d\n"
            "print(A is f.MEGC2019Features is MEGC2019Features, issubclass(A, d.Dataset), A.__module__, "
            "A.__qualname__, pickle.loads(pickle.dumps(A)) is A)\n"
            "try:\n    f.no_such_name\nexcept AttributeError as e:\n    print(e)")
    text, loaded = _loaded_after(code)
    assert text.splitlines() == ["False", "True True icegan.data.features MEGC2019Features True",
                                 "module 'icegan.data.features' has no attribute 'no_such_name'"]
    assert loaded == ["torch"]


def test_metric_functions_still_score_after_the_lazy_import():
    """The metrics load scikit-learn on their first call and give its numbers (one clip of three misread)."""
    code = ("from icegan.metrics import compute_metrics, confusion_matrix, per_class_metrics\n"
            "m = compute_metrics([0, 1, 2], [0, 1, 1])\n"
            "print(round(m['UAR'], 4), round(m['UF1'], 4), confusion_matrix([0, 1, 2], [0, 1, 1]).tolist(), "
            "per_class_metrics([0, 1, 2], [0, 1, 1])[1]['predicted'])")
    text, loaded = _loaded_after(code)
    assert text.split("\n")[0] == "0.6667 0.5556 [[1, 0, 0], [0, 1, 0], [0, 1, 0]] 2" and loaded == ["sklearn"]


def _finished_run(d, seed=0):
    """A finished run folder of four casme2 subjects (three clips each, one misread: the last of subject ``seed``, so
    that two seeds' predictions differ with the same scores), as ``icegan loso`` leaves it."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "protocol": "CDE", "seed": seed,
                                                   "oracle_epoch": False, "data": {"source": "toy"},
                                                   "model": {"name": "logreg"}}, sort_keys=False))
    rows = [(f"casme2/s{s}", f"s{s}_c{j}", y, 1 if (s, j) == (seed % 4, 2) else y)
            for s in range(4) for j, y in enumerate([0, 1, 2])]
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    pred.insert(0, "fold", pred["subject"].str[-1].astype(int))
    pred.insert(1, "dataset", "casme2")
    for c, name in enumerate(["negative", "positive", "surprise"]):
        pred[f"score_{name}"] = (pred["y_pred"] == c).astype(float)
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "dataset": None, "oracle_epoch": False,
                                            "folds": sorted(pred["subject"].unique())}))
    write_metrics(d)                                 # UF1 0.9153, UAR 0.9167, as icegan table checks it
    return d


def test_icegan_table_and_compare_run_without_torch_or_sklearn(tmp_path):
    """``icegan table`` and ``icegan compare`` of finished runs print what they printed with torch loaded (the known
    table row) and never load torch or scikit-learn."""
    a, b = _finished_run(tmp_path / "lr_s0"), _finished_run(tmp_path / "lr_s1", seed=1)
    text, loaded = _loaded_after(f"from icegan.cli import main\nassert main(['table', 'LR={a},{b}']) == 0")
    assert text.splitlines()[2] == ("| LR | honest | CDE | 2 | 0.9153 ± 0.0000 | 0.9167 ± 0.0000 | "
                                    "0.9153 ± 0.0000 | 0.9167 ± 0.0000 | 4 / 12 |")
    assert loaded == [], "icegan table loads torch or scikit-learn"
    text, loaded = _loaded_after(f"from icegan.cli import main\n"
                                 f"assert main(['compare', '{a}', '{b}', '--resamples', '200']) == 0")
    assert "| lr_s1 | 1 | honest |" in text and loaded == [], "icegan compare loads torch or scikit-learn"
