"""``icegan prepare``'s face detection without torch: the face_recognition loader lives in the torch-free
:mod:`flownet.data.face_models` (re-exported by :mod:`flownet.data.synthetic_face`, used by
:mod:`icegan.data.landmarks` and the workers' :mod:`icegan.data.face_models_preload`)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("module", ["icegan.data.landmarks", "icegan.data.face_models_preload", "icegan.data.align",
                                    "icegan.data.spotting", "icegan.data.prepare", "flownet.data.face_models"])
def test_the_prepare_modules_and_the_worker_preload_leave_torch_unimported(module):
    """The forkserver preloads face_models_preload, prepare and landmarks; a raw clip's work imports align and
    spotting: none of them may pull in torch (seconds of start-up in every prepare process)."""
    proc = _python(f"""
        import sys
        import {module}
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"importing {module} imports torch: {proc.stdout.strip()[:300]}"


def test_the_worker_preload_loads_the_models_that_landmarks_uses():
    proc = _python("""
        import icegan.data.face_models_preload
        import flownet.data.face_models as fm
        import icegan.data.landmarks as lm
        print(fm._FR is not None, lm.face_recognition_modules is fm.face_recognition_modules)
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


def test_every_import_path_of_face_recognition_modules_gives_the_same_modules():
    import flownet.data.face_models as fm
    import flownet.data.synthetic_face as sf
    import icegan.data.landmarks as lm
    fm.face_recognition_modules()                      # imported without its pkg_resources warning
    import face_recognition
    assert sf.face_recognition_modules() == lm.face_recognition_modules() == fm.face_recognition_modules()
    assert fm.face_recognition_modules()[0] is face_recognition
    assert fm.face_recognition_modules()[1] is face_recognition.api


def test_face_models_without_face_recognition_say_how_to_install_it(monkeypatch):
    import flownet.data.face_models as fm
    monkeypatch.setattr(fm, "_FR", None)
    monkeypatch.setitem(sys.modules, "face_recognition", None)          # import face_recognition raises ImportError
    with pytest.raises(ImportError, match=r"face_recognition package .*pip install --no-deps face_recognition==1\.3"):
        fm.face_recognition_modules()


def test_a_raw_prepare_where_torch_cannot_be_imported_gives_the_same_arrays(shared_data, tmp_path):
    """One raw CASME II clip (640x480 frames: face detection, landmarks, alignment) prepared in a process where
    ``import torch`` fails, and here: the same arrays and alignment to the bit."""
    from icegan.data import prepare as prep
    spec = dict(name="casme2", root="{shared_data}/casme2_raw", mode="raw", subjects=["sub01"], clips=["EP02_01f"],
                annotations="{shared_data}/annotations/CASME2-coding-20140508.xlsx")
    settings = dict(size=64, workers=1, progress=False, landmarks=True)
    proc = _python(f"""
        import sys
        sys.modules["torch"] = None                  # import torch raises ImportError in this process
        from icegan.data import prepare as prep
        cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(**{spec!r})], cache_root={str(tmp_path / "no_torch")!r},
                                 **{settings!r})
        print(prep.prepare_dataset(cfg).cache_dir)
        """)
    assert proc.returncode == 0, f"a raw prepare without torch failed: {proc.stderr[-2000:]}"
    without = prep.load_prepared(proc.stdout.strip().splitlines()[-1])
    here = prep.prepare_dataset(prep.PrepareConfig(datasets=[prep.DatasetSpec(**spec)],
                                                   cache_root=str(tmp_path / "here"), **settings))
    assert list(here.manifest["clip"]) == list(without.manifest["clip"]) == ["EP02_01f"]
    for name in ("onset", "apex", "apex_neighbours", "landmarks"):
        a, b = getattr(here.frames, name), getattr(without.frames, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
    assert np.isfinite(here.frames.landmarks).all()
    assert list(here.manifest["affine"]) == list(without.manifest["affine"])


def test_synthetic_face_re_exports_the_one_loader(monkeypatch):
    """flownet.data.synthetic_face.face_recognition_modules is the torch-free module's function (one memo): a second
    copy with its own cache let a stub of face_models._FR miss detect_landmarks (found by review)."""
    import flownet.data.face_models as fm
    import flownet.data.synthetic_face as sf
    assert sf.face_recognition_modules is fm.face_recognition_modules
    stub = (object(), object())
    monkeypatch.setattr(fm, "_FR", stub)
    assert sf.face_recognition_modules() is stub
