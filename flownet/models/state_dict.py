"""Reading flow-network weights files: strict state-dict loading, and the shared reader of the project's own
``{"format", "config", "state_dict", "meta"}`` files, with errors that say what does not match."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

__all__ = ["load_state_dict_strict", "load_model_file", "load_state_dict_file", "read_torch_file", "save_torch_file"]


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


def missing_weights(path: str | Path) -> str:
    """How a weights path that is not a file is wrong, to follow ``"<what> weights "``: ``"not found: P"``, or for a
    folder (a training run's, given for the weights file in it) ``"P is a folder, not a file: give a weights file in
    it (last.pt, weights.pt)"``."""
    p = Path(path)
    if not p.is_dir():
        return f"not found: {p}"
    pts = sorted(f.name for f in p.glob("*.pt") if f.is_file())
    return f"{p} is a folder, not a file: " + (f"give a weights file in it ({', '.join(pts)})" if pts
                                                else "it holds no .pt file")


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
        ValueError: ``sd`` is not a dict of tensors, or keys are missing / unexpected / of the wrong shape
            (names ``source``, ``what`` and the first three keys of each kind with their counts).
    """
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{source}: not a state dict of tensors")
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        raise ValueError(f"{source}: weights do not match {what}: missing {missing[:3]} ({len(missing)}), "
                         f"unexpected {extra[:3]} ({len(extra)}), wrong shape {wrong[:3]} ({len(wrong)})")
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
                         plain: bool = True) -> object:
    """Load the state dict a file holds into ``module`` (strictly, :func:`load_state_dict_strict`); returns what the
    file holds (e.g. a weights file's dict with its ``meta``).

    Args:
        module: the network. path: the file, read with ``torch.load(weights_only=True)``.
        label: how errors name the file's role (``train.init_weights``, ``weights of flow.module='...'``).
        what: how errors name the model.
        plain: also accept a bare state dict (a dict of tensors); otherwise the file must be a dict with a
            ``state_dict`` entry, as the project's weights files and training checkpoints are.

    Raises:
        FileNotFoundError: the file does not exist. ValueError: unreadable (first line of torch's message), no state
            dict in it, or tensors that do not match ``module``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{label}: weights file not found: {p}")
    ck = read_torch_file(p, label)
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
        ValueError: unreadable file, another format, unknown config keys, no state dict, or tensors that do not
            match the network built from the file's config (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} weights {missing_weights(p)}. {hint}")
    article = "an" if what[:1].upper() in "AEIOUS" else "a"     # "an SRFlowNet", "a DecFlow"
    ckpt = read_torch_file(p, f"{article} {what} weights file")
    if isinstance(ckpt, dict) and "model" in ckpt and "format" not in ckpt:
        ckpt = ckpt["model"]  # a training checkpoint: take its model part
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{p}: not {article} {what} weights file (format {got!r}, expected '{fmt}')")
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
