"""Reading flow-network weights files: strict state-dict loading, and the shared reader of the project's own
``{"format", "config", "state_dict", "meta"}`` files, with errors that say what does not match."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

__all__ = ["load_state_dict_strict", "load_model_file", "load_state_dict_file", "read_torch_file", "save_torch_file",
           "check_architecture", "format_uses", "is_bare_state_dict"]


def _load_error_detail(exc: Exception) -> str:
    """The informative part of a ``torch.load`` error: for a file refused by the ``weights_only`` unpickler, the
    line after "WeightsUnpickler error:" (torch's advice about ``weights_only=False`` around it is left out, since
    the usual cause is a file that torch did not write); otherwise the first line."""
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:
        rest = [ln.strip() for ln in text.split("WeightsUnpickler error:", 1)[1].splitlines() if ln.strip()]
        return rest[0] if rest else "refused by the weights-only unpickler"
    return text.splitlines()[0] if text else ""


def read_torch_file(path: str | Path, label: str, weights_only: bool = True) -> object:
    """``torch.load`` of a user-given file on the CPU, with errors that name the file and its role.

    Args:
        path: the file. label: its role in messages (``--weights``, ``checkpoint``, ``train.init_weights``).
        weights_only: torch's safe unpickler (tensors, containers, numbers, strings); False only for the project's
            own checkpoints that hold other objects.

    Raises:
        FileNotFoundError: no such file. ValueError: torch cannot read it (not written by ``torch.save``, truncated,
            or holding objects the weights-only unpickler refuses), with torch's reason in one line.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{label}: file not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # unpickling error, truncated zip, ...
        raise ValueError(f"{label}: {p} cannot be read by torch.load; is it a file written by torch.save, and "
                         f"complete? ({type(exc).__name__}: {_load_error_detail(exc)})") from None


#: where files of the project's weights formats are given, for the message that refuses one given elsewhere:
#: format → (the network, the options that load it, the function that writes such a file); ``<its backbone>`` in
#: the options stands for the backbone a ``flownet-backbone-v1`` file records (:func:`format_uses`)
FORMAT_USES = {
    "srflownet-v1": ("SRFlowNet", "--weights of the flow commands (flow run without --decompose-method learned), "
                                  "flow.weights in a main-job config", "flownet.registry.save_srflownet"),
    "decflow-v1": ("DecFlow", "`icegan flow run --decompose --decompose-method learned --weights FILE`, "
                              "flow.decompose_weights (with flow.decompose=learned) in a main-job config",
                   "flownet.models.decflow.save_decflow"),
    "flownet-backbone-v1": ("flow backbone", "--model <its backbone> --weights FILE of the flow commands, "
                                             "flow.weights (with flow.method=<its backbone>) in a main-job config",
                            "flownet.registry.save_weights"),
}


def format_uses(fmt: str, backbone: object = None) -> str:
    """The options that load a file of format ``fmt`` (:data:`FORMAT_USES`, which must hold it), with
    ``<its backbone>`` replaced by ``backbone`` (the name a ``flownet-backbone-v1`` file records) when that is a
    non-empty string: ``"--model liteflownet2 --weights FILE of the flow commands, ..."``."""
    uses = FORMAT_USES[fmt][1]
    return uses.replace("<its backbone>", backbone) if isinstance(backbone, str) and backbone else uses


#: entries of a training run's ``last.pt`` besides ``model`` (the supervised and DecFlow trainers' ``optimizer`` and
#: ``step``, the self-supervised one's ``stage``), which no weights file holds
_CHECKPOINT_KEYS = ("optimizer", "step", "stage")


def training_checkpoint_keys(obj: object) -> list[str]:
    """The keys of ``obj`` when it is a training run's checkpoint (``last.pt``: ``model`` with ``optimizer``,
    ``step`` or ``stage``, no ``format``); empty for anything else (a weights file, a bare state dict)."""
    if not (isinstance(obj, dict) and "model" in obj and "format" not in obj
            and any(k in obj for k in _CHECKPOINT_KEYS)):
        return []
    return [str(k) for k in obj]


def training_checkpoint_fix(path: Path, keys: list[str], what: str, fix: str | None = None) -> str:
    """The message for a training checkpoint ``path`` (its ``keys``) given where weights are read: ``"P is a
    training checkpoint (keys), not <what>: <fix>"``; ``fix`` None: ``"use <its folder>/weights.pt (...) instead"``
    (a flownet run's ``last.pt``, whose run writes that file)."""
    if fix is None:
        fix = f"use {path.parent / 'weights.pt'} (the weights its run writes when it ends) instead"
    return f"{path} is a training checkpoint ({', '.join(keys)}), not {what}: {fix}"


