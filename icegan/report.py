"""Results tables across finished LOSO runs (``icegan table``): one row per method, seeds pooled as mean ± std.

Each entry is a label and one or more run folders holding a ``metrics.json`` (written by ``icegan loso``,
``train.py`` or ``icegan ensemble``). A row shows UF1 and UAR overall and per dataset; with several runs (seeds)
the cell is ``mean ± std`` (sample standard deviation over the runs, n in its own column), never the best run; the
last column gives the folds and clips the row is scored on. The runs of one entry must be seeds of one recipe
(:func:`check_one_recipe`): an entry that mixes recipes is refused, not averaged.
"""
from __future__ import annotations

import copy
import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from flownet.paths import expand_home
from icegan.paths import run_folder_header
from icegan.protocol import DATASET_TITLES, _json_file, partial_tag, read_partial_tag

__all__ = ["read_run_json", "TableEntry", "parse_entry", "results_table", "latex_escape", "RUN_ONLY_KEYS", "run_recipe",
           "check_one_recipe", "same_predictions_notes", "parse_entries", "is_null_run", "permuted_labels", "NULL_RUN_TAG",
           "NULL_RUN_LEGEND", "refuse_partial_or_null", "run_tags"]


@dataclass
class TableEntry:
    """One row: ``label`` and the run folders whose metrics it pools."""
    label: str
    runs: list[Path]


def _resolve_dirs(spec: str, text: str, command: str = "table") -> list[Path]:
    """The run folders of the ``DIR[,DIR...]`` part ``spec`` of the entry ``text``: each DIR a folder (or anything
    that exists: its checks say what it lacks) or a glob pattern of folders, ``~`` expanded.

    Raises:
        ValueError: a DIR that matches nothing, or a ``~user`` of no user (names the ``command``'s entry, ``table
            entry '...'``, and the DIR).
    """
    runs: list[Path] = []
    for pat in spec.split(","):
        pat = expand_home(pat, f"{command} entry '{text}'")
        hits = (sorted(h for h in glob.glob(pat) if Path(h).is_dir()) if glob.has_magic(pat)
                else ([pat] if Path(pat).exists() else []))
        if not hits:
            raise ValueError(f"{command} entry '{text}': '{pat}' matches no run folder")
        runs += [Path(h) for h in hits]
    return runs


def _split_entry(text: str, command: str = "table") -> tuple[Optional[str], str, list[Path]]:
    """(label, or None for none given; the DIR part; its run folders) of the entry ``text`` (:func:`parse_entry`'s
    rule: the whole text as DIRs where it resolves, else ``LABEL=DIRS`` at the first ``=`` whose DIRS resolve).

    Raises:
        ValueError: as :func:`parse_entry`.
    """
    try:                                        # also a folder whose name holds '=' (eqdir/logreg_C=1), given bare
        return None, text, _resolve_dirs(text, text, command)
    except ValueError:
        if "=" not in text:
            raise
    splits = [(label, spec) for label, spec in ((text[:i], text[i + 1:]) for i, ch in enumerate(text) if ch == "=")
              if label.strip() and spec.strip()]
    errors = []
    for label, spec in splits:                  # 'LR C=1=lr': the first '=' whose right side is run folders
        try:
            return label, spec, _resolve_dirs(spec, text, command)
        except ValueError as exc:
            errors.append(exc)
    if not splits:                              # '=lr', 'lr=': no label or no folder on either side
        raise ValueError(f"{command} entry '{text}': expected DIR or LABEL=DIR[,DIR...]")
    if len(splits) == 1:                        # one way to read it: what of its DIRs matches nothing
        raise errors[0]
    sides = ", ".join(f"'{spec}'" for _, spec in splits)
    raise ValueError(f"{command} entry '{text}': no split matches: neither the whole entry nor the right side of any "
                     f"'=' ({sides}) is existing folders or glob patterns that match folders; write LABEL=DIR with "
                     "DIR an existing run folder (quote the entry in the shell)")


def _folder_name(text: str) -> str:
    """The name of the folder ``text`` as a row's label: its last part, or for ``.``, ``..``, ``./`` (no name of
    their own) the name of the folder they resolve to."""
    name = Path(text.rstrip("/") or "/").name
    return Path(text).resolve().name if name in ("", ".", "..") else name


def parse_entry(text: str, command: str = "table") -> TableEntry:
    """``DIR``, ``LABEL=DIR`` or ``LABEL=DIR,DIR,...``; each DIR may be a glob pattern (``runs/G_s*``, folders only).
    A leading ``~`` / ``~user/`` of each DIR is that home folder (:func:`flownet.paths.expand_home`: a shell leaves
    one alone after ``=`` or ``,`` and in quotes). Without a label the row is named after the folder (``.`` and
    ``..`` after the folder they are), or after the pattern (``st_s*``); where the pattern's name is a bare wildcard
    (``runs/suite/*``) or several folders are listed, after what the matched folders' names share once a seed suffix
    is dropped (``ststnet_s0``, ``ststnet_s1`` → ``ststnet``), else after the entry as written.

    A ``=`` in the text: where the whole text is existing folders or patterns that match folders
    (``eqdir/logreg_C=1``), it is DIRs without a label; else it is ``LABEL=DIRS`` split at the first ``=`` whose
    right side is existing folders (``LR C=1=lr``: label ``LR C=1``, folder ``lr``). The rule is stated in
    ``icegan table --help`` and ``icegan compare --help`` (:data:`icegan.commands.table.ENTRIES_EPILOG`).

    Raises:
        ValueError: names the entry as the ``command`` that reads it (``table entry '...'``, ``compare entry
            '...'``): a DIR that matches no folder (an entry of one ``=``, or none); for an entry of
            several ``=`` none of whose splits resolves, "no split matches" and the right side of each; an empty
            label or list; or a ``~user`` of no user of this machine.
    """
    if not text.strip():
        raise ValueError(f"{command} entry '{text}': expected DIR or LABEL=DIR[,DIR...]")
    label, spec, runs = _split_entry(text, command)
    if label is None:
        label = _folder_name(text)
        if not label.strip():
            raise ValueError(f"{command} entry '{text}': expected DIR or LABEL=DIR[,DIR...]")
        if "," in text or not re.search(r"[^\W_]", re.sub(r"\[[^\]]*\]|[*?]", "", label)):
            label = _shared_name(runs) or text
    return TableEntry(label.strip(), runs)


def parse_entries(texts: Sequence[str], command: str = "table") -> list[TableEntry]:
    """:func:`parse_entry` of each of ``texts`` (the entries of ``icegan table`` / ``icegan compare``: ``command``,
    which its messages name), in order.

    Raises:
        ValueError: as :func:`parse_entry`; or two entries of one label (``runs/lr/s0`` and ``runs/rf/s0``, both
            ``s0``: a table of two rows of one name, and ``--baseline s0`` would take the first), naming both entries
            and how to name them apart (``LABEL=DIR``).
    """
    entries = [parse_entry(t, command) for t in texts]
    for j, e in enumerate(entries):
        i = next(i for i, f in enumerate(entries) if f.label == e.label)
        if i != j:
            spec = _split_entry(texts[i])[1]    # the DIR part: a label given is replaced
            raise ValueError(f"entries '{texts[i]}' and '{texts[j]}' are both labelled '{e.label}'; give each its own "
                             f"label as LABEL=DIR (e.g. '{_example_label(spec, e.label)}={spec}')")
    return entries


