"""Leave one dataset out of the MEGC2019 composite: `icegan fit` on the other two datasets, `icegan predict` on the
held-out one (cross-dataset transfer; not a LOSO number and not comparable to one).

The first-class way to run this evaluation is now ``icegan loso ... protocol=HDE`` (leave-one-dataset-out folds,
:func:`icegan.protocol.make_folds`): one resumable run folder with predictions.csv, metrics.json (overall and per
dataset), metrics.md, per_subject.csv and confusion.png, and it works with ``icegan ensemble``, ``icegan compare``,
``icegan table`` and ``icegan suite``::

    icegan loso --config configs/features_ststnet.yaml --out runs/hde/G_s0 protocol=HDE model.shift_px=1 seed=0

This script is kept because it measures the other path, a model saved by ``icegan fit`` and scored by
``icegan predict`` from a feature table. ``icegan loso protocol=HDE`` trains each of its three folds alone, exactly as
``icegan fit`` trains the recipe on those two datasets, so the two paths differ only through their seeds: a fold is
seeded ``seed + 1000 × fold index`` (held-out CASME II is fold 0, the same seed on both paths); a forest, logistic
regression or gradient boosting is seeded ``seed`` in every fold. The STSTNet rows of
docs/benchmarks.md ("A model for new clips ..., and leaving one dataset out") were recorded when HDE still trained
the three folds in one grouped network.

For each held-out dataset and seed, the recipes of the given configs are fitted on the composite's clips of the
other datasets (``data.datasets``), then the held-out dataset's released maps are scored from a feature table that
lists them where they are (``megc2019_htnet``; nothing is copied), alone and as the equal-weight average of all the
configs' models. Prints one Markdown table (UF1 / UAR per held-out dataset, mean over seeds) and writes it with the
per-seed rows to ``--out``.

Usage::

    .venv/bin/python bench/leave_dataset_out.py --seeds 0 1 2 3 4 --out runs/leave_dataset_out \\
        "G=configs/features_ststnet.yaml model.shift_px=1" "RF=configs/features_randomforest.yaml"
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from flownet.user_numbers import SEED_MAX, integer

from icegan.commands.loso import LosoConfig
from icegan.commands.predict import fit, predict_table
from icegan.config import load_config
from icegan.data.features import read_megc2019_table
from icegan.metrics import compute_metrics
from icegan.paths import shared_data_root

DATASETS = ("smic", "casme2", "samm")


class RecipesAction(argparse.Action):
    """The ``NAME=CONFIG [key=value ...]`` arguments as ``[(name, config, overrides), ...]``, checked as they are
    parsed: a name before the first ``=``, non-empty, without ``/`` or ``\\`` (it names the model files
    ``NAME_without_<dataset>_s<seed>.pt`` in ``--out``), without ``|`` or ``+`` (a ``|`` splits a cell of
    results.md; ``+`` joins the names of the ensemble arm, so ``A+B`` would be read as that arm) and unique (a second recipe of one name would overwrite the
    first one's models); after it, a config file that exists and its ``key=value`` overrides (shell words).

    Raises:
        SystemExit: (``parser.error``, exit 2) the first bad recipe, naming it and what to write instead.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        recipes, seen = [], set()
        for r in values:
            name, sep, rest = r.partition("=")
            try:
                words = shlex.split(rest)
            except ValueError as exc:                       # an unbalanced quote
                parser.error(f"recipe '{r}': cannot split its config and overrides into words ({exc})")
            if not sep or not name.strip() or not words:
                parser.error(f"recipe '{r}': expected NAME=CONFIG [key=value ...] (e.g. "
                             f"\"RF=configs/features_randomforest.yaml\"), quoted as one argument")
            if "/" in name or "\\" in name:
                parser.error(f"recipe '{r}': its name '{name}' holds a '/' or '\\'; the name is part of the model "
                             "files' names in --out: give a name without one")
            if "|" in name or "+" in name:
                parser.error(f"recipe '{r}': its name '{name}' holds a '|' or '+'; '|' splits the cells of "
                             "results.md and '+' joins the names of the ensemble arm (A+B): give a name without one")
            if name in seen:
                parser.error(f"recipe name '{name}' given twice; its second recipe would overwrite the first one's "
                             f"models ({name}_without_<dataset>_s<seed>.pt): give each recipe its own NAME")
            if not Path(words[0]).is_file():
                parser.error(f"recipe '{r}': no such config file '{words[0]}' (a path from the current folder, e.g. "
                             "configs/features_randomforest.yaml)")
            seen.add(name)
            recipes.append((name, words[0], words[1:]))
        setattr(namespace, self.dest, recipes)


def main(argv: list[str] | None = None) -> None:
    """Run the evaluation of ``argv`` (None: the command line).

    Raises:
        SystemExit: 2 for bad arguments (argparse's message) or a recipe that ``icegan fit`` refuses (one line on
            stderr naming the recipe, the held-out dataset and the seed, then fit's message).
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", nargs="+", action=RecipesAction, metavar="NAME=CONFIG [key=value ...]",
                    help="a name (unique, without '/', '|' or '+'), '=', an icegan loso config and its overrides, quoted as one "
                         "argument")
    ap.add_argument("--seeds", type=integer(0, SEED_MAX, "training seeds"), nargs="+", default=[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the models, tables and results")
    ap.add_argument("--threads", type=integer(0, meaning="torch CPU threads; 0 = default"), default=2)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    composite = read_megc2019_table(shared_data_root() / "megc2019_htnet")
    recipes = args.recipes
    rows = {}          # (held-out, arm) -> list of (UF1, UAR) over seeds
    for held in DATASETS:
        table = args.out / f"{held}.csv"
        composite[composite["dataset"] == held][["dataset", "subject", "clip", "label", "path"]].to_csv(table, index=False)
        train_on = "[" + ",".join(d for d in DATASETS if d != held) + "]"
        for seed in args.seeds:
            models = []
            for name, config, overrides in recipes:
                path = args.out / f"{name}_without_{held}_s{seed}.pt"
                try:
                    cfg = load_config(LosoConfig, config, [*overrides, f"data.datasets={train_on}", f"seed={seed}",
                                                           f"threads={args.threads}"])
                    fit(cfg, path, progress=False)
                except ValueError as exc:           # a bad override, or a recipe icegan fit refuses: one line
                    print(f"leave_dataset_out: error: recipe {name} ({config}), held out {held}, seed {seed}: "
                          + str(exc).replace("\n", " "), file=sys.stderr)
                    sys.exit(2)
                models.append((name, path))
            arms = [(name, [p]) for name, p in models]
            if len(models) > 1:
                arms.append(("+".join(n for n, _ in models), [p for _, p in models]))
            for arm, paths in arms:
                pred, _, _ = predict_table(paths, table)
                m = compute_metrics(pred["y_true"].astype(int), pred["y_pred"])
                rows.setdefault((held, arm), []).append((m["UF1"], m["UAR"]))
                print(f"held out {held}, {arm}, seed {seed}: UF1 {m['UF1']:.4f} / UAR {m['UAR']:.4f}", flush=True)
    arms = list(dict.fromkeys(a for _, a in rows))
    lines = ["| trained on the other two, scored on | " + " | ".join(arms) + " |",
             "|---|" + "---|" * len(arms)]
    for held in DATASETS:
        cells = []
        for arm in arms:
            v = np.asarray(rows[(held, arm)])
            cells.append(f"{v[:, 0].mean():.4f} / {v[:, 1].mean():.4f}")
        lines.append(f"| {held} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(f"\nUF1 / UAR, mean over seeds {args.seeds}\n\n{text}")
    (args.out / "results.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps({f"{h}|{a}": v for (h, a), v in rows.items()}, indent=1),
                                           encoding="utf-8")


if __name__ == "__main__":
    main()