def _folder_entry(path: Path, fmt: str | None) -> str:
    """Why the ``.pt`` file ``path`` of a folder does not load as weights of format ``fmt`` (None: any weights
    file), read with mmap (its tensors are not read); empty when it loads."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip file torch wrote, cut short, ...
        return "cannot be read by torch.load"
    if training_checkpoint_keys(obj):
        return "a training checkpoint"
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}, not a weights file"
    if fmt is not None and obj.get("format") != fmt:
        return f"format {obj.get('format')!r}"
    return ""


def missing_weights(path: str | Path, fmt: str | None = None) -> str:
    """How a weights path that is not a file is wrong, to follow ``"<what> weights "``: ``"not found: P"``, or for a
    folder (a training run's, given for the weights file in it) ``"P is a folder, not a file: give a weights file in
    it (weights.pt)"``, listing only the files that load (of format ``fmt`` when given; never a training
    checkpoint), else why none does (``"... holds no weights file that loads here (last.pt: a training
    checkpoint)"``)."""
    p = Path(path)
    if not p.is_dir():
        return f"not found: {p}"
    why = {f.name: _folder_entry(f, fmt) for f in sorted(p.glob("*.pt")) if f.is_file()}
    loads = [name for name, reason in why.items() if not reason]
    if loads:
        return f"{p} is a folder, not a file: give a weights file in it ({', '.join(loads)})"
    if not why:
        return f"{p} is a folder, not a file: it holds no .pt file"
    return (f"{p} is a folder, not a file, and holds no weights file that loads here ("
            + "; ".join(f"{name}: {reason}" for name, reason in why.items()) + ")")


def is_bare_state_dict(obj: object) -> bool:
    """Whether ``obj`` (what a ``.pt`` file holds) is a bare state dict: a non-empty dict of names to tensors, as
    ``torch.save(model.state_dict(), path)`` writes, rather than one of the project's weights files."""
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def format_mismatch(got: object, fmt: str) -> str:
    """Weights of format ``got`` where ``fmt`` is read, naming the network of each (:data:`FORMAT_USES`):
    ``"DecFlow weights (format 'decflow-v1'), not SRFlowNet weights (format 'srflownet-v1')"``."""
    def name(f: object) -> str:
        return f"{FORMAT_USES[f][0]} weights" if isinstance(f, str) and f in FORMAT_USES else "weights"
    return f"{name(got)} (format {got!r}), not {name(fmt)} (format '{fmt}')"


def check_architecture(theirs: dict, ours: dict, source: str, section: str = "model") -> None:
    """Refuse weights whose network config ``theirs`` (a weights file's ``config``) differs from ``ours`` (the
    model's ``config_dict()``) on a key that sets weights (:func:`flownet.models.srflownet.architecture_differences`:
    ``iters`` aside).

    Raises:
        ValueError: ``"<source>: another architecture than the run's <section> section: key=theirs
            (<section>.key: ours), ..."``, each differing key with both values.
    """
    from .srflownet import architecture_differences
    differ = architecture_differences(theirs, ours)
    if differ:
        raise ValueError(f"{source}: another architecture than the run's {section} section: " + ", ".join(
            f"{k}={theirs.get(k)!r} ({section}.{k}: {ours.get(k)!r})" for k in differ))


def save_torch_file(obj: object, path: str | Path, concurrent: bool = False) -> Path:
    """``torch.save`` of ``obj`` to ``path`` through a temporary file in the same folder, renamed when complete: a
    kill while saving leaves the previous file (a checkpoint to resume from) whole, never one cut short.
    ``concurrent``: several processes may write ``path`` at once (a cache shared by runs), each through its own
    temporary file (:func:`flownet.io.write_whole`)."""
    from ..io import write_whole

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:     # through Python's file: a full disk is an OSError (ENOSPC), not a RuntimeError
            torch.save(obj, fh)         # of torch's own writer ("unexpected pos") that names neither file nor cause
    return write_whole(path, save, concurrent=concurrent)