def _example_label(spec: str, label: str) -> str:
    """A label to suggest for the entry of DIR part ``spec`` labelled ``label``: its folder's parent's name before
    ``label`` (``runs/lr/s0`` → ``lr s0``), else ``label 1``."""
    parent = Path(spec.rstrip("/")).parent.name
    return f"{parent} {label}" if parent and parent not in (".", "..") else f"{label} 1"


def _shared_name(runs: Sequence[Path]) -> str:
    """What the folder names of ``runs`` share once a seed suffix (``_s3``, ``-seed3``, ``_3``) is dropped: the common
    name, or their common prefix of whole words (``ststnet_shifts``, ``ststnet`` → ``ststnet``); empty when they share
    nothing readable."""
    if len({Path(r).resolve() for r in runs}) == 1:
        return Path(runs[0]).resolve().name
    names = [re.sub(r"[_-](?:s|seed)?[0-9]+$", "", Path(r).resolve().name) for r in runs]
    if len(set(names)) == 1:
        return names[0]
    prefix = os.path.commonprefix(names)
    if not all(re.match(r"$|[_\-. ]", n[len(prefix):]) for n in names):     # ends inside a word: back to a separator
        prefix = re.sub(r"[^_\-. ]*$", "", prefix)
    prefix = prefix.rstrip("_-. ")
    return prefix if re.search(r"[^\W_]", prefix) else ""


#: config keys that say where, how fast or with which seed a run was made, not what it computes; left out (at any
#: depth, e.g. the main job's ``data.prepare.workers``) when the runs of one entry are compared
#: (:func:`check_one_recipe`), as is the run's top-level ``name``. ``model.seeds`` (ensemble members per fold) is
#: part of the recipe.
RUN_ONLY_KEYS = frozenset({"seed", "out_dir", "device", "threads", "workers", "progress", "cache_root"})

#: the keys of a run's ``data`` section that say where its data lie, not which: left out of its recipe when its
#: run.json records the digest of the data it read (``provenance.data``), which takes their place under
#: :data:`DATA_DIGEST_KEY` (two seeds on the same data, one given ``data.root`` explicitly, are one recipe)
DATA_PLACE_KEYS = frozenset({"root", "table"})
DATA_DIGEST_KEY = "data digest (run.json provenance.data)"

#: how :func:`run_recipe` names the kinds of folders in messages
_KINDS = {"run": "an icegan loso / train.py run (config.yaml)", "ensemble": "an ensemble (ensemble.json)",
          "nested selection": "a nested selection (selection.json)", "merged": "a merged run (merged.json)"}


def _strip_run_only(d, drop: frozenset = RUN_ONLY_KEYS):
    """``d`` without the keys ``drop`` (:data:`RUN_ONLY_KEYS`), at any depth (mappings, and mappings in lists)."""
    if isinstance(d, dict):
        return {k: _strip_run_only(v, drop) for k, v in d.items() if k not in drop}
    if isinstance(d, list):
        return [_strip_run_only(x, drop) for x in d]
    return d


#: what a message says of a run's file that cannot be read or is cut short (also :mod:`icegan.ensemble`), then what
#: to do: :data:`RERUN` for a header or config (a resume would read it too), :data:`RESUME` for the files a run rewrites
DAMAGED = "it looks damaged or incomplete (was the run killed while writing it?)"
RERUN = "rerun that run into a fresh --out folder"
#: what a message about a file icegan would never write (an edited one) says first; the fix follows
EDITED = "icegan writes no such file (was it edited?); restore it or"
RESUME = ("run the command that wrote this folder again with the same --out (a LOSO run resumes, rerunning only folds "
          "it has no complete predictions for, and writes its results again)")


def read_run_json(f: Path, fix: str = RERUN, error: type[ValueError] = ValueError) -> dict:
    """A run folder's JSON file (``metrics.json``, ``run.json``, ``ensemble.json``, ...) as a dict; ``fix``: what the
    message about a damaged file says to do; ``error``: the ValueError class raised (e.g.
    :class:`icegan.ensemble.EnsembleError`).

    Read once in a :func:`reading_configs` block (:func:`_cached`: ``icegan table`` checks a run's metrics and its
    predictions' header), each call getting its own copy.

    Raises:
        ValueError (``error``): the file cannot be read, is not JSON (e.g. cut short) or not a JSON object; the message
            names the file, says it looks damaged or incomplete, and gives ``fix``.
    """
    try:
        d = copy.deepcopy(_parsed_json(f))
    except (OSError, ValueError) as exc:        # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise error(f"{f}: cannot be read as JSON ({exc}); {DAMAGED}: {fix}") from None
    if not isinstance(d, dict):
        raise error(f"{f}: not a JSON object (got a {type(d).__name__}); {DAMAGED}: {fix}")
    return d


def _member_dir(folder: Path, recorded: str) -> Optional[Path]:
    """A member / candidate folder named in ``folder``'s header: where it was recorded, else beside ``folder`` (a
    suite's output moved as a whole), else, for a path recorded relative (to the cwd of the command that wrote the
    header, as ``icegan ensemble`` did before it recorded absolute paths), below the nearest folder above ``folder``
    that holds it (read from another cwd)."""
    p = Path(recorded)
    above = [] if p.is_absolute() or not recorded else [a / p for a in Path(folder).resolve().parents]
    for cand in (p, folder.parent / p.name, *above):
        if cand.is_dir():
            return cand
    return None


def _listed(f: Path, header: dict, key: str, kind: type) -> list:
    """``header[key]`` (absent or null: empty), a list whose items are all ``kind`` (dict: run entries, str: folders).

    Raises:
        ValueError: not such a list (names the file ``f``, the key and the first bad item).
    """
    items = header.get(key) or []
    fix = f"{EDITED} {RERUN}"
    if not isinstance(items, list):
        raise ValueError(f"{f}: '{key}' is not a list ({items!r}); {fix}")
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            what = "a mapping" if kind is dict else "a folder name"
            raise ValueError(f"{f}: {key}[{i}] is not {what} ({item!r}); {fix}")
    return items


#: the config.yaml and run.json files parsed in the :func:`reading_configs` block in progress, by (resolved path,
#: modification time, size): None outside a block, so that nothing is kept between commands of a long process
_CONFIGS: Optional[dict] = None


class _ConfigReads:
    """The context manager of :func:`reading_configs`."""

    def __enter__(self) -> None:
        global _CONFIGS
        self.outer = _CONFIGS is not None          # a block inside another shares the outer one's files
        if not self.outer:
            _CONFIGS = {}

    def __exit__(self, *exc) -> None:
        global _CONFIGS
        if not self.outer:
            _CONFIGS = None


def reading_configs() -> _ConfigReads:
    """``with reading_configs():`` around one command's work (``icegan table``, ``icegan compare``): inside the block
    each run's ``config.yaml`` is read and parsed once (:func:`run_recipe`, :func:`check_one_recipe`), and so is its
    ``run.json`` (data digest, folds, partial tag: :func:`results_table`), each read anew when its modification time
    or size has changed; nothing is kept after the block. Not for threads."""
    return _ConfigReads()


def _cache_key(f: Path) -> Optional[tuple]:
    """The key of the file ``f`` in :data:`_CONFIGS` (resolved path, modification time, size); None outside a
    :func:`reading_configs` block or where ``f`` cannot be looked at (its read says why)."""
    if _CONFIGS is None:
        return None
    try:
        st = f.stat()
    except OSError:
        return None
    return f.resolve(), st.st_mtime_ns, st.st_size


