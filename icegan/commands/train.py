"""``icegan train``: the main job (same as ``python train.py`` of a checkout); see :mod:`icegan.pipeline`.

An installed icegan (a wheel, ``pip install git+...``) has no train.py: ``icegan train`` (or ``python -m icegan train``,
which ``torchrun --nproc_per_node N -m icegan train`` runs for DDP) is its main job, and with no --config it runs the
shipped ``demo.yaml`` (:func:`icegan.paths.shipped_config`), found in the package as well as in a checkout.
"""
from __future__ import annotations

from icegan.commands import add_print_config
from icegan.commands._numbers import integer, read_number

#: ``--cpus-per-fold`` when not given: the parser's default, and the value :func:`icegan.pipeline.run_from_args` takes
#: for "not given" (any other value without ``--executor ray`` is refused)
CPUS_PER_FOLD_DEFAULT = 1

#: argparse type of ``--workers``: an integer >= 0 of folds at once (0 = as many as the cluster fits)
_count = integer(0, meaning="0 = as many as fit")


def _cores(text: str) -> float:
    """argparse type of ``--cpus-per-fold``: a finite number > 0 of CPU cores (:func:`read_number`; not
    :func:`~icegan.commands._numbers.number`, whose range includes its lower end, and 0 cores is no reservation)."""
    import argparse
    try:
        value = read_number(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of CPU cores > 0 (e.g. 1 or 0.5), got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of CPU cores > 0 (e.g. 1 or 0.5), got {text}")
    return value


def add_arguments(parser) -> None:
    """Options shared by ``train.py`` and ``icegan train``."""
    parser.add_argument("--config", default=None,
                        help="YAML config (default: the shipped demo.yaml, the built-in synthetic demo; "
                             "`icegan configs` lists the shipped configs)")
    parser.add_argument("--out", default=None, help="run directory (default: <out_dir>/<name> from the config); "
                        "rerunning into the same directory resumes at the first unfinished fold")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_print_config(parser)
    parser.add_argument("--executor", choices=("sequential", "ray"), default="sequential",
                        help="where the LOSO folds run: one after another in this process (default), or as Ray "
                             "tasks (needs `pip install 'icegan[ray]'`; same results, same resume). For DDP "
                             "inside each fold launch with `torchrun --nproc_per_node N -m icegan train ...` "
                             "instead")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="Ray cluster to join (e.g. auto, HOST:6379, ray://HOST:10001); default: start a local "
                             "Ray instance. Workers on other machines must see the run directory (shared file system)")
    parser.add_argument("--workers", type=_count, default=0, metavar="N",
                        help="with --executor ray: at most N folds at once (default: as many as the cluster fits)")
    parser.add_argument("--cpus-per-fold", type=_cores, default=CPUS_PER_FOLD_DEFAULT, metavar="C",
                        help="with --executor ray: CPU cores reserved per fold task (its torch threads unless the "
                             f"config sets threads; default {CPUS_PER_FOLD_DEFAULT}); one GPU per fold when the "
                             "cluster has GPUs")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. gan.epochs=2 flow.method=tvl1 data.max_folds=2 "
                             "gan.enabled=false gan.skip=se gan.joint=false recognizer.name=ststnet")


def register(sub) -> None:
    """Add ``train`` (the main job, ``train.py``'s options: :func:`add_arguments`) to the ``icegan`` parser; it runs
    :func:`icegan.pipeline.run_from_args`.

    Args:
        sub: the ``add_subparsers`` action of the ``icegan`` parser.
    """
    p = sub.add_parser("train", help="LOSO training of ICE-GAN + recognizer on optical flow (same as train.py)",
                       description="LOSO training of ICE-GAN and a recognizer on fixed SRFlowNet flow (gan.joint: "
                                   "the GAN is trained through it); "
                                   "with no --config, the built-in synthetic demo (the shipped demo.yaml; "
                                   "`icegan configs demo` prints it).")
    add_arguments(p)
    p.set_defaults(func=_run, prog_name="icegan train")


def _run(args) -> int:
    """Run the main job (:func:`icegan.pipeline.run_from_args`); with no --config, the shipped demo.yaml wherever
    icegan is installed (:func:`icegan.pipeline.load_main_config`)."""
    from icegan.pipeline import run_from_args
    return run_from_args(args)
