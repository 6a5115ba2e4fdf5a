"""A suite of LOSO recipes × seeds in one command (``icegan suite``), ending in one results page.

A suite file (YAML, :class:`SuiteConfig`) names recipes (an ``icegan loso`` config on precomputed features, or a
``train.py`` main-job config, plus overrides), probability ensembles of them (``icegan ensemble``), the seeds, and
the baseline of the paired comparison. Running it does, for every seed, what a researcher would otherwise type by
hand::

    icegan loso --config <run.config> --out <out>/<run>_s<seed> seed=<seed> name=<run>_s<seed> <run.overrides> <overrides>
    python train.py --config <run.config> --out <out>/<run>_s<seed> seed=<seed> ...      (command: train)
    icegan ensemble <out>/<member>_s<seed> ... --out <out>/<ensemble>_s<seed>

and, after the last seed, one ensemble of every seed's runs for an ensemble marked ``over_seeds``
(``icegan ensemble <out>/<member>_s<seed> ... --out <out>/<ensemble>``), then writes ``<out>/results.md``: the
results table (``icegan table``: UF1 / UAR overall and per dataset, seeds as mean ± std, folds / clips), every run's
UF1 / UAR by seed (:func:`per_seed_table`), the subject-bootstrap intervals with paired differences to the baseline
(``icegan compare``), and the
equivalent commands with the wall time of the call that finished each (kept in ``<out>/suite_times.json``, written
as the suite makes ``<out>``: it marks the folder a suite's, which no run may write into,
:data:`icegan.paths.SUITE_MARK`);
``<out>/compare.png`` draws the intervals (forest plot) and ``<out>/results.tex`` holds the results table as a
LaTeX table float (booktabs, caption, label). ``results.md`` is rewritten after
every seed, so an interrupted suite still leaves the table of the seeds it finished.

Honesty: every member run is an honest LOSO (final epoch / final fit, nothing chosen on the held-out subject), and
ensemble members and weights are fixed in the suite file before anything runs. What the suite cannot know is how
the recipes in the file were chosen: a recipe picked after seeing these subjects' results is one more look at
them, and the file's comments should say so (``configs/suite_composite.yaml`` does). Picking the best row of the
table is such a look too; a ``selection`` section (:class:`SuiteSelection`) adds the honest version of it, one
row per seed: a nested selection (:mod:`icegan.selection`) in which every outer fold gets the predictions of the
entry that scored best in an inner cross-validation over that fold's training subjects.

Resuming: each member run resumes at its first unfinished fold (:func:`icegan.protocol.run_loso`), a finished one
is only re-read, and ensembles are recomputed from their members (seconds), so rerunning the same command after an
interruption finishes the suite with the same numbers. A member whose folder holds a run of another config is
refused (:class:`icegan.protocol.LosoStateError`), never overwritten. Seeds added to the file (``[0, 1]`` →
``[0, 1, 2]``) are trained, and an ensemble over the seeds made of the earlier seeds' runs, a subset of today's, is
made again of them all; one of other runs (a rerun with fewer ``--seeds``) is refused
(:func:`icegan.ensemble.ensemble_runs`), never overwritten. A nested-selection folder is made by the suite command as a
whole (results.md says so): ``--seeds <seed>`` alone would rewrite the page for that seed only.

Reusing runs of other suites (``reuse``, ``icegan suite --reuse DIR``): a member run whose folder does not exist yet
is copied from a finished run in DIR (an earlier suite's output folder, or one run folder) made with the same
resolved config except its name (:func:`find_reusable_run`, :func:`copy_finished_run`), instead of being trained
again. The copy is then read like any finished run, so the LOSO header (folds, clips) is checked against the data
of this suite, and results.md names the source of every copied run. With a ``selection`` section, the inner-fold
predictions the source suite kept for that run are copied too (:func:`copy_inner_predictions`).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

from icegan.config import (SEED_MAX, ConfigError, apply_overrides, key_within, keys_set_by, load_config, override_key,
                           parse_override, refuse_repeated_keys, yaml_text)
from icegan.paths import SUITE_MARK, check_output_folder, check_run_name, run_folder_header, shipped_config_dir
from icegan.report import RESUME, read_run_json, reading_configs

__all__ = ["SuiteRun", "SuiteEnsemble", "SuiteSelection", "SuiteConfig", "PlannedRun", "plan_suite", "run_suite",
           "load_suite", "slug", "reusable_runs", "find_reusable_run", "copy_finished_run", "own_fold_folder",
           "copy_inner_predictions"]


@dataclass
class SuiteRun:
    """One recipe: ``label`` (the table row), ``command`` (``loso``: ``icegan loso`` on precomputed features;
    ``train``: the main job, ``train.py``), ``config`` (that command's YAML; a relative path is relative to the suite
    file's folder, else names a shipped config), ``overrides`` (``key=value``, as on that command's line) and ``seeded`` (False: a deterministic
    recipe, e.g. logistic regression, run once with the first seed the suite runs: the file's first, or the first
    ``--seeds`` value when ``--seeds`` is given)."""
    label: str = ""
    config: str = ""
    command: Literal["loso", "train"] = "loso"
    overrides: list[str] = field(default_factory=list)
    seeded: bool = True


@dataclass
class SuiteEnsemble:
    """An equal-weight (or ``weights``) probability average of runs of the suite, by their labels, one per seed.

    ``over_seeds: true`` makes one model of every seed instead: after the last seed, the runs of all the members and
    all the suite's seeds are averaged in one folder ``<slug>`` (a member's weight, 1 by default, is shared equally
    by its runs, so that five seeds of one member and five of another weigh as the two members; an unseeded member
    counts once). Its row is one run, compared like any row; it cannot be a nested-selection candidate (the
    selection chooses per seed). ``weights``: one non-negative number per member, not all zero (`icegan ensemble`'s
    rule, :func:`icegan.ensemble.mixing_weights`, checked when the suite file is read)."""
    label: str = ""
    members: list[str] = field(default_factory=list)
    weights: Optional[list[float]] = None
    over_seeds: bool = False


@dataclass
class SuiteSelection:
    """Nested selection among the suite's entries (:mod:`icegan.selection`), one more row per seed.

    ``inner_folds`` (0 = off; >= 2 turns it on): for every outer LOSO fold, the candidates are scored by an inner
    cross-validation over that fold's training subjects (``inner_folds`` groups of subjects), and the fold gets the
    predictions of the best one by ``criterion`` (``UF1`` / ``UAR`` of the pooled inner predictions; ``scope``
    ``all`` training clips or only those of the held-out subject's ``dataset``; ``protocol=HDE`` runs, whose outer
    folds hold out a dataset, take ``all`` only). The row is an honest score of
    "pick the best of these recipes", which the best row of the table is not. ``candidates``: labels of ``loso``
    runs and of ensembles of them (empty: all of them); ``label``: the row's name."""
    label: str = "nested selection"
    inner_folds: int = 0
    criterion: Literal["UF1", "UAR"] = "UF1"
    scope: Literal["all", "dataset"] = "all"
    candidates: list[str] = field(default_factory=list)