def _cached(f: Path, parse: Callable[[Path], Any]):
    """``parse(f)``, kept in :data:`_CONFIGS` by :func:`_cache_key` inside a :func:`reading_configs` block and taken
    from there while ``f`` is unchanged; parsed anew outside a block or where ``f`` cannot be looked at (``parse``
    then says why). Raises what ``parse`` raises."""
    key = _cache_key(f)                            # None outside a block, or where f cannot be looked at
    if key is not None and key in _CONFIGS:
        return _CONFIGS[key]
    value = parse(f)
    if key is not None:
        _CONFIGS[key] = value
    return value


def _parsed_json(f: Path):
    """The JSON of the run header ``f`` (``run.json``, ``ensemble.json``, ...), as parsed, any JSON value (shared
    within a :func:`reading_configs` block: not to be changed).

    Raises:
        OSError, ValueError: ``f`` cannot be read or is not JSON (the callers say what that means).
    """
    return _cached(f, _json_file)


def _run_json(run: Path) -> Optional[dict]:
    """The ``run.json`` of the run folder ``run`` as a dict (:func:`_parsed_json`, not to be changed); None without a
    readable one or where it is no JSON object (its damage is said elsewhere)."""
    try:
        h = _parsed_json(run / "run.json")
    except (OSError, ValueError):
        return None
    return h if isinstance(h, dict) else None


def _parsed_config(f: Path):
    """The YAML of the run's config file ``f``, as parsed (shared within a :func:`reading_configs` block: not to be
    changed).

    Raises:
        ValueError: ``f`` cannot be read or is not YAML (names the file, says it looks damaged or incomplete).
    """
    import yaml

    def parse(f: Path):
        try:
            return yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"{f}: cannot be read ({exc}); {DAMAGED}: {RERUN}") from None
    return _cached(f, parse)


def _recipe(run: Path, chain: tuple[Path, ...] = (), drop: frozenset = RUN_ONLY_KEYS) -> tuple[Optional[dict], str]:
    """(:func:`run_recipe` of ``run``, why it is None: empty when it is not). ``chain``: the resolved folders whose
    headers led here (the ensemble, selection or merge that lists ``run``, and the ones that list it); a member that
    is already on it (a header that lists its own folder, or two that list each other) is named, not followed.
    ``drop``: the config keys left out at any depth (:data:`RUN_ONLY_KEYS`; without ``seed``: the recipe and its
    seeds, which :func:`check_one_recipe` compares to find one seed run twice)."""
    from icegan.config import without_neutral_keys
    run = Path(run)
    chain = chain + (run.resolve(),)
    if (run / "config.yaml").is_file():
        cfg = _parsed_config(run / "config.yaml")
        if not isinstance(cfg, dict):
            raise ValueError(f"{run / 'config.yaml'}: not a config (a YAML mapping)")
        cfg = {k: v for k, v in cfg.items() if k != "name"}
        rec = {"kind": "run", **_strip_run_only(without_neutral_keys(cfg), drop)}
        digest = _data_digest(run)
        if digest is not None and isinstance(rec.get("data"), dict):
            # the data it read are recorded: where they lay (an explicit or a default data.root) is not the recipe
            rec["data"] = {k: v for k, v in rec["data"].items() if k not in DATA_PLACE_KEYS}
            rec[DATA_DIGEST_KEY] = digest
        return rec, ""

    def part(recorded: str, listed_in: Path) -> tuple[Optional[dict], str]:
        d = _member_dir(run, str(recorded))
        if d is None:
            return None, f"its member {recorded} is not found"
        if d.resolve() in chain:
            what = "its own folder" if d.resolve() == chain[-1] else "a folder that lists this one"
            return None, (f"{listed_in} lists {recorded}, {what} (a cycle of members): edit {listed_in} to list the "
                          "member runs, not a folder on its own chain of members")
        rec, why = _recipe(d, chain, drop)
        return rec, (f"its member {d} records none ({why})" if rec is None else "")

    if (run / "ensemble.json").is_file():
        members = []
        f = run / "ensemble.json"
        fix = f"icegan ensemble writes no such file (was it edited?); restore it or {RERUN}"
        for i, m in enumerate(_listed(f, read_run_json(f), "members", dict)):
            if "weight" not in m:
                raise ValueError(f"{f}: members[{i}] has no weight; {fix}")
            w = m["weight"]
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise ValueError(f"{f}: members[{i}].weight is {w!r}, not a number; {fix}")
            rec, why = part(m.get("run", ""), f)
            if rec is None:
                return None, why
            members.append({"weight": round(float(w), 9), **rec})
        return {"kind": "ensemble", "members": members}, ""
    if (run / "selection.json").is_file():
        f = run / "selection.json"
        h = read_run_json(f)
        cands = []
        for c in _listed(f, h, "candidates", dict):
            rec, why = part(c.get("run", ""), f)
            if rec is None:
                return None, why
            cands.append({"label": c.get("label"), **rec})
        return {"kind": "nested selection", "inner_folds": h.get("inner_folds"), "criterion": h.get("criterion"),
                "scope": h.get("scope"), "candidates": cands}, ""
    if (run / "merged.json").is_file():
        f = run / "merged.json"
        h = read_run_json(f)
        parts = []
        for r in _listed(f, h, "merged_from", str):
            rec, why = part(r, f)
            if rec is None:
                return None, why
            parts.append(rec)
        return {"kind": "merged", "protocols": h.get("protocols"), "runs": parts}, ""
    return None, "no config.yaml, ensemble.json, selection.json or merged.json in it"


def _data_digest(run: Path) -> Optional[str]:
    """The digest of the data a run read (its run.json's ``provenance.data``); None where it records none or its
    run.json cannot be read."""
    h = _run_json(run)
    prov = h.get("provenance") if h is not None else None
    digest = prov.get("data") if isinstance(prov, dict) else None
    return str(digest) if isinstance(digest, str) and digest else None


def run_recipe(run: str | Path) -> Optional[dict]:
    """What a finished run folder records of its recipe, without what only names it, seeds it or says where and how
    fast it ran; None where it records none (a folder of metrics alone, or an ensemble whose member cannot be found).

    * ``icegan loso`` / train.py folder: its ``config.yaml`` without the top-level ``name``, without
      :data:`RUN_ONLY_KEYS` at any depth and without the neutral new keys (:func:`icegan.config.without_neutral_keys`,
      as a suite compares configs before it reuses a run), under ``kind: run``; where its ``run.json`` records the
      digest of the data read (``provenance.data``), that digest replaces ``data.root`` and ``data.table``
      (:data:`DATA_PLACE_KEYS`): runs on the same data are one recipe wherever the data were found, runs on other
      data (or one without a digest beside one with) are not;
    * ``icegan ensemble`` folder: ``kind: ensemble`` and, from ``ensemble.json``, each member's weight and recipe (a
      member is looked for where ensemble.json names it, then beside the ensemble's folder, then, for an old
      relative path, below the folders above it; :func:`check_one_recipe` takes the members in any order);
    * nested selection (``selection.json``): its inner folds, criterion and scope, and each candidate's label and
      recipe; a merged folder (``merged.json``, bench/merge_runs.py): the recipes of the runs merged.

    Raises:
        ValueError: a ``config.yaml`` or header that cannot be read (names the file).
    """
    return _recipe(Path(run))[0]


