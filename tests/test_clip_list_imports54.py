"""Reading a clip list or a feature table loads no torch: ``icegan.data.clip_list`` (``icegan prepare``, ``icegan data
check`` and the main job on clips listed in a CSV) imported ``icegan.data.feature_table`` for its CSV helpers, and
feature_table imported torch at module level (about 2.7 s) although only :func:`minmax_per_clip` and
:func:`load_table_features` make tensors. torch is now imported in those two; every name stays importable."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest


def _loaded_after(code: str) -> tuple[str, bool]:
    """Run ``code`` in a fresh interpreter; its stdout and whether it left torch in ``sys.modules``."""
    code += "\nimport sys; print('TORCH', 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text, _, loaded = out.stdout.rpartition("TORCH ")
    return text, loaded.strip() == "True"


@pytest.mark.parametrize("module", ["icegan.data.feature_table", "icegan.data.clip_list"])
def test_table_modules_import_without_torch(module):
    assert not _loaded_after(f"import {module}")[1], f"import {module} loads torch"


def test_public_names_and_csv_helpers_need_no_torch():
    """Every exported name is there, and the CSV helpers (a clip list's label cells, a table's cells) run without
    torch."""
    code = ("import icegan.data.feature_table as ft, icegan.data.clip_list as cl\n"
            "from icegan.data.feature_table import *\n"
            "from icegan.data.clip_list import *\n"
            "print(all(hasattr(ft, n) for n in ft.__all__), all(hasattr(cl, n) for n in cl.__all__))\n"
            "print(ft.parse_class_label(' Surprise ', 'x.csv, line 2'), ft.CLASS_NAMES['positive'])")
    text, loaded = _loaded_after(code)
    assert text.split() == ["True", "True", "2", "1"] and not loaded


def test_minmax_per_clip_still_makes_tensors():
    """The torch functions import it themselves: a fresh interpreter normalises a clip without importing torch
    first."""
    code = ("from icegan.data.feature_table import minmax_per_clip\n"
            "import numpy as np, torch\n"
            "x = torch.tensor(np.arange(8, dtype=np.float64).reshape(1, 2, 2, 2))\n"
            "x[0, 1] = 3.0\n"
            "y = minmax_per_clip(x)\n"
            "print(y.dtype, [round(v, 4) for v in y.flatten().tolist()])")
    text, loaded = _loaded_after(code)
    assert text.split("\n")[0] == "torch.float32 [0.0, 0.3333, 0.6667, 1.0, 0.5, 0.5, 0.5, 0.5]" and loaded


def test_load_table_features_makes_a_tensor_in_a_fresh_interpreter(tmp_path):
    """A table's maps come back as a float32 tensor with torch loaded only by the load itself."""
    np.save(tmp_path / "a.npy", np.full((3, 4, 4), 0.25, dtype=np.float32))
    np.save(tmp_path / "b.npy", np.full((3, 4, 4), 0.75, dtype=np.float32))
    (tmp_path / "t.csv").write_text("dataset,subject,clip,label,path\ncasme2,s1,c1,0,a.npy\ncasme2,s2,c2,surprise,"
                                    "b.npy\n")
    code = ("import sys\n"
            "from icegan.data.feature_table import load_table_features\n"
            "print('torch' in sys.modules)\n"
            f"fs = load_table_features({str(tmp_path / 't.csv')!r}, size=4)\n"
            "print(type(fs.features).__module__, fs.features.dtype, tuple(fs.features.shape), fs.labels.tolist(), "
            "float(fs.features[1].mean()))")
    text, loaded = _loaded_after(code)
    assert text.split("\n")[:2] == ["False", "torch torch.float32 (2, 3, 4, 4) [0, 2] 0.75"] and loaded