@dataclass
class SuiteConfig:
    """A suite file. ``name``: one folder name (the default ``--out`` is ``runs/<name>``;
    :func:`icegan.paths.check_run_name`); ``baseline``: label of the entry the paired differences are taken against
    (default: the first run); ``resamples``: subject-bootstrap resamples of the comparison; ``stratify``: draw the
    subjects within each dataset (:func:`icegan.significance.bootstrap_compare`; default False, one pool; a scope
    whose subjects are each alone in their dataset is drawn from one pool, under a "Not stratified" line:
    :func:`write_results`); ``per_dataset``: also one comparison per dataset (each dataset's subjects resampled
    alone) when the runs span several datasets."""
    name: str = "suite"
    seeds: list[int] = field(default_factory=lambda: [0])
    runs: list[SuiteRun] = field(default_factory=list)
    ensembles: list[SuiteEnsemble] = field(default_factory=list)
    baseline: Optional[str] = None
    resamples: int = 9999
    stratify: bool = False
    per_dataset: bool = True
    selection: SuiteSelection = field(default_factory=SuiteSelection)

    @property
    def labels(self) -> list[str]:
        """Every entry's label: the runs', the ensembles', then the nested selection's when it is on (the order of
        the results table)."""
        sel = [self.selection.label] if self.selection.inner_folds else []
        return [r.label for r in self.runs] + [e.label for e in self.ensembles] + sel

    @property
    def candidates(self) -> list[str]:
        """Labels the nested selection chooses among (in the suite's order): the ``selection.candidates``, or
        every ``loso`` run and every ensemble of ``loso`` runs."""
        loso = {r.label for r in self.runs if r.command == "loso"}
        every = [r.label for r in self.runs if r.label in loso] + \
            [e.label for e in self.ensembles if all(m in loso for m in e.members) and not e.over_seeds]
        return [lab for lab in every if lab in self.selection.candidates] if self.selection.candidates else every

    def __post_init__(self):
        # the default --out is runs/<name>: "" is runs/ itself, "../x" outside it
        check_run_name(self.name, folder="the suite's folder, runs/<name> without --out", example="composite")
        if not self.runs:
            raise ValueError("a suite needs at least one entry in 'runs'")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        bad = [s for s in self.seeds if not 0 <= s <= SEED_MAX]
        if bad:
            raise ValueError(f"seeds must be in [0, {SEED_MAX}] (numpy and scikit-learn take no other), got {bad}")
        labels = self.labels
        for i, r in enumerate(self.runs):
            if not r.label.strip() or not r.config.strip():
                raise ValueError(f"runs[{i}] needs a label and a config")
            for o in r.overrides:            # it would replace the suite's seed={seed} (every seed, one same run)
                if _suite_key(o):
                    raise ValueError(f"runs[{i}] ('{r.label}'): override '{o}' sets {_suite_key(o)}: "
                                     f"{SUITE_SETS}")
            try:                             # its planned command line gives them: `icegan loso` would refuse it
                refuse_repeated_keys(r.overrides)
            except ConfigError as exc:
                raise ValueError(f"runs[{i}] ('{r.label}') overrides: {exc}") from None
        for lab in labels:
            if labels.count(lab) > 1:
                raise ValueError(f"label '{lab}' is used twice; every run and ensemble needs its own")
        slugs = [slug(lab) for lab in labels]
        for lab, s in zip(labels, slugs):
            if slugs.count(s) > 1:
                raise ValueError(f"labels {[x for x, t in zip(labels, slugs) if t == s]} give the same folder "
                                 f"name '{s}'; make them differ in letters or digits")
        run_labels = [r.label for r in self.runs]
        for e in self.ensembles:
            if len(e.members) < 2:
                raise ValueError(f"ensemble '{e.label}' needs at least two members, got {e.members}")
            for m in e.members:
                if m not in run_labels:
                    raise ValueError(f"ensemble '{e.label}': member '{m}' is not the label of a run ({run_labels})")
                if e.members.count(m) > 1:          # icegan ensemble refuses it, but only after the members trained
                    raise ValueError(f"ensemble '{e.label}': member '{m}' is listed twice; use weights")
            if e.weights is not None:               # icegan ensemble's rule, before any member trains
                if len(e.weights) != len(e.members):
                    raise ValueError(f"ensemble '{e.label}': {len(e.weights)} weights for {len(e.members)} members")
                from icegan.ensemble import EnsembleError, mixing_weights
                try:
                    mixing_weights(e.weights, len(e.members))
                except EnsembleError as exc:
                    raise ValueError(f"ensemble '{e.label}': {exc}") from None
        if self.baseline is not None and self.baseline not in labels:
            raise ValueError(f"baseline '{self.baseline}' is not the label of a run or an ensemble ({labels})")
        from icegan.significance import check_bootstrap_settings
        check_bootstrap_settings(self.resamples)            # the suite file's key: resamples
        sel = self.selection
        if sel.inner_folds < 0 or sel.inner_folds == 1:
            raise ValueError(f"selection.inner_folds must be 0 (off) or >= 2, got {sel.inner_folds}")
        if sel.inner_folds:
            if not sel.label.strip():
                raise ValueError("selection.label must not be empty")
            runs = {r.label: r for r in self.runs}
            ens = {e.label: e for e in self.ensembles}
            for lab in sel.candidates:
                if lab not in runs and lab not in ens:
                    raise ValueError(f"selection candidate '{lab}' is not the label of a run or an ensemble "
                                     f"({[r.label for r in self.runs] + list(ens)})")
                if lab in ens and ens[lab].over_seeds:
                    raise ValueError(f"selection candidate '{lab}' is an ensemble over the seeds (over_seeds: true), "
                                     "one model of all seeds; the nested selection chooses among the recipes of "
                                     "each seed")
                members = [lab] if lab in runs else ens[lab].members
                for m in members:
                    if runs[m].command != "loso":
                        raise ValueError(f"selection candidate '{lab}': run '{m}' is a train.py run; only `icegan "
                                         "loso` recipes (and ensembles of them) can be selected among")
            if len(self.candidates) < 2:
                raise ValueError(f"a nested selection needs at least two candidates, got {self.candidates}")


#: why a ``seed=`` or ``name=`` override is refused, on the command line and in a run's ``overrides`` alike
SUITE_SETS = "the suite sets each run's seed and name; give seeds with --seeds (or the suite file's seeds)"


def _suite_key(override: str) -> str:
    """``seed`` or ``name`` when ``override`` (``key=value``) sets that key, which the suite sets for every run;
    else ``""``."""
    key = override_key(override)
    return key if key in ("seed", "name") else ""


@dataclass
class PlannedRun:
    """One folder the suite fills: a LOSO run (``config`` set) or an ensemble (``members`` set)."""
    label: str
    seed: int
    out: Path
    config: object = None                  # LosoConfig (``icegan loso``) or MainConfig (``train.py``)
    command: str = ""                       # the equivalent command line
    members: list[Path] = field(default_factory=list)
    weights: Optional[list[float]] = None
    selection: list = field(default_factory=list)          # icegan.selection.Candidate objects
    over_seeds: bool = False                                # an ensemble of the runs of every seed


def slug(label: str) -> str:
    """Folder name of a label: lower case, runs of other characters than letters and digits as one ``_``
    (``"STSTNet + shifts"`` → ``ststnet_shifts``; no letter or digit: ``run``). Always lower-case ASCII letters,
    digits and single inner ``_``.

    A label with letters or digits outside ASCII (NFKC-normalised; combining marks kept with their letter) keeps its
    ASCII part and gets 8 hex digits of the SHA-1 of its lower-cased letters and digits, so that labels in any
    script get distinct folders (``"基线"`` → ``4bb19316``, ``"ICE-GAN β"`` → ``ice_gan_2cca2042``),
    stable across runs and, as for ASCII, blind to case and punctuation."""
    text = unicodedata.normalize("NFKC", label).lower()
    key = _letter_runs(text)
    if key.isascii():
        return key or "run"
    ascii_part = re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return f"{ascii_part}_{digest}" if ascii_part else digest


def _letter_runs(text: str) -> str:
    """The runs of letters and digits (``str.isalnum``, with the combining marks that follow) of ``text``, joined
    by ``_``."""
    runs, cur = [], []
    for c in text:
        if c.isalnum() or (cur and unicodedata.category(c).startswith("M")):
            cur.append(c)
        elif cur:
            runs.append("".join(cur))
            cur = []
    return "_".join(runs + (["".join(cur)] if cur else []))