#: the tag of a null run's row or label (:func:`is_null_run`) in ``icegan table``, ``icegan compare`` (its tables,
#: CSV and forest plot) and a suite's page
NULL_RUN_TAG = " [NULL RUN]"
#: what :data:`NULL_RUN_TAG` means: the line under a Markdown table that shows one (and the LaTeX caption's sentence)
NULL_RUN_LEGEND = ("[NULL RUN]: a null run (data.permute_labels >= 0: its labels were permuted within each dataset "
                   "before training and scoring); an honest pipeline scores chance on it (UF1 about 1/K for K "
                   "classes), so it checks the pipeline and is no result of its recipe.")


def _permuted_seeds(recipe) -> list:
    """The ``data.permute_labels`` of every LOSO run in ``recipe`` (:func:`run_recipe`: a run, or an ensemble,
    selection or merge of runs, at any depth); -1 for a run that records none."""
    if isinstance(recipe, list):
        return [s for r in recipe for s in _permuted_seeds(r)]
    if not isinstance(recipe, dict):
        return []
    if recipe.get("kind") == "run":
        data = recipe.get("data")
        return [data.get("permute_labels", -1) if isinstance(data, dict) else -1]
    return [s for v in recipe.values() if isinstance(v, (dict, list)) for s in _permuted_seeds(v)]


def permuted_labels(run: str | Path) -> tuple[int, ...]:
    """The distinct ``data.permute_labels`` (sorted) of the LOSO runs that made the finished run folder ``run``: one
    for a run (``icegan loso``: -1 the real labels, also for a config without the key such as train.py's; a seed
    >= 0 a null run, labels permuted within each dataset), those of its members for an ensemble, nested selection or
    merge (bench/merge_runs.py), at any depth (read through :func:`run_recipe`). The one reading of it for
    :func:`is_null_run` (``icegan table``, suites, ``icegan ensemble``'s reports) and ``icegan compare``'s check of
    one ``data.permute_labels`` per comparison.

    Returns:
        e.g. ``(-1,)``, ``(0,)``, ``(-1, 0)`` (an ensemble of a null run and a real one); ``()`` where no recipe
        can be read (a missing or damaged ``config.yaml`` or header: the entry's own checks say why) or a value is
        not an int.
    """
    try:
        seeds = _permuted_seeds(run_recipe(run))
    except ValueError:
        return ()
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return ()
    return tuple(sorted(set(seeds)))


def is_null_run(run: str | Path) -> bool:
    """Whether the finished run folder ``run`` is a null run: ``icegan loso`` with ``data.permute_labels`` >= 0 (the
    labels permuted within each dataset, :func:`icegan.commands.loso.permute_labels`) in its ``config.yaml``, or an
    ensemble, nested selection or merge of which a run is one (:func:`permuted_labels`). False where no recipe can be
    read (the entry's own checks say why)."""
    return any(s >= 0 for s in permuted_labels(run))


def run_tags(runs: Sequence[str | Path], header: Optional[dict]) -> tuple[bool, str]:
    """``(null_run, tags)`` of a result made from the run folders ``runs`` (an ensemble's members, a nested
    selection's candidates) with the ``run.json`` header ``header``: whether one of them is a null run
    (:func:`is_null_run`), and the tags its titles carry after the name: :data:`NULL_RUN_TAG` for a null run, then
    :func:`icegan.protocol.partial_tag` of ``header`` ("" for a whole run on the real labels)."""
    null_run = any(is_null_run(r) for r in runs)
    return null_run, (NULL_RUN_TAG if null_run else "") + partial_tag(header)


def refuse_partial_or_null(run: str | Path, use: str) -> None:
    """Refuse the finished run folder ``run`` where it is no whole LOSO result on the real labels, for a merge or
    diagnostic that would count it as one: a run cut to its first folds by ``max_folds``
    (:func:`icegan.protocol.read_partial_tag`; older run.json files without ``folds_total``:
    :func:`_unrecorded_partial_tag`) or a null run (:func:`is_null_run`).
    A folder without a readable header or ``config.yaml`` passes (the caller's own checks say what it lacks).

    Args:
        run: the run folder.
        use: what the run is given to, for the message (``"merge_runs.py"``).

    Raises:
        ValueError: a partial run (names it, its folds, and the rerun without ``max_folds``) or a null run (names it
            and ``data.permute_labels``).
    """
    partial = read_partial_tag(run) or _unrecorded_partial_tag(Path(run))
    if partial:
        raise ValueError(f"{run} is a partial run{partial} (max_folds): its predictions hold those folds' clips only, "
                         f"no LOSO result; give {use} whole runs (rerun it with max_folds=0)")
    if is_null_run(run):
        raise ValueError(f"{run} is a null run (data.permute_labels >= 0 in its config.yaml: its labels were "
                         f"permuted, chance by design); give {use} runs on the real labels")


def _unrecorded_partial_tag(run: Path) -> str:
    """``" [PARTIAL: k folds, max_folds: m in its config.yaml]"`` for a run whose ``run.json`` lists k folds and has no
    ``folds_total`` (written before icegan recorded it) while its ``config.yaml`` has 0 < max_folds (or
    data.max_folds, :func:`icegan.protocol.max_folds_key`) m <= k: the run was cut to its first m folds (a max_folds
    of exactly the protocol's fold count, which cut nothing, is told partial too: the header cannot say otherwise).
    "" otherwise, and where either file cannot be read (the caller's own checks say what it lacks)."""
    from icegan.config import dotted_items
    from icegan.protocol import max_folds_key
    header = _run_json(run)
    folds = header.get("folds") if header is not None and "folds_total" not in header else None
    try:
        cfg = _parsed_config(run / "config.yaml") if isinstance(folds, list) else None
    except ValueError:
        return ""
    if not isinstance(cfg, dict):
        return ""
    key = max_folds_key(cfg)
    cut = dotted_items(cfg).get(key, 0)
    if isinstance(cut, bool) or not isinstance(cut, int) or not 0 < cut <= len(folds):
        return ""
    return f" [PARTIAL: {len(folds)} folds, {key}: {cut} in its config.yaml]"


def _differences(a: dict, b: dict, most: int = 3) -> str:
    """``key (a vs b)`` for the first ``most`` differing dotted keys of two recipes, then how many more."""
    if a.get("kind") != b.get("kind"):
        ka, kb = a.get("kind"), b.get("kind")
        return f"one is {_KINDS.get(ka, ka)}, the other {_KINDS.get(kb, kb)}"
    from icegan.config import config_differences
    keys = config_differences(a, b)

    def show(v) -> str:
        text = repr(v)
        return text if len(text) <= 40 else text[:37] + "..."
    shown = [f"{k} ({show(va)} vs {show(vb)})" for k, va, vb in keys[:most]]
    more = f", and {len(keys) - most} more key(s)" if len(keys) > most else ""
    return "they differ in " + ", ".join(shown) + more


def repeated_run(runs: Sequence[str | Path]) -> Optional[tuple[Path, Path]]:
    """The first run folder of ``runs`` that names a folder named before it (compared as real paths: ``X``, ``./X``
    and ``/abs/X`` are one folder), with the earlier spelling: ``(repeat, first)``; None when every folder is named
    once. Raises nothing (a folder that does not exist is compared by its absolute path)."""
    first: dict[Path, Path] = {}                # each resolved folder: the run that first named it
    for r in map(Path, runs):
        key = r.resolve()
        if key in first:
            return r, first[key]
        first[key] = r
    return None


def also_as(run: Path, twin: Path) -> str:
    """``" (also as <twin>)"`` where the two spellings of one folder differ, else ``""``: the end of a refusal of a
    run folder given twice (:func:`repeated_run`'s pair)."""
    return f" (also as {twin})" if str(twin) != str(run) else ""


