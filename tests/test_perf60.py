"""Start-up cost of processes that use neither scikit-learn nor the GAN: limit_threads does not import scikit-learn /
SciPy (their pools are limited when a scikit-learn model is fitted), and the config check does not import
torch_geometric. Each check runs in a fresh process (a test process has long imported everything)."""
import json
import os
import subprocess
import sys

from icegan.paths import REPO_ROOT


def _python(code: str, *args: str, omp: str = "1") -> str:
    """stdout's last line of ``python -c code args`` in a fresh process with ``OMP_NUM_THREADS=omp`` (every other
    ``*_NUM_THREADS`` unset, so the pools start at ``omp`` threads)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                         env={**env, "OMP_NUM_THREADS": omp})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_toy_ststnet_loso_with_threads_1_leaves_scikit_learn_models_unloaded(tmp_path):
    # STSTNet uses no scikit-learn model; icegan.metrics still imports sklearn.metrics for UF1/UAR (not SciPy's
    # linear algebra module nor any estimator, which limit_threads imported before, 1.4-2 s per process)
    code = ("import sys, json; from icegan.cli import main; "
            "rc = main(['loso', '--out', sys.argv[1], '--no-progress', 'data.source=toy', 'data.toy_subjects=2', "
            "'threads=1', 'model.epochs=1']); "
            "print(json.dumps([rc, sorted(m for m in ('sklearn.linear_model', 'sklearn.ensemble', 'torch_geometric') "
            "if m in sys.modules)]))")
    rc, loaded = json.loads(_python(code, str(tmp_path / "run")))
    assert rc in (0, None) and loaded == []
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_limit_threads_imports_no_scikit_learn_and_fits_still_run_limited():
    """limit_threads(1) loads no scikit-learn / SciPy; a logistic-regression fit and the label-noise forest then
    run with every BLAS / OpenMP pool (scikit-learn's OpenMP, SciPy's OpenBLAS included) at 1 thread, read inside
    ``fit`` (2 threads by default in this process)."""
    code = (
        "import sys, json, torch, numpy as np\n"
        "from icegan.environment import limit_threads\n"
        "limit_threads(1)\n"
        "before = [m for m in ('sklearn', 'scipy.linalg') if m in sys.modules]\n"
        "from threadpoolctl import threadpool_info\n"
        "import sklearn.linear_model, sklearn.ensemble\n"
        "seen = {}\n"
        "def spy(cls, name):\n"
        "    fit = cls.fit\n"
        "    def wrapped(self, *a, **k):\n"
        "        seen[name] = sorted({(p['user_api'], p['num_threads']) for p in threadpool_info()})\n"
        "        return fit(self, *a, **k)\n"
        "    cls.fit = wrapped\n"
        "spy(sklearn.linear_model.LogisticRegression, 'logreg')\n"
        "spy(sklearn.ensemble.RandomForestClassifier, 'forest')\n"
        "from types import SimpleNamespace\n"
        "from icegan.recognition import fit_predict_sklearn, _drop_noisy_labels\n"
        "from icegan.recognizer_config import RecognizerConfig\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x, y = torch.randn(24, 3, 4, 4, generator=g), torch.arange(24) % 3\n"
        "fold = SimpleNamespace(index=0, train_idx=np.arange(6, 24), test_idx=np.arange(6))\n"
        "p = fit_predict_sklearn(RecognizerConfig(name='logreg'), x, y, fold)\n"
        "_drop_noisy_labels(RecognizerConfig(forest_trees=5), x, y, np.ones((1, 24), bool), [fold], 1, 0, False)\n"
        "print(json.dumps([before, seen, list(p.shape)]))\n")
    before, seen, shape = json.loads(_python(code, omp="2"))
    assert before == [] and shape == [6, 3]
    assert seen["logreg"] == seen["forest"] == [["blas", 1], ["openmp", 1]]


def test_config_check_does_not_import_torch_geometric():
    code = ("import sys; from icegan.pipeline import load_main_config; "
            "load_main_config('configs/casme2.yaml'); print('torch_geometric' in sys.modules)")
    assert _python(code) == "False"


def test_a_callers_blas_limit_stays_after_a_scikit_learn_model_ran():
    """After limit_threads(1), a caller's own ``threadpool_limits(2)`` on NumPy's BLAS is back at 2 once a
    scikit-learn model ran inside it (``one_blas_thread``): limit_sklearn_threads limits only pools not limited before,
    where it re-limited every pool to 1 (the clean-clone CI failure of test_gan_eval's one-BLAS-thread probe)."""
    code = (
        "import json, numpy as np\n"
        "from threadpoolctl import threadpool_info, threadpool_limits\n"
        "from icegan.environment import limit_threads\n"
        "from icegan.recognition import one_blas_thread\n"
        "limit_threads(1)\n"
        "numpy_blas = lambda: [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'\n"
        "                      and i['filepath'] in {j['filepath'] for j in np_pools}]\n"
        "np_pools = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "with threadpool_limits(limits=2, user_api='blas'):\n"
        "    with one_blas_thread():\n"
        "        inside = numpy_blas()\n"
        "    after = numpy_blas()\n"
        "print(json.dumps([inside, after]))\n")
    inside, after = json.loads(_python(code))
    assert inside and set(inside) == {1} and set(after) == {2}, (inside, after)