def load_suite(path: str | Path, seeds: Optional[Sequence[int]] = None) -> SuiteConfig:
    """Read a suite file (``seeds`` replaces the file's seeds when given).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: an unknown key, a wrong type, or an inconsistent suite (a ``name`` that is not one folder name,
            duplicate labels, an ensemble member or baseline that is not a label, a member listed twice in one
            ensemble, ensemble weights that are not one non-negative number per member, not
            all zero, a run whose ``overrides`` set ``seed`` or ``name``, which the suite sets, or give a key twice,
            which its planned command line would...), with the file's name.
    """
    over = [f"seeds=[{', '.join(str(int(s)) for s in seeds)}]"] if seeds else []
    return load_config(SuiteConfig, path, over)


def member_config_path(run: SuiteRun, base: Path) -> Path:
    """The config file of the suite recipe ``run``: its ``config`` as given when absolute; a relative one next to the
    suite file (``base``, its folder), else the shipped config of that name (:func:`icegan.paths.shipped_config_dir`),
    so that a suite copied out with ``icegan configs suite_composite > mine.yaml`` runs the shipped recipes. The
    planned command lines name the file used.

    Raises:
        FileNotFoundError: neither file exists; names the run's label and both places looked in.
    """
    given = Path(run.config)
    if given.is_absolute():
        if given.is_file():
            return given
        raise FileNotFoundError(f"suite run '{run.label}': config file not found: {given}")
    beside = base / given
    if beside.is_file():
        return beside
    shipped = shipped_config_dir() / given
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(f"suite run '{run.label}': config file not found: {beside} (a relative config is looked "
                            f"for next to the suite file, then among the shipped configs of `icegan configs`)")


def plan_suite(suite: SuiteConfig, suite_path: str | Path, out: str | Path,
               overrides: Sequence[str] = ()) -> list[PlannedRun]:
    """Every folder of the suite, in the order they are filled (seed by seed: the runs, then the ensembles), with
    each run's config loaded and checked (so a typo fails before anything trains).

    Args:
        suite: the loaded suite.
        suite_path: the suite file (relative member configs are found next to it, else among the shipped configs:
            :func:`member_config_path`).
        out: the suite's output folder.
        overrides: ``key=value`` applied to every member run after its own overrides (e.g. ``device=cuda``,
            ``data.root=...``, ``threads=2``); a run's own override of the same key is dropped, in any form
            (:func:`own_overrides`: of a run's section mapping ``"model={epochs: 1, lr: 0.01}"`` under
            ``model.epochs=2`` only ``model.lr=0.01`` is kept), so the planned command line sets each key once.

    Raises:
        FileNotFoundError: a member config that does not exist (named with the run's label).
        ConfigError: a member's config or overrides are invalid (named with the run's label; an error of the run's
            own overrides also with the suite file and ``runs[i].overrides``), a command-line override is invalid
            (``command-line override '...'``: :func:`_check_command_line`); ``seed`` given as an override (the suite
            sets it); runs of two label sets (``data.labels``); runs of different LOSOs (``protocol``, ``dataset``,
            or ``data.datasets``: :func:`_loso_of`; names both runs and the key); two entries planned into one folder (an unseeded
            ``lr s0`` and a seeded ``lr`` both in ``lr_s0``: names both); an unseeded entry planned into one of the
            suite's own folders (:data:`SUITE_OWN_FOLDERS`).
    """
    base = Path(suite_path).parent
    out = Path(out)
    for o in overrides:
        if _suite_key(o):
            raise ConfigError(f"override '{o}': {SUITE_SETS}")
    _check_command_line(suite, base, overrides)        # a typo there is the command line's, not the first run's
    plan: list[PlannedRun] = []
    by_key: dict[tuple[str, int], Path] = {}
    configs: dict[tuple[str, int], object] = {}
    label_sets: dict[str, str] = {}         # data.labels -> the first run of that label set
    loso_of: dict[str, tuple[str, dict]] = {}     # "run" -> the first run's label and its _loso_of
    file_seeds = _file_seeds(suite_path)       # the suite's command names --seeds only when others ran
    given = [] if file_seeds == list(suite.seeds) else ["--seeds", ",".join(map(str, suite.seeds))]
    for i, seed in enumerate(suite.seeds):
        for j, r in enumerate(suite.runs):
            if not r.seeded and i > 0:
                by_key[(r.label, seed)] = by_key[(r.label, suite.seeds[0])]
                configs[(r.label, seed)] = configs[(r.label, suite.seeds[0])]
                continue
            cfg_path = member_config_path(r, base)
            folder = out / (f"{slug(r.label)}_s{seed}" if r.seeded else slug(r.label))
            name = folder.name
            own = own_overrides(r.overrides, overrides)     # one command line sets a key once
            over = [f"seed={seed}", f"name={name}", *own, *overrides]
            try:
                cfg = _load_member(r, cfg_path, over)
            except ConfigError as exc:
                where = ""           # the run loads without its own overrides: they are what to fix
                if own:
                    try:
                        _load_member(r, cfg_path, [f"seed={seed}", f"name={name}", *overrides])
                        where = f", in {suite_path}, runs[{j}].overrides"
                    except ConfigError:
                        pass
                raise ConfigError(f"suite run '{r.label}' ({r.command}{where}): {exc}") from None
            label_sets.setdefault(cfg.data.labels, r.label)
            if len(label_sets) > 1:                # their comparison would be refused after every run had trained
                (a, run_a), (b, run_b) = list(label_sets.items())[:2]
                raise ConfigError(f"suite runs '{run_a}' (data.labels={a}) and '{run_b}' (data.labels={b}) score "
                                  "different classes, and a suite compares its runs on the same clips and classes: "
                                  "give every run the same data.labels, or each label set its own suite")
            loso = _loso_of(cfg)
            first, loso0 = loso_of.setdefault("run", (r.label, loso))
            for key in loso0:           # their comparison would be refused after every run had trained
                if key in loso and loso[key] != loso0[key]:
                    raise ConfigError(f"suite run '{r.label}' differs from '{first}' in '{key}' ({loso[key]!r} vs "
                                      f"{loso0[key]!r}); only runs of the same LOSO can be compared (their models "
                                      "were trained on other subjects), and a suite compares all its runs: give every "
                                      f"run the same {key}, or each its own suite")
            prog = "icegan loso" if r.command == "loso" else "icegan train"
            configs[(r.label, seed)] = cfg
            plan.append(PlannedRun(r.label, seed, folder, config=cfg,
                                   command=shlex.join([*prog.split(), "--config", str(cfg_path), "--out", str(folder),
                                                       *over])))
            by_key[(r.label, seed)] = folder
        for e in suite.ensembles:
            if e.over_seeds:
                continue                   # planned once, after the last seed (below)
            members = [by_key[(m, seed)] for m in e.members]
            folder = out / f"{slug(e.label)}_s{seed}"
            if all(not next(r for r in suite.runs if r.label == m).seeded for m in e.members):
                if i > 0:
                    by_key[(e.label, seed)] = by_key[(e.label, suite.seeds[0])]
                    continue
                folder = out / slug(e.label)
            by_key[(e.label, seed)] = folder
            plan.append(PlannedRun(e.label, seed, folder, members=members, weights=e.weights,
                                   command=_ensemble_command(members, folder, e.weights)))
        sel = suite.selection
        if sel.inner_folds:
            from icegan.selection import Candidate
            recipe = {r.label: Candidate(r.label, by_key[(r.label, seed)], config=configs[(r.label, seed)])
                      for r in suite.runs if r.command == "loso"}
            cands = []
            for lab in suite.candidates:
                e = next((x for x in suite.ensembles if x.label == lab), None)
                cands.append(recipe[lab] if e is None else
                             Candidate(lab, by_key[(lab, seed)], members=[recipe[m] for m in e.members],
                                       weights=e.weights))
            hde = sorted({r.label for c in cands for r in ([c] if c.config is not None else c.members)
                          if r.config.protocol == "HDE"})
            if sel.scope == "dataset" and hde:
                raise ConfigError(f"selection.scope=dataset scores the candidates on the training clips of the "
                                  f"held-out unit's own dataset, and the HDE runs {hde} (leave one dataset out) have "
                                  "none in any fold; set selection.scope=all")
            folder = out / f"{slug(sel.label)}_s{seed}"
            # no command of its own: `--seeds <seed>` alone would rewrite the page for that seed and re-plan an
            # ensemble over the seeds (and an unseeded run) for it
            plan.append(PlannedRun(sel.label, seed, folder, selection=cands,
                                   command=shlex.join(["icegan", "suite", "--config", str(suite_path), "--out",
                                                       str(out), *given, *overrides])
                                   + f"   # nested selection: seed {seed}, made by the suite command as a whole; "
                                     f"{sel.inner_folds} inner folds, {sel.criterion}, scope {sel.scope}, among "
                                     f"{len(cands)} candidates"))
    for e in suite.ensembles:
        if not e.over_seeds:
            continue
        members, weights = [], []
        for m, w in zip(e.members, e.weights or [1.0] * len(e.members)):
            runs = list(dict.fromkeys(by_key[(m, seed)] for seed in suite.seeds))    # an unseeded run once
            members += runs
            weights += [w / len(runs)] * len(runs)
        folder = out / slug(e.label)
        weights = None if len(set(weights)) == 1 else weights
        plan.append(PlannedRun(e.label, suite.seeds[-1], folder, members=members, weights=weights,
                               command=_ensemble_command(members, folder, weights)
                               + f"   # one model of seeds {', '.join(map(str, suite.seeds))}", over_seeds=True))
    planned: dict[Path, PlannedRun] = {}
    for p in plan:      # labels of distinct slugs can still meet: an unseeded 'lr s0' and a seeded 'lr' (seed 0)
        if p.out.name in SUITE_OWN_FOLDERS:
            raise ConfigError(f"suite entry '{p.label}' would be written into {p.out}, the suite's own folder of "
                              f"{SUITE_OWN_FOLDERS[p.out.name]}: give it another label")
        twin = planned.setdefault(p.out, p)
        if twin is not p:
            def named(q: PlannedRun) -> str:
                return f"'{q.label}'" + ("" if q.out.name == slug(q.label) else f" (seed {q.seed})")
            raise ConfigError(f"suite entries {named(twin)} and {named(p)} are planned into the same folder "
                              f"{p.out}; the second would refuse (or read) the first's run after it trained: give "
                              "them labels that differ in more than a seed suffix (_s<seed>)")
    return plan