def load_state_dict_strict(module: nn.Module, sd: object, source: str, what: str = "the model") -> None:
    """Load ``sd`` into ``module`` only if its keys and tensor shapes match exactly.

    Each tensor is copied into the module's own (``nn.Module.load_state_dict``), which casts it to that tensor's
    dtype: a float16 file (the shipped DecFlow and LiteFlowNet2 weights) loads as float32 into a float32 module.

    Args:
        module: the network to load into.
        sd: a state dict (name → tensor) read from a weights file.
        source: what the weights came from (a path, ``train.init_weights: <path>``), put first in errors.
        what: how errors name the model (e.g. ``SRFlowNet({config})``).

    Raises:
        ValueError: ``sd`` is not a dict of tensors, keys are missing / unexpected / of the wrong shape (names
            ``source``, ``what`` and the first three keys of each kind with their counts), or a floating-point tensor
            holds NaN or Inf (names ``source``, the first such key, its count of bad values and the tensors').
    """
    if not is_bare_state_dict(sd) and not (isinstance(sd, dict) and not sd):    # {}: a module without tensors
        raise ValueError(f"{source}: not a state dict of tensors")
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        raise ValueError(f"{source}: weights do not match {what}: missing {missing[:3]} ({len(missing)}), "
                         f"unexpected {extra[:3]} ({len(extra)}), wrong shape {wrong[:3]} ({len(wrong)})")
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:     # refused here, not later as a network that "gave a flow with NaN"
        n = int((~torch.isfinite(sd[bad[0]])).sum())
        raise ValueError(f"{source}: weight {bad[0]!r} holds NaN or infinite values ({n} of its {sd[bad[0]].numel()}"
                         f"; {len(bad)} of the {len(sd)} tensors hold some): the training that wrote them diverged; give weights saved "
                         f"before it did (an earlier checkpoint's) or train again")
    module.load_state_dict(sd)


#: how a training run's ``last.pt`` is named in errors (:func:`load_resume_checkpoint`)
RESUME_LABEL = "the checkpoint to resume (remove it, or set train.resume=false, to train afresh)"


def load_resume_checkpoint(path: str | Path, model: nn.Module, keys: tuple[str, ...] = ()) -> dict:
    """Read a flow training run's ``last.pt`` and load its ``model`` weights into ``model`` (strictly); returns the
    checkpoint dict (optimiser state, step, ...) for the caller to restore the rest. The trainers call it once before
    they write into the run folder (on a throwaway model), so that a refused resume leaves the folder's config.yaml
    as the checkpoint's run wrote it.

    Args:
        path: the checkpoint. model: the network the run's config describes.
        keys: entries the caller reads besides ``model`` (``("optimizer", "step")``; the self-supervised trainer's
            ``("stage", "step", "elapsed_s")``): one missing means another kind of training wrote the file.

    Raises:
        ValueError: torch cannot read the file (damaged, cut short), it is not a checkpoint dict, it lacks one of
            ``keys`` (another trainer's checkpoint under this run name), or its weights do not fit ``model`` (the
            run's model settings changed since it was written); each message names the file and what to do.
    """
    ck = read_torch_file(path, RESUME_LABEL)
    if not isinstance(ck, dict):
        raise ValueError(f"{RESUME_LABEL}: {path} is not a training checkpoint (a dict holding the model's weights)")
    missing = [k for k in keys if k not in ck]
    if missing:
        raise ValueError(f"{RESUME_LABEL}: {path} has no {', '.join(missing)}: another kind of training (flow train "
                         f"--mode supervised or selfsup, or train-decflow) wrote it under this run name; give this run "
                         f"another name")
    load_state_dict_strict(model, ck.get("model"), f"{RESUME_LABEL}: {path}",
                           "the model this run's config describes (the run was started with other model settings: "
                           "resume with the same model section, or start a new run under another name)")
    return ck