def check_one_recipe(label: str, runs: Sequence[str | Path]) -> None:
    """Check that the runs of entry ``label`` are one recipe up to the seed, so that averaging them (``icegan table``
    rows, ``icegan compare`` entries) means averaging seeds: their :func:`run_recipe` must be equal (an ensemble's
    members with their weights in any order). A single run is its own recipe and is not checked.

    Raises:
        ValueError: a run listed twice (it would count twice in the mean and in n; overlapping globs do this); two
            runs of different recipes (names the entry, the two runs and up to three differing keys, and
            says to give each recipe its own entry, ``LABEL=GLOB``); a run of several that records no recipe (no
            ``config.yaml``, and no ensemble, selection or merge header whose members can be read); two runs of the
            same seed(s) (one seed run twice: its scores are not another draw, and would shrink the std and grow n;
            names the two runs); a header that cannot be read. Runs of different seeds with the same predictions
            are not refused: they are genuine draws of a recipe whose result does not depend on its seed
            (:func:`same_predictions_notes` gives the tables' note).
    """
    repeat = repeated_run(runs)
    if repeat is not None:
        raise ValueError(f"entry '{label}' lists the run {repeat[0]} twice{also_as(*repeat)}; it would count twice "
                         "in the mean over runs: list each run once (two glob patterns of one entry may overlap)")
    unique = list(map(Path, runs))
    if len(unique) < 2:
        return
    with reading_configs():                     # each config.yaml parsed once for both comparisons below
        _check_recipes(label, unique)


def _check_recipes(label: str, unique: list[Path]) -> None:
    """The recipe and seed comparisons of :func:`check_one_recipe` over its runs ``unique`` (each listed once, at
    least two); raises as it does."""
    fix = ('give each recipe its own entry, LABEL=GLOB (e.g. "STSTNet=runs/ststnet_s[0-9]*": a digit after _s, so '
           'ststnet_shifts_s0 is not taken)')
    recipes = []
    for r in unique:
        rec, why = _recipe(r)
        if rec is None:
            raise ValueError(f"entry '{label}': cannot tell that its {len(unique)} runs are seeds of one recipe: {r} "
                             f"records no recipe ({why}); {fix}, or give a run that records none an entry of its own "
                             "(LABEL=DIR)")
        recipes.append(rec)
    for r, rec in zip(unique[1:], recipes[1:]):
        if _unordered(rec) != _unordered(recipes[0]):
            raise ValueError(f"entry '{label}': {unique[0]} and {r} are different recipes, not seeds of one "
                             f"({_differences(recipes[0], rec)}); {fix}")
    seeded: list[tuple[Path, dict]] = []        # the same recipe: the seeds must differ too
    for r in unique:
        rec = _unordered(_recipe(r, drop=RUN_ONLY_KEYS - {"seed"})[0])
        twin = next((u for u, other in seeded if other == rec), None)
        if twin is not None:
            raise ValueError(f"entry '{label}': {twin} and {r} are the same recipe with the same "
                             f"seed{_seed_text(rec)}: one seed run twice, not two seeds (its scores would count twice, "
                             "shrinking the std and growing n); keep one of them, or rerun one with another seed=")
        seeded.append((r, rec))


def same_predictions_notes(label: str, runs: Sequence[str | Path]) -> list[str]:
    """The notes of the entry ``label`` whose runs ``runs`` (seeds of one recipe, :func:`check_one_recipe`) include
    runs with the same predictions (``predictions.csv``'s rows in any order, :func:`_predictions_digest`): a recipe
    that draws nothing from its seed (logistic regression; a nested selection that picks it in every fold) gives
    the same scores for every seed. Those runs are genuine draws, counted in n and the std as computed; the note
    says that their ± 0 is no measured spread. ``icegan table``, ``icegan compare`` and the suite's page show it.

    Returns:
        One line per group of at least two runs with the same predictions (``entry 'LR': runs A and B have the same
        predictions ...``), in the order the runs are listed; empty when none (runs without a readable
        predictions.csv are not compared).
    """
    groups: dict[str, list[Path]] = {}
    unique = list(dict.fromkeys(map(Path, runs)))
    for r in unique:
        digest = _predictions_digest(r)
        if digest is not None:
            groups.setdefault(digest, []).append(r)
    notes = []
    for same in groups.values():
        if len(same) < 2:
            continue
        named = ", ".join(map(str, same[:-1])) + f" and {same[-1]}"
        spread = ("± 0 is not a measured spread" if len(same) == len(unique) else
                  "they count as one draw each in its mean ± std")
        notes.append(f"entry '{label}': runs {named} have the same predictions (predictions.csv, the same rows in any "
                     f"order): this recipe's result does not depend on its seed here; {spread}")
    return notes


def _predictions_digest(run: Path) -> Optional[str]:
    """SHA-256 (hex) of the run folder ``run``'s ``predictions.csv`` as :func:`icegan.ensemble._digest` takes it, but
    of its lines in sorted order: the same rows written in another order (two seeds of a seed-free recipe whose
    folds finished in another order) give the same digest. None where the folder has no readable predictions.csv
    (a run without one is refused, or shown, by the entry's other checks)."""
    import hashlib
    try:
        text = (run / "predictions.csv").read_bytes()
    except OSError:
        return None
    return hashlib.sha256(b"\n".join(sorted(text.splitlines()))).hexdigest()


def _unordered(recipe):
    """``recipe`` (:func:`run_recipe`) with the members of every ensemble in it, at any depth, in one fixed order:
    the same members with the same weights listed in another order are the same average, one recipe."""
    if isinstance(recipe, dict):
        out = {k: _unordered(v) for k, v in recipe.items()}
        if out.get("kind") == "ensemble" and isinstance(out.get("members"), list):
            out["members"] = sorted(out["members"], key=lambda m: json.dumps(m, sort_keys=True, default=str))
        return out
    if isinstance(recipe, list):
        return [_unordered(x) for x in recipe]
    return recipe


def _seed_text(recipe: dict) -> str:
    """`` (seed=0)`` for a run's recipe with its top-level seed; empty for an ensemble, selection or merge."""
    return f" (seed={recipe['seed']})" if "seed" in recipe else ""