def _loso_of(cfg: object) -> dict:
    """The settings of a member run's config that make its LOSO (which clips, which outer folds), by key as in an
    override: ``protocol``, ``dataset`` (SDE) of every run, and for an ``icegan loso`` run (a
    :class:`~icegan.commands.loso.LosoConfig`) also ``data.datasets`` (sorted). :func:`plan_suite` refuses runs that
    differ in a key both have. The feature source is not among them: runs on two feature tables (or a table and
    prepared clips) of the same clips are one LOSO with other features, what a suite of flow methods compares; runs of
    other clips are refused when their comparison reads the runs' predictions."""
    from icegan.commands.loso import LosoConfig
    if not isinstance(cfg, LosoConfig):         # a train.py run (command: train): its data section's protocol
        return {"protocol": cfg.data.protocol, "dataset": cfg.data.dataset}
    return {"protocol": cfg.protocol, "dataset": cfg.dataset, "data.datasets": sorted(cfg.data.datasets)}


def own_overrides(run_overrides: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """A suite run's own ``run_overrides`` less what the suite's command-line ``overrides`` set, in any form
    (:func:`icegan.config.keys_set_by`, as ``icegan loso`` refuses a key set twice): an override whose keys the
    command line all sets is dropped (``model.epochs=1`` under ``"model={epochs: 2}"``); a section mapping the
    command line sets part of is replaced by dotted overrides of its other keys (``"model={epochs: 1, lr: 0.01}"``
    under ``model.epochs=2`` becomes ``model.lr=0.01``); a whole list or value the command line sets one item or key
    of is dropped (the command line's override wins, on the config file's value). Other overrides are kept as they
    are, in their order.

    Returns:
        the run's overrides to give before the command line's, each ``key=value`` text.
    """
    suite_keys = [k for o in overrides if "=" in o for k in keys_set_by(o)]

    def touched(key: str) -> bool:                  # the command line sets it, part of it or a section above it
        return any(key_within(key, s) or key_within(s, key) for s in suite_keys)

    def walk(key: str, value: object) -> list[tuple[str, object]]:
        if any(key_within(key, s) for s in suite_keys):
            return []                               # set by the command line
        if not touched(key):
            return [(key, value)]
        if isinstance(value, dict) and value:       # a section mapping: keep its keys the command line leaves
            if not any(touched(f"{key}.{k}") for k in value):
                return [(key, value)]
            return [x for k, v in value.items() for x in walk(f"{key}.{k}", v)]
        return []                                   # a whole list or value holding a key the command line sets

    own: list[str] = []
    for item in run_overrides:
        try:
            key, value = parse_override(item)
        except ConfigError:                         # left to the config reader, which names it, unless replaced
            key = override_key(item)
            own += [] if any(key_within(key, s) for s in suite_keys) else [item]
            continue
        kept = walk(key, value)
        own += [item] if kept == [(key, value)] else [f"{k}={yaml_text(v)}" for k, v in kept]
    return own


def _load_member(run: SuiteRun, path: Path, over: Sequence[str]) -> object:
    """The config of the suite recipe ``run`` from its file ``path`` with the overrides ``over``: a
    :class:`icegan.commands.loso.LosoConfig` (``command: loso``; a custom network is checked for the run's label set)
    or a :class:`icegan.pipeline.MainConfig` (``command: train``; :func:`icegan.pipeline.load_main_config` checks
    custom code itself).

    Raises:
        ConfigError: the file or the overrides are invalid, or a custom network does not fit (the message of the
            check, without the run's label).
    """
    from icegan.commands.loso import LosoConfig
    from icegan.pipeline import load_main_config
    if run.command != "loso":
        return load_main_config(path, over)
    cfg = load_config(LosoConfig, path, over)
    from icegan.labels import get_label_set
    from icegan.recognition import check_custom_recognizer
    try:                                           # a wrong network fails here, before any run
        check_custom_recognizer(cfg.model, n_classes=get_label_set(cfg.data.labels).n_classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def _check_command_line(suite: SuiteConfig, base: Path, overrides: Sequence[str]) -> None:
    """Check the command line's ``overrides`` once, before the runs are planned: applied to the first run of each
    command (``loso``, ``train``), loaded with its own overrides but those of the keys the command line sets, so that
    a typo there is reported as the command line's, not as that run's. A run whose own config or overrides fail is
    left to :func:`plan_suite`, which names it.

    Args:
        suite: the loaded suite.
        base: the suite file's folder (:func:`member_config_path`).
        overrides: the command line's ``key=value`` for every run.

    Raises:
        ConfigError: ``command-line override '<key=value>': <why>``, naming the first override that fails on its own
            (all of them when only their combination fails), and the run it failed on when the suite has runs of
            both commands.
        FileNotFoundError: that run's config file does not exist (:func:`member_config_path`).
    """
    from icegan.commands.loso import LosoConfig
    from icegan.pipeline import MainConfig
    commands = list(dict.fromkeys(r.command for r in suite.runs)) if overrides else []
    for command in commands:
        r = next(x for x in suite.runs if x.command == command)
        # runs of both commands: the keys of which one (icegan loso's or train.py's)
        on = f" (on the command: {command} run '{r.label}')" if len(commands) > 1 else ""
        own = own_overrides(r.overrides, overrides)
        try:
            cfg = load_config(LosoConfig if command == "loso" else MainConfig, member_config_path(r, base),
                              [f"seed={suite.seeds[0]}", f"name={slug(r.label)}", *own])
        except ConfigError:
            continue
        try:
            apply_overrides(cfg, overrides)
        except ConfigError as exc:
            for o in overrides:
                try:
                    apply_overrides(cfg, [o])
                except ConfigError as alone:
                    raise ConfigError(f"command-line override '{o}'{on}: {alone}") from None
            raise ConfigError(f"command-line overrides {shlex.join(overrides)}{on}: {exc}") from None


SUITE_OWN_FOLDERS = {"inner": "the nested selection's inner-fold predictions",
                     "flow_features": "the train.py runs' shared real flow maps"}
"""Folders of a suite's ``--out`` that :func:`run_suite` fills itself, so no entry may be planned into them."""


def _ensemble_command(members: Sequence[Path], folder: Path, weights: Optional[Sequence[float]]) -> str:
    """The ``icegan ensemble`` line that makes ``folder`` (shell-quoted)."""
    w = ["--weights", *(f"{x:g}" for x in weights)] if weights else []
    return shlex.join(["icegan", "ensemble", *map(str, members), "--out", str(folder), *w])


REUSED_FROM = "reused_from.txt"


def _comparable(config_dict: dict, parsed: bool = False) -> dict:
    """A resolved config as compared for reuse: through YAML (as saved in config.yaml), without ``name`` and without
    neutral new keys (:func:`icegan.config.without_neutral_keys`). ``parsed``: ``config_dict`` was just parsed from a
    config.yaml (:func:`reusable_runs`), so it is what YAML gives back already and is not dumped and parsed again."""
    import yaml

    from icegan.config import without_neutral_keys
    d = dict(config_dict) if parsed else yaml.safe_load(yaml.safe_dump(config_dict, sort_keys=False))
    d.pop("name", None)
    return without_neutral_keys(d)


def reusable_runs(folders: Sequence[str | Path]) -> list[tuple[Path, dict]]:
    """The finished LOSO runs in ``folders``, each with its comparable config (:func:`_comparable`).

    A folder is a run folder itself (it holds ``config.yaml``) or a folder of run folders (e.g. an earlier
    ``icegan suite`` output); a run counts as finished when it holds ``config.yaml``, ``run.json``,
    ``predictions.csv`` and ``metrics.json``, and ``metrics.json`` says it is not an oracle-epoch run. Ensemble and
    nested-selection folders (no ``config.yaml``) are not runs and are skipped. A run a suite copied (``--reuse``) is
    a finished run like any other and can be copied again.

    Raises:
        FileNotFoundError: a folder that does not exist (named).
        ValueError: a run's ``config.yaml`` or ``metrics.json`` that cannot be read (names the file).
    """
    import yaml

    found: list[tuple[Path, dict]] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"--reuse {folder}: no such folder")
        runs = [folder] if (folder / "config.yaml").is_file() else sorted(d for d in folder.iterdir() if d.is_dir())
        for run in runs:
            need = [run / n for n in ("config.yaml", "run.json", "predictions.csv", "metrics.json")]
            if not all(f.is_file() for f in need):
                continue
            try:
                cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
                raise ValueError(f"--reuse: cannot read {run}/config.yaml ({exc})") from None
            # a metrics.json cut short or not an object: named, with the rerun that mends it
            oracle = read_run_json(run / "metrics.json", f"--reuse: {RESUME}").get("oracle_epoch", False)
            if isinstance(cfg, dict) and not oracle:
                found.append((run.resolve(), _comparable(cfg, parsed=True)))   # each config.yaml parsed once
    return found


def find_reusable_run(config: object, runs: Sequence[tuple[Path, dict]]) -> Optional[Path]:
    """The first of ``runs`` (:func:`reusable_runs`) made with ``config`` (a LosoConfig or MainConfig dataclass)
    except its name, or None. Every other key counts, seed, threads and device included: a run is reused only where
    it is the run this suite would make."""
    from icegan.config import to_dict
    want = _comparable(to_dict(config))
    return next((path for path, cfg in runs if cfg == want), None)


#: keys of a run's recipe (its seed and its model sections): a pool run that differs in one of them is another
#: run, not a near miss (a new seed or a new recipe is trained as planned, without a note)
RECIPE_KEYS = ("seed", "model", "gan", "flow", "recognizer")
#: keys inside those sections that change the speed of a run, not its result: a difference in them is a near miss
SPEED_KEYS = ("flow.batch_size",)


def reuse_near_miss(config: object, runs: Sequence[tuple[Path, dict]], most: int = 3) -> Optional[str]:
    """Why no run of ``runs`` (:func:`reusable_runs`) can stand for ``config``, when one comes close: the run with the
    same recipe (seed and model sections, :data:`RECIPE_KEYS`, but for :data:`SPEED_KEYS`) that differs in the
    fewest other keys, if at most ``most``, as ``"<run> differs in threads (2 here, 0 there)"``; else None. It tells
    the user of ``--reuse`` which setting (a ``threads=2`` or ``flow.batch_size`` override, another ``device`` or
    ``data.root``) kept a run from being copied, instead of a silent retraining; a run of another seed or recipe is
    no near miss."""
    from icegan.config import ABSENT, config_differences, to_dict
    want = _comparable(to_dict(config))
    best = None
    for path, cfg in runs:
        diff = config_differences(want, cfg)
        if any(k.split(".")[0] in RECIPE_KEYS and k not in SPEED_KEYS for k, _, _ in diff):
            continue
        if diff and (best is None or len(diff) < len(best[1])):
            best = (path, diff)
    if best is None or len(best[1]) > most:
        return None

    def shown(v):
        return "absent" if v is ABSENT else repr(v)
    parts = ", ".join(f"{k} ({shown(a)} here, {shown(b)} there)" for k, a, b in best[1])
    return f"{best[0]} differs in {parts}"


def copy_finished_run(src: Path, dst: Path, config: object) -> None:
    """Copy the finished run ``src`` into the new folder ``dst`` for ``config`` (the same run but for its name).

    Every file and folder is copied (symbolic links followed), except the writer lock
    (:data:`icegan.protocol.LOCK_FILE`) and a ``folds`` folder (the main job's per-fold
    checkpoints and sample grids, large and only read), which is linked. ``config.yaml`` is written for ``config``
    (its own name) and ``reused_from.txt`` names ``src``. Nothing in ``src`` is changed, now or later: before the main
    job trains a fold into the copy (the copy extended to more folds), :func:`own_fold_folder` replaces the link by a
    folder of the copy's own.

    Raises:
        FileExistsError: ``dst`` exists.
    """
    import yaml

    from icegan.config import to_dict
    from icegan.protocol import LOCK_FILE
    if dst.exists():
        raise FileExistsError(f"{dst} exists: a run is only copied into a new folder")
    # copied into a temporary folder, renamed when complete: a kill during the copy never leaves a half-copied run
    # (the source's config.yaml under this run's name) that the rerun would refuse as another experiment
    tmp = dst.with_name(dst.name + ".copying")
    if tmp.exists():                         # a copy cut short by an earlier kill
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for item in sorted(src.iterdir()):
        target = tmp / item.name
        if item.name == LOCK_FILE:                 # the source run's writer lock (its pid), not part of the results
            continue
        if item.is_dir() and item.name == "folds":
            target.symlink_to(item.resolve(), target_is_directory=True)
        elif item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    (tmp / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
    (tmp / REUSED_FROM).write_text(f"{src}\n", encoding="utf-8")
    tmp.rename(dst)


FOLDS_COPYING = "folds.copying"
"""The folder :func:`own_fold_folder` copies a linked ``folds`` folder into, renamed to ``folds`` when complete."""


def own_fold_folder(run_dir: str | Path) -> bool:
    """Give the run folder ``run_dir`` a ``folds`` folder of its own where it holds a link (a run copied by
    :func:`copy_finished_run`), before the main job writes a fold's files (GAN checkpoint, history, sample grids)
    there: the linked folder's files are copied (links followed) into ``folds.copying``, the link is removed and the
    copy renamed ``folds``, so nothing is ever written through the link into the source run. A kill between the two
    steps is mended by the next call (a complete ``folds.copying`` beside no ``folds`` is renamed; one beside the
    link is copied again). Disk: the finished folds' files once more (their GAN checkpoints without optimiser states,
    about 13 MB a fold at the shipped widths); a copy that is only read (no fold trained) keeps its link.

    Returns:
        True when a link was replaced (or a cut-short replacement completed), False when there was nothing to do
        (``folds`` a folder of its own, or absent).

    Raises:
        FileNotFoundError: ``folds`` is a link whose target no longer exists (the source run was deleted or moved):
            the message names the link, its target, the source run in ``reused_from.txt`` and what to do.
        OSError: the copy cannot be written (a full disk: the link is kept, the run unchanged).
    """
    run_dir = Path(run_dir)
    link, tmp = run_dir / "folds", run_dir / FOLDS_COPYING
    if not link.is_symlink():
        if tmp.is_dir() and not link.exists():      # killed after the link was removed: the copy is complete
            tmp.rename(link)
            return True
        return False
    if not link.is_dir():                           # a dangling link
        try:
            source = (run_dir / REUSED_FROM).read_text(encoding="utf-8").strip() or "?"
        except OSError:
            source = "?"
        raise FileNotFoundError(
            f"{link} links to {os.readlink(link)}, which no longer exists: this run was copied by icegan suite "
            f"--reuse from {source} (named in {run_dir / REUSED_FROM}) and shares that run's per-fold folder, so it "
            f"cannot train more folds now; restore that run to extend this one, or delete {run_dir} to train it "
            "afresh")
    if tmp.exists():                                # a copy cut short by an earlier kill
        shutil.rmtree(tmp)
    shutil.copytree(link, tmp)                      # links followed: files of the copy's own
    link.unlink()
    tmp.rename(link)
    return True


def copy_inner_predictions(src: Path, dst: Path, config: object, inner_dir: Path, feature_set) -> list[Path]:
    """Copy the nested-selection inner-fold predictions the source suite kept for run ``src`` (its ``inner/`` folder,
    :func:`icegan.selection.inner_predictions`) to ``inner_dir`` under the name of the copied run ``dst``, so that a
    selection over the copy does not train them again. Only files of ``config``'s recipe (all settings but the name)
    on ``feature_set``'s maps are copied (:func:`icegan.selection.inner_cache_digest`); an existing file is never
    overwritten. Returns the files written.
    """
    from icegan.selection import inner_cache_digests
    digest, legacy = inner_cache_digests(config, feature_set)
    written = []
    # a cache named before the digest left workers out (legacy) is copied under today's name
    for old in dict.fromkeys([digest, legacy]):
        for f in sorted((src.parent / "inner").glob(f"{glob.escape(src.name)}_k*_{old}.csv")):
            target = inner_dir / (dst.name + f.name[len(src.name):-len(f"{old}.csv")] + f"{digest}.csv")
            if not target.exists():
                inner_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
                written.append(target)
    return written


def _entries(suite: SuiteConfig, plan: Sequence[PlannedRun], finished: set[Path]) -> list:
    from icegan.report import TableEntry

    entries = []
    for lab in suite.labels:
        runs = [p.out for p in plan if p.label == lab and p.out in finished]
        if runs:
            entries.append(TableEntry(lab, runs))
    return entries


def _is_oracle(run: Path) -> bool:
    """Whether the finished run in ``run`` picked its epochs on the test subjects (metrics.json ``oracle_epoch``)."""
    try:
        return bool(json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("oracle_epoch", False))
    except (OSError, ValueError, AttributeError):
        return False


def _file_seeds(suite_path: str | Path) -> Optional[list[int]]:
    """The seeds the suite file ``suite_path`` lists (:func:`load_suite`, before ``--seeds``); None where it cannot be
    read or loaded (OSError, ValueError)."""
    try:
        return list(load_suite(suite_path).seeds)
    except (OSError, ValueError):
        return None


def per_seed_table(suite: SuiteConfig, plan: Sequence[PlannedRun], finished: set[Path]) -> str:
    """Markdown table of every finished run: one row per entry, one column per seed, cells ``UF1 / UAR`` of the
    whole protocol (``metrics.json`` ``overall``), ``–`` where that seed has not finished. A run that is not seeded
    (``seeded: false``, e.g. the deterministic logistic regression) fills one cell, marked "(one run)"; an ensemble
    over the seeds fills the last seed's cell, marked "(one model of all seeds)". A run that picked its epochs on the
    test subjects (``oracle_epoch``) is marked "[ORACLE]", one whose flow network trained on held-out subjects' real
    motion (``real_motion_seen``) "[NOT leak-free]" (both: "[ORACLE; NOT leak-free]",
    :func:`icegan.report.selection_word`). A run cut to its first k of n folds by ``max_folds`` is tagged
    "[PARTIAL: k of n folds]", as in the results table (:func:`icegan.protocol.read_partial_tag`). A null run
    (``data.permute_labels`` >= 0, :func:`icegan.report.is_null_run`) is tagged "[NULL RUN]", as in the results
    table, and a line under the table says what that means (:data:`icegan.report.NULL_RUN_LEGEND`).

    Raises:
        ValueError: a finished run without a readable ``metrics.json`` (names the folder), or whose overall UF1 /
            UAR is missing or no number in [0, 1] (NaN, 1.5: :func:`icegan.report.check_metric`, as ``icegan table``).
    """
    from icegan.protocol import read_partial_tag
    from icegan.report import (NULL_RUN_LEGEND, NULL_RUN_TAG, _parsed_json, check_metric, is_null_run,
                               markdown_cell, selection_word)
    seeds = sorted({p.seed for p in plan if p.out in finished})
    head = "| entry | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    rows = [head, "|---|" + "---|" * len(seeds)]
    nulls = False                   # a null run among them: the tag explained under the table
    for lab in suite.labels:
        mine = [p for p in plan if p.label == lab and p.out in finished]
        if not mine:
            continue
        one = len(suite.seeds) > 1 and sum(p.label == lab for p in plan) == 1     # planned once: not seeded
        mark = " (one model of all seeds)" if any(p.over_seeds for p in mine) else " (one run)" if one else ""
        cells = {}
        for p in mine:
            try:
                blob = json.loads((p.out / "metrics.json").read_text(encoding="utf-8"))
                m = blob["overall"]
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"{p.out}: no readable metrics.json ({exc})") from None
            for metric in ("UF1", "UAR"):       # checked as icegan table checks them (icegan.report._load)
                check_metric(p.out / "metrics.json", "overall", m, metric)
            # the file read once, not twice
            word = selection_word(bool(blob.get("oracle_epoch", False)), bool(blob.get("real_motion_seen")), "ORACLE")
            null = is_null_run(p.out)
            nulls |= null
            cells[p.seed] = (f"{m['UF1']:.4f} / {m['UAR']:.4f}" + mark + read_partial_tag(p.out, read=_parsed_json)
                             + ("" if word == "honest" else f" [{word}]") + (NULL_RUN_TAG if null else ""))
        rows.append(f"| {markdown_cell(lab)} | " + " | ".join(cells.get(s, "–") for s in seeds) + " |")
    return "\n".join(rows) + (f"\n\n{NULL_RUN_LEGEND}" if nulls else "")


def write_results(suite: SuiteConfig, plan: Sequence[PlannedRun], out: Path, finished: set[Path],
                  suite_path: str | Path) -> Optional[Path]:
    """Write ``results.md`` (table, every run by seed, bootstrap comparison, commands), ``results.tex`` (the table as a
    LaTeX table float) and ``compare.png`` for the finished folders (no compare.png when no scope has two subjects
    to resample, e.g. ``max_folds=1``: one left by an earlier run of ``out`` is removed).

    The comparison is drawn within each dataset where the suite says ``stratify: true``, except in a scope whose
    subjects are each the only one of their dataset (:func:`icegan.significance.check_stratify`: every interval would
    have width zero): that scope is drawn from one pool of subjects, under a line saying why.

    Returns the path of results.md, or None when nothing has finished yet.
    """
    from icegan.report import markdown_cell, motion_seen, results_table
    from icegan.significance import (bootstrap_compare, check_stratify, comparison_scopes, comparison_table,
                                     forest_plot, load_run_set, scope_title, shown_scopes)

    entries = _entries(suite, plan, finished)
    if not entries:
        return None
    labels = [e.label for e in entries]
    want = suite.baseline or suite.runs[0].label
    base = labels.index(want) if want in labels else 0
    seeds_done = sorted({p.seed for p in plan if p.out in finished})
    file_seeds = _file_seeds(suite_path)       # the seeds the file lists, which --seeds replaces
    file_seeds = list(suite.seeds) if file_seeds is None else file_seeds
    done = [p.out for p in plan if p.out in finished]
    oracle, leaky = any(_is_oracle(d) for d in done), any(motion_seen(d) for d in done)
    marks = (("Runs marked ORACLE picked each fold's epoch on its test subject (the published practice, NOT an "
              "honest estimate); " if oracle else "")
             + (f"{'runs' if oracle else 'Runs'} marked NOT leak-free made their features with a flow network "
                "trained on real frames of held-out subjects; " if leaky else ""))
    given = ("" if file_seeds == list(suite.seeds) else
             f", given by --seeds; the file lists {', '.join(map(str, file_seeds))}")
    lines = [f"# {markdown_cell(suite.name)}", "",
             f"Suite `{suite_path}`: {len(seeds_done)} of its {len(suite.seeds)} seed(s) finished (seeds "
             f"{', '.join(map(str, seeds_done))}; the suite's: {', '.join(map(str, suite.seeds))}{given}; "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}). "
             + (marks + "every other run is honest (final epoch / final fit); " if marks else
                "Every run is honest (final epoch / final fit); ")
             + "ensembles average the class probabilities of runs of the same seed"
             + (" (those marked 'one model of all seeds' average the runs of every seed)"
                if any(p.over_seeds for p in plan) else "")
             + ", members and weights fixed in the suite file.", "", "## Results (seeds as mean ± sample std)", "",
             results_table(entries), "",
             "## Every run (UF1 / UAR of the whole protocol, by seed)", "", per_seed_table(suite, plan, finished), ""]
    sets = [load_run_set(e.label, e.runs) for e in entries]
    scopes = comparison_scopes(sets, suite.per_dataset)        # one table per dataset only with several, as compare
    plotted = []
    last, paired = shown_scopes(scopes)                         # the legend counts every table's Δs
    for k, (scope, scoped) in enumerate(scopes):
        title = scope_title(scope, scoped)
        head = "Subject-bootstrap intervals" if k == 0 else f"Subject-bootstrap intervals, {title}"
        if len(scoped[0].subjects) < 2:         # a short run (max_folds=1): nothing to resample
            lines += [f"## {head}", "", "None: a subject bootstrap needs at least two subjects.", ""]
            continue
        stratify, why = suite.stratify, []
        if stratify:        # subjects each alone in their dataset: not stratified, and the page says why (as compare)
            try:
                check_stratify(scoped[base], "stratify")
            except ValueError as exc:
                stratify, why = False, [f"Not stratified: {exc}. These intervals draw from one pool of subjects.", ""]
        rows = bootstrap_compare(scoped, baseline=base, resamples=suite.resamples, stratify=stratify)
        plotted.append((title, rows))
        lines += [f"## {head}, paired differences to {markdown_cell(labels[base])}", "", *why,
                  comparison_table(rows, baseline=base, resamples=suite.resamples, legend=k == last,
                                   stratified=stratify, paired_intervals=paired)]
    if plotted:
        forest_plot(plotted, out / "compare.png", baseline=base)
        lines += ["![UF1 intervals](compare.png)", ""]
    else:                   # not one bootstrap (runs of one subject): no plot of an earlier run's beside this page
        (out / "compare.png").unlink(missing_ok=True)
    times = _read_times(out)
    lines += ["## Commands (what the suite ran, one folder each; # wall seconds of the call that finished it)", "",
              "```bash"]
    def note(p: PlannedRun) -> str:
        if (p.out / REUSED_FROM).is_file():
            return f"   # reused: copied from {(p.out / REUSED_FROM).read_text(encoding='utf-8').strip()}"
        return f"   # {times[p.out.name]:.0f} s" if p.out.name in times else ""
    lines += [p.command + note(p) for p in plan if p.out in finished] + ["```", ""]
    path = out / "results.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "results.tex").write_text(results_table(entries, "latex"), encoding="utf-8")     # the same table for a paper
    return path