def load_state_dict_file(module: nn.Module, path: str | Path, label: str, what: str = "the model",
                         plain: bool = True, fmt: str | None = None, section: str | None = None,
                         shaping: tuple[str, ...] | None = None) -> object:
    """Load the state dict a file holds into ``module`` (strictly, :func:`load_state_dict_strict`); returns what the
    file holds (e.g. a weights file's dict with its ``meta``).

    Args:
        module: the network. path: the file, read with ``torch.load(weights_only=True)``.
        label: how errors name the file's role (``train.init_weights``, ``weights of flow.module='...'``).
        what: how errors name the model.
        plain: also accept a bare state dict (a dict of tensors); otherwise the file must be a dict with a
            ``state_dict`` entry, as the project's weights files are.
        fmt: the weights format ``module`` loads (``srflownet-v1``): a file of another ``format`` is refused naming
            both (a file without one is read as it is).
        section: the config section ``module`` is built from (``model``); given, ``module`` has ``config_dict()``,
            and a file with a ``config`` is first compared with it on the file's keys (:func:`check_architecture`;
            a key an older file lacks is left to the strict load).
        shaping: with ``section``, the only config keys compared (those that set the tensors' shapes: a
            LiteFlowNet2's loss weights set none); None: every key but SRFlowNet's ``iters``.

    Raises:
        FileNotFoundError: the file does not exist. ValueError: unreadable (first line of torch's message), a
            training checkpoint (with ``fmt``, a flownet run's last.pt: names its run's weights.pt; without, a
            user's own: says to save its ``model`` part as a weights file), another format, another architecture
            (each differing key with both values), no state dict in it, or tensors that do not match ``module``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{label}: weights file not found: {p}")
    ck = read_torch_file(p, label)
    keys = training_checkpoint_keys(ck)
    if keys and fmt is not None:        # read as flownet's weights: a flownet run's last.pt (the run writes weights.pt)
        raise ValueError(f"{label}: {training_checkpoint_fix(p, keys, 'a weights file')}")
    if keys:                            # a custom network's: no run of ours wrote it, nor a weights.pt beside it
        raise ValueError(f"{label}: " + training_checkpoint_fix(
            p, keys, "a weights file", f"save its model part as one (in Python: torch.save(torch.load({str(p)!r})"
                                       f"['model'], 'weights.pt')) and give that file"))
    if fmt is not None and isinstance(ck, dict) and ck.get("format") not in (None, fmt):
        raise ValueError(f"{label}: {p}: {format_mismatch(ck.get('format'), fmt)}")
    if section is not None and isinstance(ck, dict) and isinstance(ck.get("config"), dict):
        ours = module.config_dict()     # on the file's keys: those an older file lacks built as the defaults then
        theirs = {k: v for k, v in ck["config"].items() if shaping is None or k in shaping}
        check_architecture(theirs, {k: ours.get(k) for k in theirs}, f"{label}: {p}", section)
    sd = ck.get("state_dict") if isinstance(ck, dict) else None
    if not isinstance(sd, dict):
        if not (plain and isinstance(ck, dict)):
            raise ValueError(f"{label}: {p} has no state_dict (not a flownet weights file)")
        sd = ck
    load_state_dict_strict(module, sd, f"{label}: {p}", what)
    return ck


def load_model_file(path: Path, fmt: str, what: str, model_cls: type, config_cls: type, hint: str) -> nn.Module:
    """Build a network from one of the project's weights files, with its ``meta`` attached, in eval mode on CPU.

    The file is a dict ``{"format": fmt, "config": {...}, "state_dict": {...}, "meta": {...}}`` (a training
    checkpoint ``{"model": <that dict>, ...}`` is accepted too), read with ``torch.load(weights_only=True)``.

    Args:
        path: the local file. fmt: the expected ``format`` value (e.g. ``srflownet-v1``).
        what: the network's name in messages (``SRFlowNet``, ``DecFlow``).
        model_cls, config_cls: the network class, built as ``model_cls(config_cls(**config))`` (config lists
            turned into tuples); ``config_cls`` is a dataclass.
        hint: the sentence after "weights not found: <path>." telling how to get weights.

    The tensors take the network's dtypes (:func:`load_state_dict_strict`): a float16 file gives a float32 network.

    Raises:
        FileNotFoundError: no such file (names it, then ``hint``).
        ValueError: unreadable file, a training checkpoint, a bare state dict (names ``fmt`` and the function that
            writes it), another format (with the options that load it; a backbone file's with its backbone),
            unknown config keys, no state dict, tensors that do not match the network built from the file's config,
            or NaN/Inf among them (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} weights {missing_weights(p, fmt)}. {hint}")
    article = "an" if what[:1].upper() in "AEIOUS" else "a"     # "an SRFlowNet", "a DecFlow"
    ckpt = read_torch_file(p, f"{article} {what} weights file")
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) and "format" in ckpt["model"] \
            and "format" not in ckpt:
        ckpt = ckpt["model"]  # a checkpoint holding a weights file as its model part
    keys = training_checkpoint_keys(ckpt)
    if keys:                  # last.pt of a training run: its model part is a bare state dict, without its config
        where = format_uses(fmt) if fmt in FORMAT_USES else "where the weights are given"
        raise ValueError(f"{training_checkpoint_fix(p, keys, f'{article} {what} weights file')}, with {where}")
    if is_bare_state_dict(ckpt):
        save = f" (written by {FORMAT_USES[fmt][2]}(model, path))" if fmt in FORMAT_USES else ""
        raise ValueError(f"{p}: a bare state dict (names to tensors, no format or config), not {article} {what} "
                         f"weights file: those hold {{'format': '{fmt}', 'config', 'state_dict', 'meta'}}{save}; load "
                         f"the state dict into the {what} it belongs to and save that network so")
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        uses = (f"; {FORMAT_USES[got][0]} weights load with {format_uses(got, ckpt.get('backbone'))}"
                if got in FORMAT_USES else "")
        raise ValueError(f"{p}: not {article} {what} weights file (format {got!r}, expected '{fmt}'){uses}")
    cfg_d = dict(ckpt.get("config") or {})
    unknown = [k for k in cfg_d if k not in config_cls.__dataclass_fields__]
    if unknown:
        raise ValueError(f"{p}: unknown {what} config keys {unknown}")
    model = model_cls(config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_d.items()}))
    sd = ckpt.get("state_dict")
    if not isinstance(sd, dict):
        raise ValueError(f"{p}: no state_dict in the weights file")
    load_state_dict_strict(model, sd, str(p), f"{what}({cfg_d})")
    model.meta = dict(ckpt.get("meta") or {})
    return model.eval()
