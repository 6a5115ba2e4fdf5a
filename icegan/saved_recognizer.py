"""A recognizer trained once on every labelled clip, saved to one file and used later on new clips
(``icegan fit`` and ``icegan predict``).

LOSO (``icegan loso``) answers "how well does this recipe generalise to an unseen subject"; it keeps no model. Once a
recipe is chosen, ``icegan fit`` trains it on all the clips of its config (the same data section, the same recipe,
one model × ``model.seeds`` members) and writes one ``.pt`` file; ``icegan predict`` scores the clips of a feature
table with one or several such files (their probabilities averaged, as ``icegan ensemble`` averages LOSO runs).

The file (``torch.save``, read back with ``weights_only=True``) holds plain values only::

    {"format": "icegan-recognizer", "version": 1,
     "config": the resolved `icegan loso` config (dict; its model section rebuilds the network),
     "classes": the label set's class names in id order (icegan.labels; ["negative", "positive", "surprise"]
                for MEGC2019, the five of CASME II for casme2_5, of SAMM for samm_5),
     "training": {"clips": N, "subjects": [...], "clip_keys": ["subject/clip", ...], "datasets": {name: N},
                  "classes": {name: N}, "map_size": S, "maps": how the maps were made (maps_provenance),
                  "bare_ids_of": {"labels": the label set, "table_sha256": SHA-256 of the table file}, only for a
                  five-class model fitted on a table of bare class ids whose set no provenance.json records (icegan
                  predict then reads such ids as that set's in that very table, the same content, alone),
                  "map_sha256": [SHA-256 of each training map file, ...] for a model fitted on a feature table or the
                  released maps (icegan predict knows its training maps by content too; a file without it: by names only),
                  "inner_val": the early-stopping part of the clips (one per member for ststnet / offtanet with
                  model.seeds > 1), only with model.inner_val_fraction > 0},
     "provenance": {...}  (a custom network's module spec and source SHA-256),
     "environment": {...} (library versions, CPU, git commit at training time),
     "members": [{"copies": G, "snapshots": k, "state_dict": {...}}, ...],
     "sklearn_pickle": bytes or None, "sklearn_sha256": str or None}

A scikit-learn recognizer (logistic regression, random forest, gradient-boosted trees) is stored as a pickle inside
the file and unpickled on loading: load only model files you made or trust, as for any pickle.
"""
from __future__ import annotations

import functools
import hashlib
import json
import pickle
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from icegan.labels import LABEL_SETS
from icegan.metrics import CLASS_NAMES
from icegan.paths import config_hint

__all__ = ["FORMAT", "VERSION", "SavedRecognizerError", "save_recognizer", "load_recognizer", "training_record",
           "maps_provenance", "maps_differ", "is_model_file"]

FORMAT = "icegan-recognizer"
VERSION = 1


class SavedRecognizerError(ValueError):
    """A model file that cannot be used: missing, not an icegan recognizer, another format version, or a custom
    network whose code changed since it was trained. The message names the file."""


#: the flow settings that change the maps (batch size, precision of the arithmetic and compilation do not, or barely)
_MAP_KEYS = ("method", "module", "weights", "iters", "component", "decompose", "decompose_weights", "input_size",
             "tta")


def maps_provenance(source: str, table: Optional[str | Path] = None, paths: Optional[Sequence[str]] = None) -> dict:
    """How the maps of a feature set were made, as far as it is known: for the released composite
    ``{"maps": "megc2019_htnet"}``; for a feature table written by ``icegan features``, the flow settings and weight
    checksums of its ``provenance.json`` (``{"flow": {...}, "weights": {...}, "size": S}``, with ``"faces": {...}``
    (:func:`icegan.pipeline.face_provenance`) when the table records them); for a table without ``provenance.json``
    whose maps all lie in a release's flow folder (:func:`_released_maps`), the released composite's; ``{}`` when
    unknown (a table you made yourself, the toy set), or when that ``provenance.json`` cannot be used (cut short,
    edited: a warning names it and what to do, :func:`icegan.data.feature_table.read_provenance`).

    Args:
        source: the data section's ``source`` (``megc2019_htnet``, ``table``, ``toy``).
        table: the feature table's path when ``source`` is ``table``.
        paths: the table's map files (absolute paths, as :func:`icegan.data.feature_table.read_feature_table`
            gives them); None: not known, so a table without ``provenance.json`` is unknown.
    """
    if source == "megc2019_htnet":
        return {"maps": "megc2019_htnet"}
    if source != "table" or table is None:
        return {}
    from icegan.data.feature_table import read_provenance
    info = read_provenance(table, "how the maps were made (compared by icegan predict with a model's training maps)")
    if info is None:
        return {"maps": "megc2019_htnet"} if paths is not None and _released_maps(paths) else {}
    flow = info.get("flow") or {}
    out = {"flow": {k: flow.get(k) for k in _MAP_KEYS if k in flow}, "weights": info.get("weights") or {},
           "size": info.get("size")}
    if info.get("faces"):          # tables written before the faces were recorded have none
        out["faces"] = info["faces"]
    return out