def _read_times(out: Path) -> dict:
    """The wall times in ``out/suite_times.json``; one that cannot be read (cut short by a kill while it was written)
    is replaced by an empty one with a warning naming it: the times are only shown on the results page."""
    f = out / SUITE_MARK
    if not f.is_file():
        return {}
    try:
        times = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        times = exc
    if not isinstance(times, dict):
        print(f"warning: {f} cannot be read ({times}); the wall times of the runs finished before are not shown; "
              "the file is started again, empty", file=sys.stderr)
        _write_times(out, {})
        return {}
    return times


def _write_times(out: Path, times: dict) -> None:
    """``out/suite_times.json``, through a temporary file (:func:`flownet.io.write_whole`: a kill while writing keeps
    the old file whole)."""
    from flownet.io import write_text_whole
    write_text_whole(out / SUITE_MARK, json.dumps(times, indent=1))


def run_suite(suite_path: str | Path, out: Optional[str | Path] = None, overrides: Sequence[str] = (),
              seeds: Optional[Sequence[int]] = None, progress: bool = True, dry_run: bool = False,
              log=None, reuse: Sequence[str | Path] = ()) -> list[PlannedRun]:
    """Run (or resume) the suite in ``suite_path`` into ``out`` and write its results page.

    Args:
        suite_path: the suite YAML.
        out: output folder: one subfolder per run and seed (``<slug>_s<seed>``), ``results.md``, ``compare.png``
            (None: ``runs/<suite name>``), and ``flow_features/``: the real flow maps of the train.py runs, computed
            once for the runs of the same flow settings and clips (:func:`icegan.pipeline.run_main`'s
            ``feature_cache``).
        overrides: ``key=value`` for every member run (see :func:`plan_suite`).
        seeds: replace the suite's seeds.
        progress: tqdm bars of the member runs.
        dry_run: only print the equivalent commands (nothing runs, nothing is written); a member that would be
            copied from ``reuse`` says so after its command.
        log: where progress lines go.
        reuse: folders of finished runs (earlier suites' output folders, or run folders): a member run whose folder
            does not exist yet and that one of them holds with the same config but its name is copied from it
            (:func:`copy_finished_run`) instead of trained.

    Returns:
        The plan (every folder, in order).

    Raises:
        FileNotFoundError, ConfigError: as :func:`load_suite` and :func:`plan_suite`, before anything runs; a
            ``reuse`` folder that does not exist.
        ValueError, OSError: ``out`` is a file or below one (also with ``dry_run``); a member's data fails the
            checks of ``icegan loso``
            (:func:`icegan.commands.loso.check_run`: folds, custom network, coding sheets, datasets), named with
            the member's label and seed, before any member trains; a nested selection's ``selection.inner_folds``
            above an outer fold's training subjects (:func:`icegan.selection.check_inner_folds`, named with the
            selection, seed and recipe), before any member trains; ``out`` is the folder of one run (it holds a
            :data:`icegan.paths.RUN_HEADERS` file).
        icegan.protocol.LosoStateError: a member folder holds a run of another config; a run copied from ``reuse``
            whose LOSO header (folds, clips) differs from this suite's data (the copy is removed).
        icegan.ensemble.EnsembleError: members an ensemble cannot average (e.g. scores that are not probabilities).
    """
    log = sys.stderr if log is None else log      # the stream of the call, not of the import
    from icegan.commands.loso import LosoConfig, check_run, load_feature_set, run
    from icegan.ensemble import ensemble_runs
    from icegan.pipeline import run_main
    from icegan.protocol import LosoStateError, read_partial_tag
    from icegan.selection import check_inner_folds, select_nested

    suite = load_suite(suite_path, seeds)
    out = Path("runs") / suite.name if out is None else Path(out)
    # a file, or below one: refused before the members' data checks, and in the dry run too (it must not pass what
    # the run refuses)
    example = "" if out == Path("runs") / suite.name else f" (e.g. --out {Path('runs') / suite.name})"
    check_output_folder(out, "the suite's folder (a folder per run and the results page)",
                        f"give the path of a folder{example}")
    header = run_folder_header(out)
    if header is not None:
        raise ValueError(f"--out {out} is the folder of one run (it holds {header.name}), not a suite's: a suite "
                         f"writes a folder per run and its results page there; give a new folder, e.g. "
                         f"{out.parent / suite.name}")
    plan = plan_suite(suite, suite_path, out, overrides)
    pool = reusable_runs(reuse) if reuse else []
    sources = {p.out: find_reusable_run(p.config, pool) for p in plan
               if p.config is not None and pool and not p.out.exists()}
    # a run --reuse nearly matched: which keys kept it from being copied (often an override such as threads=2)
    misses = {out: reuse_near_miss(p.config, pool) for p in plan for out in [p.out]
              if out in sources and sources[out] is None}
    if dry_run:
        for p in plan:
            src, miss = sources.get(p.out), misses.get(p.out)
            print(p.command + (f"   # reuse: copy {src}" if src else f"   # not reused: {miss}" if miss else ""),
                  file=log)
        return plan
    for p in plan:
        if misses.get(p.out):
            print(f"note: --reuse: '{p.label}' seed {p.seed} is trained, not copied: {misses[p.out]}", file=log)
    feature_sets: dict[str, object] = {}
    checked: dict[Path, tuple] = {}     # member folder -> (its feature set, its action units)
    said: set[str] = set()              # the members' data warnings, each given once
    for p in plan:          # every member's data checked before the first one trains (or a folder is made)
        if isinstance(p.config, LosoConfig):
            try:
                fs = load_feature_set(p.config.data, cache=feature_sets)   # one read of the maps per data section
                checked[p.out] = fs, check_run(p.config, fs, said)
            except (ValueError, OSError) as exc:
                raise type(exc)(f"suite run '{p.label}' (seed {p.seed}): {exc}") from None
        elif p.selection:       # every recipe's outer folds split into the inner folds: subjects only, no model
            recipes = {r.run_dir: r for c in p.selection for r in ([c] if c.config is not None else c.members)}
            try:
                for r in recipes.values():
                    check_inner_folds(r.config, load_feature_set(r.config.data, cache=feature_sets),
                                      suite.selection.inner_folds)
            except (ValueError, OSError) as exc:
                raise type(exc)(f"suite selection '{p.label}' (seed {p.seed}), recipe '{r.label}': {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    if not (out / SUITE_MARK).is_file():      # the folder is a suite's from now on: no run may write into it
        _write_times(out, {})
    finished: set[Path] = set()
    for k, p in enumerate(plan):
        t0 = time.time()
        which = f"seeds {', '.join(map(str, suite.seeds))}" if p.over_seeds else f"seed {p.seed}"
        print(f"[{k + 1}/{len(plan)}] {p.label}, {which} -> {p.out}", file=log, flush=True)
        if sources.get(p.out) is not None:
            copy_finished_run(sources[p.out], p.out, p.config)
            print(f"    reused: copied from {sources[p.out]}", file=log, flush=True)
            if isinstance(p.config, LosoConfig) and suite.selection.inner_folds:
                for f in copy_inner_predictions(sources[p.out], p.out, p.config, out / "inner", checked[p.out][0]):
                    print(f"    reused: inner-fold predictions {f.name}", file=log, flush=True)
        was_finished = (p.out / "metrics.json").is_file()

        def outgrown(p: PlannedRun = p) -> None:      # seeds added since it was made: derived data, made again
            nonlocal was_finished
            shutil.rmtree(p.out)
            was_finished = False
            print(f"    note: {p.out} held the ensemble of the runs of fewer seeds (seeds were added since): it is "
                  "made again of them all", file=log, flush=True)
        if p.config is not None:
            try:
                if isinstance(p.config, LosoConfig):
                    fs, au = checked[p.out]
                    m = run(p.config, p.out, progress=progress, feature_set=fs, action_units=au)
                else:
                    m = run_main(p.config, p.out, progress=progress, feature_cache=out / "flow_features")
            except LosoStateError as exc:
                if sources.get(p.out) is None:
                    raise
                shutil.rmtree(p.out)             # the copy, never the source
                raise LosoStateError(f"suite run '{p.label}' (seed {p.seed}): the run copied from "
                                     f"{sources[p.out]} is not this suite's run on this data ({exc}); the copy was "
                                     "removed: rerun without that --reuse folder to train it") from None
        elif p.selection:
            sel = suite.selection
            m = select_nested(p.selection, feature_sets, p.out, k=sel.inner_folds, criterion=sel.criterion,
                              scope=sel.scope, cache_dir=out / "inner", name=p.out.name, progress=progress, log=log)
        else:
            m = ensemble_runs(p.members, p.out, weights=p.weights, name=p.out.name,
                              on_fewer=outgrown if p.over_seeds else None, own_members=True)
        finished.add(p.out)
        if not was_finished:                     # the wall time of the call that finished this folder
            times = _read_times(out)
            times[p.out.name] = round(time.time() - t0, 1)
            _write_times(out, times)
        tag = "  [ORACLE EPOCH: selected on the test subjects]" if m.get("oracle_epoch") else ""
        tag += "  [NOT leak-free: its flow trained on held-out subjects' motion]" if m.get("real_motion_seen") else ""
        tag += read_partial_tag(p.out, "max_folds")      # a smoke run's line says it is not a LOSO result
        print(f"    UF1 {m['overall']['UF1']:.4f}  UAR {m['overall']['UAR']:.4f}{tag}  ({time.time() - t0:.0f} s)",
              file=log, flush=True)
        last_of_seed = k + 1 == len(plan) or plan[k + 1].seed != p.seed
        if last_of_seed:
            with reading_configs():     # the table and the intervals check each run's config: parsed once
                path = write_results(suite, plan, out, finished, suite_path)
            print(f"    wrote {path}", file=log, flush=True)
    return plan