def _load(run: Path) -> dict:
    """A finished run's ``metrics.json``.

    Raises:
        ValueError: no ``metrics.json``, one that cannot be read or is cut short (:func:`read_run_json`), or one that
            lacks a key of icegan's metrics (each names the file); a run header (``run.json``, ``ensemble.json``, ...)
            that cannot be read or is no JSON object (:func:`read_run_json`, as ``icegan compare`` refuses it: its
            folds, so whether the run is whole, are unknown); a run whose ``run.json`` lists more folds than its
            metrics.json's ``n_folds`` (a ``max_folds`` run extended to more folds and stopped before it finished:
            its metrics are the smoke run's; refused as unfinished, as ``icegan compare`` does; names the folder and
            says to rerun the command); a ``predictions.csv`` (where the folder has one and a run header: one copied
            with its metrics alone, or with metrics.json and no run.json, is shown) that ``icegan compare`` refuses
            (:func:`icegan.ensemble.read_finished_run`: damaged, a y_pred not its row's top score, a fold of the
            header without predictions, or fewer or more rows than metrics.json's ``n_samples``), or whose rows give
            another UF1 / UAR than metrics.json (:func:`check_metrics_match`); a UF1 / UAR that is no number, or not
            finite or outside [0, 1], or missing (:func:`check_metric`).
    """
    f = run / "metrics.json"
    if not f.is_file():
        raise ValueError(f"{run}: no metrics.json (an unfinished run, or not a run folder)")
    m = read_run_json(f, RESUME)
    for key in ("protocol", "oracle_epoch", "overall", "per_dataset"):
        if key not in m:
            raise ValueError(f"{f}: no '{key}' (not an icegan metrics.json)")
    fix = f"{EDITED} {RESUME}"
    if not isinstance(m["per_dataset"], dict):
        raise ValueError(f"{f}: 'per_dataset' is not a mapping of datasets to metrics ({m['per_dataset']!r}); {fix}")
    for where, part in [("overall", m["overall"])] + [(f"per_dataset.{d}", v) for d, v in m["per_dataset"].items()]:
        if not isinstance(part, dict):
            raise ValueError(f"{f}: '{where}' is not a mapping of metrics ({part!r}); {fix}")
        for metric in ("UF1", "UAR"):           # what a table row shows
            check_metric(f, where, part, metric)
    header = run_folder_header(run)
    try:                          # parsed once in a reading_configs block, as the partial tag and the checks read it
        whole = header is None or isinstance(_parsed_json(header), dict)
    except (OSError, ValueError):
        whole = False
    if not whole:
        read_run_json(header)     # refused, worded as read_run_json words it
    listed = _run_json_folds(run)
    if listed is not None and isinstance(m.get("n_folds"), int) and listed > m["n_folds"]:
        raise ValueError(f"{run}: unfinished run: its run.json lists {listed} folds, its metrics.json holds "
                         f"{m['n_folds']} (a max_folds run extended to more folds and stopped before it finished?); "
                         f"{RESUME}")
    # the rows behind these metrics, checked as compare checks them; a folder without a run header is shown on its
    # metrics.json
    if header is not None and (run / "predictions.csv").is_file():
        from icegan.ensemble import read_finished_run
        check_metrics_match(f, m, read_finished_run(run)[1])
    return m


#: how far a metrics.json UF1 / UAR may be from the one its predictions.csv gives (float rounding only)
METRIC_TOLERANCE = 1e-6


def check_metrics_match(f: Path, m: dict, pred) -> None:
    """Refuse the metrics.json ``f`` (parsed: ``m``) whose UF1 / UAR, overall or of a dataset, is not the one the
    rows of its folder's ``predictions.csv`` give (``pred``, as :func:`icegan.ensemble.read_finished_run` returns
    it), so that ``icegan table`` shows what ``icegan compare`` computes for the same run. Recomputed without
    scikit-learn (:func:`icegan.significance.subject_confusions`, :func:`icegan.metrics.uf1_uar_from_confusion`:
    MEGC2019's pooled UF1 / UAR, as :func:`icegan.protocol.summarize_predictions` writes them); a dataset's rows
    are those of its ``dataset`` cells (an empty cell, or no such column: the subject id's prefix;
    :func:`icegan.significance.clip_datasets`).

    Raises:
        ValueError: a UF1 / UAR more than :data:`METRIC_TOLERANCE` from the recomputed value, or datasets of
            metrics.json's ``per_dataset`` that are not those of the predictions: names both files, the key and
            both values, and says to restore them, or to rerun the command that wrote the folder with the same
            --out (metrics.json alone edited) or into an emptied folder (predictions.csv edited: a rerun with the
            same --out refuses its folds scored on other labels).
    """
    from icegan.labels import label_set_of_columns
    from icegan.metrics import uf1_uar_from_confusion
    from icegan.significance import clip_datasets, subject_confusions
    pcsv = f.parent / "predictions.csv"
    fix = ("the two files disagree (was one edited, or copied from another run?); restore them; if metrics.json "
           "alone was edited, run the command that wrote this folder again with the same --out (it writes its results "
           "again from predictions.csv); otherwise delete this folder (or give another --out) and run it again")
    n_classes = label_set_of_columns(pred.columns, str(pcsv)).n_classes
    ds = clip_datasets(pred)
    if set(ds) != set(m["per_dataset"]):
        raise ValueError(f"{f}: 'per_dataset' holds {sorted(m['per_dataset'])}, but the clips of {pcsv} are of "
                         f"{sorted(set(ds))}; {fix}")
    for where, rows, part in [("overall", pred, m["overall"])] + [
            (f"per_dataset.{d}", pred[ds == d], v) for d, v in m["per_dataset"].items()]:
        cm = subject_confusions(rows, sorted(rows["subject"].unique()), n_classes).sum(0)
        for metric, value in zip(("UF1", "UAR"), uf1_uar_from_confusion(cm)):
            if abs(part[metric] - float(value)) > METRIC_TOLERANCE:
                raise ValueError(f"{f}: '{where}.{metric}' is {part[metric]!r}, but the rows of {pcsv} give "
                                 f"{float(value)!r}; {fix}")


def check_metric(f: Path, where: str, part: dict, metric: str) -> None:
    """Refuse the ``metric`` (UF1 / UAR) of ``part``, the mapping at ``where`` (``overall``,
    ``per_dataset.<dataset>``) of the metrics.json ``f``, where ``part`` lacks it, or where its value is no number
    (None included), or one that is not finite or outside [0, 1] (no icegan run writes one).

    Raises:
        ValueError: names ``f``, the key (and the value, where there is one), and says to restore the file or rerun
            the run's command.
    """
    if metric not in part:
        raise ValueError(f"{f}: no '{where}.{metric}' (not an icegan metrics.json, or cut down); {EDITED} {RESUME}")
    v = part[metric]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{f}: '{where}.{metric}' is {v!r}, not a number; {EDITED} {RESUME}")
    if not 0.0 <= v <= 1.0:          # NaN fails too
        raise ValueError(f"{f}: '{where}.{metric}' is {v!r}, not a number in [0, 1]; {EDITED} {RESUME}")


def _run_json_folds(run: Path) -> Optional[int]:
    """How many folds the ``run.json`` of ``run`` lists; None without a readable one (its damage is said elsewhere)."""
    h = _run_json(run)
    folds = h.get("folds") if h is not None else None
    return len(folds) if isinstance(folds, list) else None


def _stats(values: list[float]) -> tuple[float, float] | None:
    """(mean, sample std; NaN for one run) of a metric over runs, None when no run has it."""
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _cell(st: tuple[float, float] | None, pm: str = "±", missing: str = "—") -> str:
    """``mean ± std`` to 4 decimals (the mean alone for one run; ``missing`` for none); ``pm`` is the sign between."""
    if st is None:
        return missing
    return f"{st[0]:.4f}" if np.isnan(st[1]) else f"{st[0]:.4f} {pm} {st[1]:.4f}"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}"}


#: what :func:`markdown_cell` escapes: a backslash, backtick, ``*``, ``|``, ``<``, ``~`` or ``$`` (GitHub renders
#: ``$x$`` as maths) anywhere; a ``]``
#: before ``(`` or ``[`` (the end of a link's text); a ``_`` unless a letter or digit is on both sides
#: (``features_ststnet_s0`` cannot start or end emphasis and stays as written, as do ``[PARTIAL: 2 of 3 folds]`` and
#: ``STSTNet + shifts``)
MARKDOWN_SPECIAL = re.compile(r"[\\`*|<~$]|\](?=[(\[])|(?<![^\W_])_|_(?![^\W_])")