def _released_maps(paths: Sequence[str]) -> bool:
    """Whether there are maps and every one lies in the flow folder of a MEGC2019 release: a flow folder of
    :data:`icegan.data.features.LAYOUTS` (``flow_uvos_28/``, the HTNet release's) whose root holds the release's
    ``combined_3_class2_for_optical_flow.csv``, as ``data.source=megc2019_htnet`` reads them.

    Args:
        paths: map files, absolute (a relative one is taken from the working folder)."""
    from icegan.data.features import CSV_NAME, LAYOUTS
    def released(folder: Path) -> bool:
        for _, flow, _ in LAYOUTS:
            parts = Path(flow).parts
            if len(folder.parts) > len(parts) and folder.parts[-len(parts):] == parts \
                    and (folder.parents[len(parts) - 1] / CSV_NAME).is_file():
                return True
        return False
    folders = {Path(p).absolute().parent for p in paths}
    return bool(folders) and all(released(f) for f in folders)


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, stamp: tuple) -> str:
    """SHA-256 (hex) of the bytes of the file ``path``, hashed once per version of the file whatever it is compared
    with. ``stamp``: the file's (size, mtime in ns), so that a rewritten file is hashed again.

    Raises:
        OSError: the file cannot be read."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=8)
def _weights_defaults(path: str, method: str, stamp: tuple) -> tuple:
    """``(default iters or None, trained crop side or None)`` of the flow weights file ``path`` of ``method`` (loaded
    once per version of the file). ``stamp``: the file's (size, mtime in ns), so that a rewritten file is read
    again."""
    from flownet.registry import load_weights
    model = load_weights(Path(path), method)
    iters = getattr(getattr(model, "config", None), "iters", None)
    size = (getattr(model, "meta", None) or {}).get("size")
    return (int(iters) if isinstance(iters, int) and iters > 0 else None,
            int(size) if isinstance(size, (int, float)) and size > 0 else None)


def _resolved_flow(p: dict, other: Optional[dict] = None) -> dict:
    """The flow settings of a :func:`maps_provenance` as the flow network ran them, so that settings written
    differently but making the same maps compare equal: the weights file compared by its SHA-256 (the ``weights``
    record) rather than its path or ``shipped:`` alias; ``decompose`` / ``decompose_weights`` dropped with
    ``component=total`` (no decomposition runs); ``iters`` null with a method that reads none
    (:func:`icegan.pipeline.flow_reads_iters`); a null ``iters`` as the weights' own count and ``input_size``
    ``auto`` / ``native`` as the side the flow ran at (:func:`flownet.resolution.at_input_size`; the image side is
    the recorded face size), where the weights file the provenance (or ``other``, the provenance it is compared
    with) names is on this machine with the recorded SHA-256. A value that cannot be resolved is kept as written."""
    flow = dict(p.get("flow") or {})
    weights = p.get("weights") or {}
    if flow.get("component") == "total":
        flow.pop("decompose", None)
        flow.pop("decompose_weights", None)
    for key, sha in (("weights", "flow_weights_sha256"), ("decompose_weights", "decompose_weights_sha256")):
        if weights.get(sha):
            flow.pop(key, None)
    learned_decompose = flow.get("component") not in (None, "total") and flow.get("decompose") == "learned"
    method = flow.get("method")
    known, iters, size = False, None, None
    from flownet.registry import BACKBONES
    if method in BACKBONES and weights.get("flow_weights_sha256") and not learned_decompose:
        from flownet.registry import resolve_weights
        for q in (p, other or {}):      # the file either side names, if it holds this content
            try:
                if (q.get("flow") or {}).get("method") != method:
                    continue
                path = resolve_weights((q.get("flow") or {}).get("weights") or None, method)
                if path.is_file():
                    st = path.stat()
                    resolved, stamp = str(path.resolve()), (st.st_size, st.st_mtime_ns)
                    if _file_sha256(resolved, stamp) == weights["flow_weights_sha256"]:    # the file the maps used
                        known = True
                        iters, size = _weights_defaults(resolved, method, stamp)
            except (OSError, ValueError):        # a file gone or unreadable: the settings stay as written
                known, iters, size = False, None, None
            if known:
                break
    if flow.get("iters") is None and iters is not None:
        flow["iters"] = iters
    from icegan.pipeline import flow_reads_iters
    if flow.get("iters") is not None and method is not None and not flow_reads_iters(method):
        flow["iters"] = None        # never read (TV-L1 tables made when casme2.yaml set iters: 4)
    image = (p.get("faces") or {}).get("size")
    if not learned_decompose:
        # auto: the weights' training side, else (classical flow, weights recording none) the image side
        at_image = bool(image) and (known or method in ("tvl1", "farneback"))
        if flow.get("input_size") == "auto" and (size is not None or at_image):
            flow["input_size"] = size if size is not None else image
        if flow.get("input_size") == "native" and image is not None:
            flow["input_size"] = image
    return flow


def maps_differ(trained: dict, scored: dict) -> Optional[str]:
    """A sentence saying how the scored maps were made otherwise than the training maps (another source, flow
    setting or checkpoint, or faces prepared otherwise: crop mode, face size, detector, margin), or None when they
    agree or either side is unknown (:func:`maps_provenance`; a flow setting or checkpoint is compared only when both
    sides record it, the faces only when both sides record them). Flow settings are compared as the flow ran them
    (:func:`_resolved_flow`: ``flow.weights=shipped:facial`` and unset, ``iters`` null and the weights' own count,
    ``input_size`` ``auto`` and the side it resolves to, and the decomposition keys with ``component=total`` agree);
    checkpoints by their SHA-256."""
    if not trained or not scored or trained == scored:
        return None
    def name(p: dict) -> str:
        if "maps" in p:
            return f"the released {p['maps']} maps"
        f = p.get("flow", {})
        return f"{f.get('method')} flow" + (f" ({p['size']} px maps)" if p.get("size") else "")
    def source(p: dict) -> tuple:       # the map size is not compared here: icegan predict notes it on its own
        return ("released", p["maps"]) if "maps" in p else ("flow", p.get("flow", {}).get("method"))
    if source(trained) != source(scored):
        return f"trained on {name(trained)}, these are {name(scored)}"
    reasons = []
    then_flow, now_flow = _resolved_flow(trained, scored), _resolved_flow(scored, trained)
    keys = sorted(k for k in set(then_flow) & set(now_flow) if then_flow[k] != now_flow[k])   # both record it
    def checksums(p: dict) -> dict:         # the files' contents, not their names
        return {k: v for k, v in (p.get("weights") or {}).items() if k.endswith("sha256") or k == "flow_module"}
    other_checkpoint = checksums(trained) and checksums(scored) and checksums(trained) != checksums(scored)
    if other_checkpoint:        # a null iters / auto size left unresolved means "the checkpoint's own": said below
        keys = [k for k in keys if not {then_flow[k], now_flow[k]} & {None, "auto"}]
    if keys:            # other weights follow from other settings: not a second reason
        reasons.append(f"the flow settings differ from the training maps' ({', '.join('flow.' + k for k in keys)})")
    elif other_checkpoint:
        reasons.append("the flow weights differ from the training maps' (another checkpoint)")
    then, now = trained.get("faces"), scored.get("faces")
    if then and now and then != now:          # unknown on either side (an older table): nothing to say
        def show(v) -> str:            # a setting one side never used (a detector for cropped faces) is absent
            return "not used" if v is None else ", ".join(map(str, v)) if isinstance(v, list) else str(v)
        diff = ", ".join(f"{k}: {show(then.get(k))} for training, {show(now.get(k))} here"
                         for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k))
        reasons.append(f"the faces were prepared otherwise than the training faces ({diff})")
    return "; ".join(reasons) or None


def training_record(samples, features: torch.Tensor, classes: Sequence[str] = CLASS_NAMES) -> dict:
    """What a saved recognizer was trained on, for the file and for :func:`icegan.commands.predict` to warn when
    new clips are clips it has seen.

    Args:
        samples: the training clips' table (columns dataset, subject, clip, label 0..K-1).
        features: (N, 3, S, S) their maps.
        classes: the class names of the labels, in id order (:mod:`icegan.labels`; MEGC2019's by default).

    Returns:
        ``{"clips": N, "subjects": sorted subjects, "clip_keys": ["subject/clip", ...], "datasets": {name: clips},
        "classes": {class name: clips}, "map_size": S}``.
    """
    labels = samples["label"].astype(int).tolist()
    return {"clips": int(len(samples)), "subjects": sorted(set(samples["subject"].astype(str))),
            "clip_keys": [f"{s}/{c}" for s, c in zip(samples["subject"].astype(str), samples["clip"].astype(str))],
            "datasets": {str(k): int(v) for k, v in samples["dataset"].value_counts().sort_index().items()},
            "classes": {name: int(sum(lab == i for lab in labels)) for i, name in enumerate(classes)},
            "map_size": int(features.shape[-1])}


def save_recognizer(path: str | Path, fitted: Any, config: dict, training: dict, provenance: Optional[dict] = None,
                    environment: Optional[dict] = None, classes: Sequence[str] = CLASS_NAMES) -> Path:
    """Write a :class:`icegan.recognition.FittedRecognizer` and what it was trained with to one file.

    Args:
        path: the file to write (its folder is created; an existing file is replaced).
        fitted: the trained recognizer.
        config: the resolved ``icegan loso`` config as a dict (:func:`icegan.config.to_dict`).
        training: :func:`training_record` of the training clips.
        provenance: :func:`icegan.recognition.recognizer_provenance` of the model section (a custom network's code).
        environment: :func:`icegan.environment.describe_environment` at training time.
        classes: the class names of its outputs, in id order (:mod:`icegan.labels`; MEGC2019's by default).

    Returns:
        The path written.

    Raises:
        ValueError: ``classes`` are not as many as the recognizer's outputs.
        FloatingPointError: a weight of the networks is NaN or infinite (the training diverged); nothing is written.
    """
    path = Path(path)
    if getattr(fitted, "n_classes", len(classes)) != len(classes):
        raise ValueError(f"a recognizer of {fitted.n_classes} outputs cannot be saved as one of the classes "
                         f"{list(classes)}")
    members = fitted.state()["members"]
    bad = _first_non_finite(members)
    if bad:
        lr = (config.get("model") or {}).get("lr") if isinstance(config, dict) else None
        raise FloatingPointError(f"the training diverged: {bad} holds NaN or infinite values; nothing was written to "
                                 f"{path}. Train again with a smaller model.lr (now {lr})")
    environment = json.loads(json.dumps(environment or {}, default=str))   # plain values only (weights_only loading)
    blob = None if fitted.clf is None else pickle.dumps(fitted.clf, protocol=pickle.HIGHEST_PROTOCOL)
    payload = {"format": FORMAT, "version": VERSION, "config": config, "classes": list(classes),
               "training": training, "provenance": provenance or {}, "environment": environment,
               "members": members, "sklearn_pickle": blob,
               "sklearn_sha256": None if blob is None else hashlib.sha256(blob).hexdigest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    from flownet.models.state_dict import save_torch_file
    return save_torch_file(payload, path)     # never a half-written model file, nor a stray .tmp when writing failed


def _first_non_finite(members: list) -> str:
    """``"members[i] weight 'name'"`` for the first floating-point tensor of the members' state dicts that holds NaN
    or Inf; empty when every weight is finite (or there are no networks: a scikit-learn model)."""
    for i, member in enumerate(members):
        for key, value in member["state_dict"].items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                return f"members[{i}] weight {key!r}"
    return ""


def _read_payload(path: Path) -> Any:
    """The object a ``.pt`` file holds, loaded with ``weights_only`` (never running a file's code), without torch's
    note on a pickle protocol it did not write (a file that is not ours). Raises what :func:`torch.load` raises."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location="cpu", weights_only=True)


def _cut_short(path: Path) -> bool:
    """Whether ``path`` is empty (a copy interrupted before its first byte) or begins as the zip archive
    :func:`torch.save` writes but lacks the archive's end (its central directory): a file cut short (an interrupted
    copy or download)."""
    import zipfile
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"" or (head == b"PK\x03\x04" and not zipfile.is_zipfile(path))


def _is_recognizer(payload: Any) -> bool:
    """Whether a loaded payload is one :func:`save_recognizer` wrote (any format version)."""
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def is_model_file(path: str | Path) -> bool:
    """Whether ``path`` is an existing file that :func:`save_recognizer` wrote (any format version; read with
    ``weights_only``, never running the file's code). A missing file, a folder, another torch file or any other file
    is not (False); nothing is raised."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return _is_recognizer(_read_payload(path))
    except Exception:                 # not a torch file, or a pickle of other objects: not ours either way
        return False


def check_model_output(path: str | Path) -> Path:
    """Check, before training, that ``icegan fit --out path`` may write there: not a folder, not a file a run wrote
    (:func:`icegan.paths.check_output_file`), and an existing file only if it is an icegan recognizer (which
    is then replaced: refitting a recipe to the same file is the usual workflow). Anything else there (a predictions
    table, a flow or GAN checkpoint) is never replaced.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the path is a folder, a run's file, or an existing file that is not an icegan recognizer (named,
            with what to do).
    """
    from icegan.paths import check_output_file
    path = check_output_file(path, "--out", "model.pt")
    if path.exists():
        if not is_model_file(path):
            raise ValueError(f"--out {path} exists and is not an icegan model file (made by `icegan fit`); it would be "
                             f"replaced: give another --out, or delete it first")
    return path


def _check_payload(path: Path, payload: dict) -> None:
    """Refuse a recognizer file whose entries are missing or not of the kind :func:`save_recognizer` writes (an
    edited or damaged file), naming the file and the entry, before anything is built from them."""
    def bad(what: str) -> SavedRecognizerError:
        return SavedRecognizerError(f"{path}: {what} (a damaged or edited model file; retrain it with `icegan fit`)")
    def is_int(v: Any, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low
    missing = [k for k in ("config", "classes", "training", "members") if k not in payload]
    if missing:
        raise bad(f"its {', '.join(repr(k) for k in missing)} {'entry is' if len(missing) == 1 else 'entries are'} "
                  f"missing")
    config = payload["config"]
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise bad("its 'config' is not a config with a model section")
    if not isinstance(config.get("data") or {}, dict):
        raise bad("its 'config' data section is not a mapping")
    classes = payload["classes"]
    if not isinstance(classes, list) or not any(classes == list(ls.classes) for ls in LABEL_SETS.values()):
        raise bad(f"its 'classes' are {classes!r}, not those of a label set ("
                  + "; ".join(f"{n}: {list(ls.classes)}" for n, ls in LABEL_SETS.items()) + ")")
    training = payload["training"]
    if not isinstance(training, dict):
        raise bad(f"its 'training' is not a mapping (got {type(training).__name__})")
    if not is_int(training.get("map_size"), 1):
        raise bad(f"its 'training' map_size is {training.get('map_size')!r}, not a positive integer")
    for key in ("subjects", "clip_keys"):
        if not isinstance(training.get(key), list) or not all(isinstance(v, str) for v in training[key]):
            raise bad(f"its 'training' {key} is not a list of names")
    if not isinstance(training.get("maps") or {}, dict):
        raise bad("its 'training' maps is not a mapping")
    digests = training.get("map_sha256", [])     # absent in a file written before it was recorded
    if not isinstance(digests, list) or not all(isinstance(v, str) for v in digests):
        raise bad("its 'training' map_sha256 is not a list of SHA-256 digests")
    if not isinstance(payload.get("provenance") or {}, dict):
        raise bad("its 'provenance' is not a mapping")
    members = payload["members"]
    if not isinstance(members, list):
        raise bad(f"its 'members' is not a list (got {type(members).__name__})")
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            raise bad(f"members[{i}] is not a mapping (got {type(member).__name__})")
        for key, low in (("copies", 1), ("snapshots", 0)):
            if not is_int(member.get(key), low):
                raise bad(f"members[{i}] {key} is {member.get(key)!r}, not an integer of at least {low}")
        sd = member.get("state_dict")
        if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in sd.items()):
            raise bad(f"members[{i}] state_dict is not a mapping of names to tensors")
    diverged = _first_non_finite(members)
    if diverged:                         # scoring with it gives NaN for every clip: say so when it is read
        raise bad(f"{diverged} holds NaN or infinite values (a diverged training)")
    blob = payload.get("sklearn_pickle")
    if blob is not None and not isinstance(blob, bytes):
        raise bad(f"its 'sklearn_pickle' is not bytes (got {type(blob).__name__})")
    from icegan.recognition import SKLEARN_MODELS
    name = config["model"].get("name")
    if name in SKLEARN_MODELS and blob is None:
        raise bad(f"its config's model.name is {name} but it holds no scikit-learn model (no 'sklearn_pickle')")


def _run_folder_advice(folder: Path) -> str:
    """What to do when a folder is given for a model file: for an ``icegan loso`` run (its ``config.yaml`` has a
    ``model`` section) the `icegan fit` of its recipe; for a ``train.py`` run (a ``recognizer`` section) its maps
    written as a table first; else, to give the file ``icegan fit --out`` wrote."""
    import yaml
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        cfg = None
    cfg = cfg if isinstance(cfg, dict) else {}
    config = folder / "config.yaml"
    if "model" in cfg:
        return (f"an icegan loso run folder, and a LOSO run keeps no model: fit its recipe once on every clip with "
                f"`icegan fit --config {config} --out MODEL.pt`")
    if "recognizer" in cfg:
        return (f"a train.py run folder, and a LOSO run keeps no model: write its maps with `icegan features --config "
                f"{config} --out MAPS`, then fit a recipe on them with `icegan fit --config "
                f"{config_hint('features_ststnet', True)} --out MODEL.pt data.source=table "
                f"data.table=MAPS/features.csv`")
    return "give the model file that `icegan fit --out` wrote"


def _check_sklearn(path: Path, clf: Any, payload: dict) -> None:
    """Refuse an unpickled scikit-learn model that does not fit its file: class ids (``clf.classes_``) outside the
    file's K classes or other than those its training record holds clips of (its probability columns would be given
    to the wrong classes), or another number of inputs than the 3 × S × S values of a clip's map at the file's
    training map size S (``n_features_in_``; checked when the model records them).

    Raises:
        SavedRecognizerError: naming the file, what the model holds and what the file says.
    """
    import numpy as np
    classes, training = payload["classes"], payload["training"]
    ids = getattr(clf, "classes_", None)
    ids = None if ids is None else np.asarray(ids)
    fix = "a damaged or edited model file; retrain it with `icegan fit`"
    if ids is None or ids.ndim != 1 or ids.dtype.kind not in "iu" or ((ids < 0) | (ids >= len(classes))).any():
        raise SavedRecognizerError(f"{path}: its scikit-learn model predicts class ids "
                                   f"{None if ids is None else ids.tolist()}, not ids of the file's {len(classes)} "
                                   f"classes {classes} ({fix})")
    counts = training.get("classes")
    if isinstance(counts, dict):      # the classes it was fitted on are those its training clips hold
        held = [k for k, name in enumerate(classes) if isinstance(counts.get(name), int) and counts[name] > 0]
        if ids.tolist() != held:
            raise SavedRecognizerError(f"{path}: its scikit-learn model predicts class ids {ids.tolist()}, but the "
                                       f"file's training record holds clips of the ids {held} of its classes "
                                       f"{classes} (counts {counts}) ({fix})")
    size = int(training["map_size"])
    n_in = getattr(clf, "n_features_in_", None)
    if n_in is not None and int(n_in) != 3 * size * size:
        raise SavedRecognizerError(f"{path}: its scikit-learn model takes {int(n_in)} values per clip, not 3 × {size} "
                                   f"× {size} = {3 * size * size} (the file's training map size {size}) ({fix})")


def load_recognizer(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, dict]:
    """Read a file written by :func:`save_recognizer`.

    Args:
        path: the ``.pt`` file.
        device: where the networks are put and the features scored (``cpu``, ``cuda``, ``auto``).

    Returns:
        (:class:`icegan.recognition.FittedRecognizer` with one output per class of the file's label set, the file's
        other entries: config, classes, training, provenance, environment).

    Raises:
        SavedRecognizerError: the file is missing or unreadable (cut short: said so), not an icegan recognizer
            (no format version included), of another format version, an entry is missing or not what `icegan fit`
            writes (config, classes, training, members),
            its scikit-learn pickle does not match its checksum or cannot be unpickled (another scikit-learn), its
            scikit-learn model's class ids or number of inputs do not fit the file's classes, training record and
            map size (:func:`_check_sklearn`), a weight is NaN or Inf, its weights do not fit the
            network its config builds, or a custom network's source changed since training (the message names the
            file).
    """
    from icegan.config import ConfigError, from_dict
    from icegan.recognition import FittedRecognizer, recognizer_provenance
    from icegan.recognizer_config import RecognizerConfig

    path = Path(path)
    if path.is_dir():          # a LOSO run folder given for a model: say what it is and how to get the model
        raise SavedRecognizerError(f"{path} is a folder, not a model file: {_run_folder_advice(path)}")
    if not path.is_file():
        raise SavedRecognizerError(f"model file not found: {path} (make one with `icegan fit --config ... --out "
                                   f"{path}`)")
    try:
        payload = _read_payload(path)
    except Exception as exc:           # a truncated file, another pickle, a file of another program
        said = f"{path} cannot be read: it is not an icegan model file (made by `icegan fit`)"
        if "weights_only" in str(exc):      # a pickle of other objects, or no torch file at all: never torch's advice
            raise SavedRecognizerError(said) from None     # to load it with weights_only=False (runs the file's code)
        if _cut_short(path):
            raise SavedRecognizerError(f"{path} cannot be read: the model file is cut short or damaged (an interrupted "
                                       f"copy or download); write it again with `icegan fit` ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        raise SavedRecognizerError(f"{said}, or a damaged one ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not _is_recognizer(payload):
        raise SavedRecognizerError(f"{path} is not an icegan recognizer (written by `icegan fit`); a LOSO run keeps "
                                   f"no model, and flow or GAN checkpoints are other files")
    if payload.get("version") is None:
        raise SavedRecognizerError(f"{path} is not an icegan model file (no format version; `icegan fit` writes one): "
                                   f"retrain it with `icegan fit`")
    version = payload["version"]
    if isinstance(version, bool) or not isinstance(version, int):   # '1', 1.0, True: never a version fit writes
        raise SavedRecognizerError(f"{path}: its format version is {version!r} ({type(version).__name__}), not an "
                                   f"integer as `icegan fit` writes (version {VERSION}): a damaged or hand-edited "
                                   f"model file; retrain it with `icegan fit`")
    if version != VERSION:
        raise SavedRecognizerError(f"{path} is an icegan recognizer of format version {version}; this "
                                   f"icegan reads version {VERSION}: retrain it with `icegan fit`")
    _check_payload(path, payload)
    try:
        cfg = from_dict(RecognizerConfig, dict(payload["config"]["model"]), prefix="model.", source=str(path))
    except ConfigError as exc:
        raise SavedRecognizerError(f"{path}: its saved model config no longer loads: {exc}") from None
    saved = payload.get("provenance") or {}
    if saved:
        # its factory loads: the config above is refused otherwise (RecognizerConfig loads model.module's factory)
        now = recognizer_provenance(cfg)
        if now != saved:
            raise SavedRecognizerError(
                f"{path}: the custom network's source changed since it was trained (module {saved.get('recognizer_module')!r}, "
                f"SHA-256 then {saved.get('recognizer_source_sha256')}, now {now.get('recognizer_source_sha256')}); "
                f"restore that code or retrain with `icegan fit`")
    clf = None
    if payload.get("sklearn_pickle") is not None:
        blob = payload["sklearn_pickle"]
        if hashlib.sha256(blob).hexdigest() != payload.get("sklearn_sha256"):
            raise SavedRecognizerError(f"{path}: the stored scikit-learn model does not match its checksum (a damaged "
                                       f"or edited file)")
        try:
            clf = pickle.loads(blob)
        except Exception as exc:      # a module or class gone (another scikit-learn), a damaged pickle
            raise SavedRecognizerError(f"{path}: its scikit-learn model cannot be loaded ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''}); was it fitted with another "
                                       f"scikit-learn version? Retrain it with `icegan fit`") from None
        _check_sklearn(path, clf, payload)
    try:
        fitted = FittedRecognizer.from_state(cfg, {"members": payload["members"]}, clf=clf, device=device,
                                             n_classes=len(payload["classes"]))
    except ValueError as exc:
        raise SavedRecognizerError(f"{path}: {exc}") from None
    meta = {k: payload.get(k) for k in ("config", "classes", "training", "provenance", "environment")}
    return fitted, meta