def markdown_cell(text: str) -> str:
    """``text`` as the cell of a Markdown table, or a heading's text, with the characters of
    :data:`MARKDOWN_SPECIAL` escaped with a backslash (a backslash doubled) and line breaks as spaces.
    ``lr|c*1*`` → ``lr\\|c\\*1\\*``, ``$x$`` → ``\\$x\\$``; removing each escaping backslash gives ``text`` back
    (line breaks aside).

    Not escaped, so these still render as Markdown would: ``&`` (``&copy;`` shows as ©) and ``#`` (a heading's
    text ending in `` #`` loses that ``#``)."""
    return MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(), str(text)).replace("\r", " ").replace("\n", " ")


def latex_escape(text: str) -> str:
    r"""``text`` with LaTeX's ten special characters escaped, for a table cell in text mode (``STSTNet_2 & co`` →
    ``STSTNet\_2 \& co``), and ``|``, ``<``, ``>`` as ``\textbar{}``, ``\textless{}``, ``\textgreater{}`` (with LaTeX's
    default OT1 font encoding the bare characters print as an em dash, ¡ and ¿)."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_row_start(cell: str) -> str:
    r"""The first cell of a LaTeX table row (LaTeX already, e.g. :func:`latex_escape`'s), guarded with ``{}`` when it
    begins with ``[`` or ``*``: after the previous row's ``\`` (or booktabs' ``\midrule``) LaTeX would read
    ``[ours] RF`` as their optional ``[length]`` argument, and the ``*`` of ``*LR (ours)`` as the starred form ``\*``
    (the ``*`` dropped from the row)."""
    return "{}" + cell if cell.lstrip().startswith(("[", "*")) else cell


def latex_float(tabular: str, caption: str, label: str) -> str:
    r"""``tabular`` as a LaTeX float to paste into a paper: ``table*`` (full text width in a two-column paper, an
    ordinary table in a one-column one) with ``caption`` above, ``\label{label}``, and the tabular scaled down to the
    text width only when it is wider (``adjustbox``'s ``max width``; never scaled up). ``caption`` is LaTeX already
    (escape text with :func:`latex_escape`). The first line names the packages it needs: ``booktabs`` (the rules of
    pandas' tabulars) and ``adjustbox``."""
    return ("% needs \\usepackage{booktabs} and \\usepackage{adjustbox}\n"
            "\\begin{table*}[t]\n\\centering\n"
            f"\\caption{{{caption}}}\n\\label{{{label}}}\n"
            "\\begin{adjustbox}{max width=\\textwidth}\n"
            f"{tabular.rstrip()}\n"
            "\\end{adjustbox}\n\\end{table*}\n")


def run_label_set(run: str | Path):
    """The label set (:mod:`icegan.labels`) a finished run folder scored: read from the score columns of its
    ``predictions.csv`` header (every kind of run folder writes one). A folder without a readable predictions.csv
    (one copied with its metrics alone) falls back to the ``classes`` its ``run.json`` records (written for any
    label set but MEGC2019's); MEGC2019's where neither says.

    Raises:
        ValueError: the score columns or the run.json classes are those of no label set (names the file).
    """
    from icegan.labels import DEFAULT_LABELS, LABEL_SETS, label_set_of_classes, label_set_of_columns
    f = Path(run) / "predictions.csv"
    try:
        with open(f, encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        rj = Path(run) / "run.json"
        if not rj.is_file():
            return LABEL_SETS[DEFAULT_LABELS]
        classes = read_run_json(rj).get("classes")
        if classes is None:
            return LABEL_SETS[DEFAULT_LABELS]
        try:
            return label_set_of_classes(classes)
        except ValueError as e:
            raise ValueError(f"{rj}: 'classes' {e}") from None
    return label_set_of_columns(header, str(f))


def _folds_clips(m: dict) -> tuple[Optional[int], Optional[int]]:
    """(n_folds, n_samples) of a metrics.json, None where it lacks one."""
    return m.get("n_folds"), m.get("n_samples")


def selection_word(oracle: bool, leaky: bool, oracle_word: str = "ORACLE epoch") -> str:
    """The Selection cell of a run (or of an entry's runs) in every table that prints one: ``icegan table``,
    ``icegan compare``, a suite's results.md, train.py's runs/summary.md and metrics.md's "this run" row.

    ``oracle``: the epochs were picked on the test subjects (metrics.json ``oracle_epoch``); ``leaky``: the flow
    network that made the features trained on real motion of held-out subjects (metrics.json ``real_motion_seen``,
    :func:`motion_seen`). Gives ``honest``, ``NOT leak-free``, ``oracle_word`` or ``oracle_word; NOT leak-free``;
    ``oracle_word`` is how the caller's table has always named an oracle run (``ORACLE epoch``, ``**ORACLE**``).
    """
    if oracle:
        return oracle_word + ("; NOT leak-free" if leaky else "")
    return "NOT leak-free" if leaky else "honest"


def motion_seen(run: str | Path) -> bool:
    """Whether the finished run in ``run`` records held-out subjects whose real motion trained its flow network
    (``real_motion_seen`` in its metrics.json, :func:`icegan.protocol.run_motion_record`, as an ensemble reads a
    member). False without a readable metrics.json."""
    from icegan.protocol import run_motion_record
    return run_motion_record(run) is not None


def results_table(entries: Sequence[TableEntry], fmt: str = "markdown") -> str:
    """The table of ``entries`` as Markdown (paste into a README), LaTeX (paste into a paper) or CSV (for pandas / a
    spreadsheet).

    Columns: Method, Selection (honest / ORACLE epoch; ``NOT leak-free`` for a run whose metrics.json records held-out
    subjects whose real motion trained its flow network, ``real_motion_seen``, :func:`icegan.protocol.run_loso`),
    Protocol, n (runs), Full UF1, Full UAR, then UF1 and UAR per
    dataset present in any run (SMIC, CASME II, SAMM first), and last ``Folds / clips``: the LOSO folds and the clips
    the row's metrics are pooled over (``68 / 442`` for the composite CDE; a ``max_folds`` smoke run shows fewer), the
    same for every run of the entry. A table with a run of other classes than MEGC2019's three (``data.labels``, read
    from its predictions, :func:`run_label_set`) has a ``Classes`` column after Protocol (``5 (casme2_5)``), and its
    LaTeX caption names those classes. Markdown cells: the metric of one run, or ``mean ± std`` (sample std) over the
    entry's runs, to 4 decimals (a table with such a cell says so in a line under it). LaTeX: the same cells in a
    booktabs ``tabular`` (pandas ``DataFrame.to_latex``)
    inside a ``table*`` float with a caption and ``\\label{tab:icegan-results}`` (:func:`latex_float`); its column
    groups (Full, SMIC, CASME II, SAMM) each span UF1 and UAR, labels and dataset names escaped
    (:func:`latex_escape`; a label beginning with ``[`` or ``*`` guarded, :func:`latex_row_start`), ``--`` for a
    dataset an entry has no runs on. CSV: each metric as two numeric columns, ``<metric>`` (the mean) and
    ``<metric> std`` (empty for one run), full precision, then ``Folds`` and ``Clips``. An entry with runs of the
    same predictions (:func:`same_predictions_notes`: n and ± as computed) gets its note under the Markdown table
    (``Note: ...``) and at the end of the LaTeX caption; CSV has none (``icegan table`` prints it on stderr). A null
    run's row (:func:`is_null_run`, ``data.permute_labels`` >= 0) has :data:`NULL_RUN_TAG` after its label in every
    format, and :data:`NULL_RUN_LEGEND` under the Markdown table and in the LaTeX caption.

    Raises:
        ValueError: a run without metrics.json; an entry whose runs differ in protocol, in SDE dataset (the
            ``dataset`` of the run header; of a run without one, its metrics' single dataset; a run whose dataset is
            still unknown is not compared), in oracle selection, or in the number of folds or samples (pooling them
            would mix different experiments), or are not seeds of one recipe (:func:`check_one_recipe`: names the
            entry, two runs and the keys they differ in), or score different classes; ``fmt`` not markdown / latex /
            csv.
    """
    if fmt not in ("markdown", "latex", "csv"):
        raise ValueError(f"format must be markdown, latex or csv, got '{fmt}'")
    with reading_configs():                     # each run's config.yaml and run.json parsed once
        return _results_table(entries, fmt)


def _results_table(entries: Sequence[TableEntry], fmt: str) -> str:
    """:func:`results_table` of ``entries`` in ``fmt`` (checked), inside its :func:`reading_configs` block."""
    rows, datasets, notes = [], [], []
    for e in entries:
        ms = [_load(r) for r in e.runs]
        # the SDE dataset from the run header (_load read it), before the counts it explains (as ensemble checks);
        # a run without one (metrics.json copied alone) by its metrics' single dataset, else not compared
        sde = [(_parsed_json(h) if (h := run_folder_header(r)) else {}).get("dataset") for r in e.runs]
        sde = [d if d is not None or len(m["per_dataset"]) != 1 else next(iter(m["per_dataset"]))
               for m, d in zip(ms, sde)]
        for key in ("protocol", "dataset", "oracle_epoch", "n_folds", "n_samples"):
            vals = {str(d) for d in sde if d is not None} if key == "dataset" else {str(m.get(key)) for m in ms}
            if len(vals) > 1:
                raise ValueError(f"table entry '{e.label}': its runs differ in {key} ({sorted(vals)}); give them "
                                 "separate entries")
        sets = [run_label_set(r) for r in e.runs]
        if len({ls.name for ls in sets}) > 1:
            raise ValueError(f"table entry '{e.label}': its runs score different classes "
                             f"({sorted({ls.name for ls in sets})}, data.labels); give them separate entries")
        check_one_recipe(e.label, e.runs)
        if fmt != "csv":                        # CSV carries no note: `icegan table` prints it on stderr
            notes += same_predictions_notes(e.label, e.runs)
        for m in ms:
            datasets += [d for d in m["per_dataset"] if d not in datasets]
        rows.append((e, ms, sets[0]))
    from icegan.labels import DEFAULT_LABELS
    label_sets = list(dict.fromkeys(ls for _, _, ls in rows))
    classes = any(ls.name != DEFAULT_LABELS for ls in label_sets)      # a Classes column, only then
    order = list(DATASET_TITLES)
    datasets.sort(key=lambda d: (order.index(d) if d in order else len(order), d))
    metric_cols = [("Full", None)] + [(DATASET_TITLES.get(d, d), d) for d in datasets]
    head = ["Method", "Selection", "Protocol"] + (["Classes"] if classes else []) + ["n"]
    size_head = "Folds / clips"
    body = []
    for e, ms, ls in rows:
        cells = []
        for _, d in metric_cols:
            per = [m["overall"] if d is None else m["per_dataset"][d] for m in ms
                   if d is None or d in m["per_dataset"]]
            cells += [_stats([p["UF1"] for p in per]), _stats([p["UAR"] for p in per])]
        # max_folds smoke runs say so in the row
        partial = sorted({read_partial_tag(r, read=_parsed_json) for r in e.runs} - {""})
        leaky = any(m.get("real_motion_seen") for m in ms)        # flow that trained on held-out subjects' motion
        selection = selection_word(bool(ms[0]["oracle_epoch"]), leaky)
        null = NULL_RUN_TAG if any(is_null_run(r) for r in e.runs) else ""       # labels permuted: chance by design
        lead = [e.label + "".join(partial) + null, selection, ms[0]["protocol"]]
        lead += [f"{ls.n_classes} ({ls.name})"] if classes else []
        body.append((lead + [str(len(ms))], cells, _folds_clips(ms[0])))
    names = [f"{t} {k}" for t, _ in metric_cols for k in ("UF1", "UAR")]

    def size(fc: tuple, missing: str) -> str:
        return missing if fc == (None, None) else " / ".join("?" if v is None else str(v) for v in fc)
    if fmt == "csv":
        import csv
        import io
        buf = io.StringIO()
        from icegan.csv_names import csv_quoting
        w = csv.writer(buf, lineterminator="\n", quoting=csv_quoting([lead for lead, _, _ in body]))
        w.writerow(head + [c for n in names for c in (n, f"{n} std")] + ["Folds", "Clips"])
        for lead, cells, fc in body:
            w.writerow(lead + [x for st in cells for x in
                               (("", "") if st is None else (repr(st[0]), "" if np.isnan(st[1]) else repr(st[1])))]
                       + ["" if v is None else str(v) for v in fc])
        return buf.getvalue()
    if fmt == "latex":
        import pandas as pd
        cols = pd.MultiIndex.from_tuples([("", h) for h in head] + [(latex_escape(t), k) for t, _ in metric_cols
                                                                      for k in ("UF1", "UAR")] + [("", size_head)])
        frame = pd.DataFrame([[latex_row_start(latex_escape(lead[0]))] + [latex_escape(x) for x in lead[1:]]
                              + [_cell(st, "$\\pm$", "--") for st in cells]
                              + [size(fc, "--")] for lead, cells, fc in body], columns=cols)
        tab = frame.to_latex(index=False, escape=False, multicolumn=True, multicolumn_format="c",
                             column_format="llc" + ("l" if classes else "") + "r" + "c" * len(names) + "r")
        which = "MEGC2019" if not classes else "; ".join(ls.title for ls in label_sets)
        caption = (f"Micro-expression recognition: UF1 and UAR pooled over all folds ({which}). n: runs; several "
                   "runs: mean $\\pm$ sample standard deviation over the n runs. Honest: no selection on the "
                   "held-out subject (HDE rows: the held-out dataset). Folds / clips: what each row is scored on.")
        if any("NOT leak-free" in lead[1] for lead, _, _ in body):
            caption += (" NOT leak-free: the flow network that made the features was trained on real frames of "
                        "held-out subjects.")
        if any(NULL_RUN_TAG in lead[0] for lead, _, _ in body):
            caption += " " + latex_escape(NULL_RUN_LEGEND).replace(latex_escape(">="), "$\\geq$")
        caption += "".join(" " + latex_escape(n).replace("±", "$\\pm$") + "." for n in notes)  # same predictions
        return latex_float(tab, caption, "tab:icegan-results")
    out = ["| " + " | ".join(head + names + [size_head]) + " |", "|" + "---|" * (len(head) + len(names) + 1)]
    out += ["| " + " | ".join([markdown_cell(lead[0])] + lead[1:] + [_cell(st) for st in cells] + [size(fc, "—")])
            + " |" for lead, cells, fc in body]
    # what ± is, under a table that shows one (the LaTeX caption says it too)
    several = any(len(ms) > 1 for _, ms, _ in rows)
    pm = ["\n± : sample standard deviation (ddof=1) over the entry's n runs.\n"] if several else []
    pm += [f"\n{NULL_RUN_LEGEND}\n"] if any(NULL_RUN_TAG in lead[0] for lead, _, _ in body) else []
    return "\n".join(out) + "\n" + "".join(pm) + "".join(f"\nNote: {n}.\n" for n in notes)
