"""``icegan flow train|eval|run``: facial optical flow (the :mod:`flownet` package).

* ``icegan flow train --config configs/flow_srflownet_fdr.yaml [key=value ...]``: train SRFlowNet on
  synthetic facial flow (TensorBoard, checkpoints, resume) → ``runs/<name>/``.
  ``--mode selfsup --config configs/flow_selfsup.yaml``: self-supervised on unlabelled real CASME II pairs.
* ``icegan flow eval --model srflownet|liteflownet2|raft_small|raft_large|ptlflow:<name>|tvl1|farneback [--weights W] --data middlebury|synthetic-face|synthetic-generic
  [--root DIR] [--json OUT]``: metrics table + JSON ``{"mean": {...}, "pooled": {...}, "per_pair": [...],
  "pairs_per_s": x, "input_size", "precision", "iters"}`` (the settings the flow was computed with, resolved).
* ``icegan flow run IMG1 IMG2 --out flow.png [--flo flow.flo] [--model M] [--weights W]``;
  ``--decompose [--decompose-method ransac|learned]`` also writes ``flow_head.png`` / ``flow_expression.png``
  (and ``.flo``): head / expression decomposition (:mod:`flownet.decompose`, :mod:`flownet.models.decflow`);
  ``--decompose-method`` without ``--decompose`` is refused (exit 2), not ignored.
* ``icegan flow train-decflow --config configs/flow_decflow.yaml [key=value ...]``: train DecFlow.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from icegan.commands import add_out_hint, add_print_config, one_line_errors, print_config
from icegan.commands._numbers import integer, number, read_int
from icegan.paths import config_hint

#: the smallest image side (pixels) `icegan flow run` accepts: below it there is no neighbourhood to match
MIN_FLOW_SIDE = 8
#: ``--data`` choices of ``icegan flow eval``: flownet.evaluate.DATA_NAMES, repeated here so that building the parser
#: does not import torch (tests/test_cli_args.py checks that they agree)
FLOW_DATA_NAMES = ("middlebury", "kitti", "synthetic-face", "synthetic-generic")


def register(subparsers) -> None:
    """Add ``flow`` with its actions ``train``, ``eval``, ``run`` and ``train-decflow`` to the ``icegan`` parser.

    Args:
        subparsers: the ``add_subparsers`` action of the ``icegan`` parser. ``icegan flow`` without an action
            prints the ``flow`` help and exits with code 2.
    """
    p = subparsers.add_parser("flow", help="facial optical flow: train / eval / run SRFlowNet and baselines")
    sub = p.add_subparsers(dest="flow_command", metavar="ACTION")

    t = sub.add_parser("train", help="train a flow network (SRFlowNet, LiteFlowNet2, RAFT: train.backbone) on "
                                     "synthetic facial or generic flow, or SRFlowNet self-supervised on real clips",
                       description="Train a flow network (SRFlowNet, LiteFlowNet2 or RAFT: train.backbone) on "
                                   "synthetic facial pairs with exact flow (and generic synthetic scenes: "
                                   "data.generic_fraction), or, with --mode selfsup, SRFlowNet self-supervised on "
                                   "unlabelled real onset/apex frames. Run again, it resumes from its last.pt.")
    t.add_argument("--config", required=True, help=f"YAML config, e.g. {config_hint('flow_srflownet_fdr')}")
    t.add_argument("--mode", default="supervised", choices=["supervised", "selfsup"],
                   help="supervised: synthetic faces with exact flow (default); selfsup: unlabelled real "
                        f"CASME II pairs, teacher -> student distillation ({config_hint('flow_selfsup')})")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=10 train.device=cuda")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    add_print_config(t)
    add_out_hint(t, "flow train")   # --out: flow run's
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a flow method on Middlebury, KITTI, the synthetic facial test set or "
                                    "generic synthetic scenes",
                       description="Evaluate a flow method (a learned network, your own with --model custom, or the "
                                   "classical TV-L1 and Farneback) against ground-truth flow: Middlebury, KITTI, the "
                                   "synthetic facial test set or generic synthetic scenes. Reports the end-point error "
                                   "(EPE) and other flow metrics, per pair and averaged, and the speed.")
    e.add_argument("--model", default="srflownet", metavar="MODEL",
                   help="srflownet | liteflownet2 | raft_small | raft_large | ptlflow:<name> | tvl1 | farneback | "
                        "custom (your own network: --module); default srflownet")
    e.add_argument("--module", default=None, metavar="SPEC",
                   help="--model custom: 'package.module:factory' or 'path/to/file.py:factory', a callable (called "
                        "without arguments) returning a torch.nn.Module whose forward(img1, img2), images (B, C, H, W) "
                        "in [0, 1], returns the flow (B, 2, H, W) in pixels (or a list of refinements, the last "
                        "final); --weights: an optional file with its state dict")
    e.add_argument("--weights", default=None,
                   help="local weights file, or shipped:<name> for a named shipped checkpoint (srflownet and "
                        "liteflownet2 default: shipped:facial; raft_small, raft_large and ptlflow models need a file)")
    e.add_argument("--data", default="synthetic-face", choices=FLOW_DATA_NAMES,
                   help="middlebury, kitti (the 2012/2015 training pairs; --root needed, --n-pairs the first n), "
                        "synthetic-face (facial test subjects, exact flow) or synthetic-generic "
                        "(procedural textured layers in affine motion, test stream; flownet.data.synthetic_generic); "
                        "default synthetic-face")
    e.add_argument("--root", default=None,
                   help="data root: Middlebury folder (one folder per sequence, or the official download with "
                        "other-gt-flow/ beside other-data-gray/), KITTI folder (holding training/), or the shared "
                        "data root holding casme2/ "
                        "(default: $ICEGAN_SHARED_DATA, else ../shared/data beside a checkout; + /middlebury for "
                        "Middlebury); refused for synthetic-generic (its scenes are drawn, no file is read)")
    e.add_argument("--size", type=integer(), default=None,
                   help="synthetic pair side in pixels (default 128); refused for middlebury and kitti (their pairs "
                        "keep their own size)")
    e.add_argument("--n-pairs", type=integer(), default=None,
                   help="synthetic test pairs (kitti: the first n pairs); the first n of one fixed sequence, so 100 "
                        "are the first half of the default 200. The EPEs in the README and the repository's "
                        "docs/benchmarks.md use 100. Refused for middlebury (every sequence is scored)")
    e.add_argument("--max-motion", type=number(0, "pixels"), default=None, metavar="PX",
                   help="synthetic-generic only: largest object translation of the scenes in pixels (default 10; "
                        "the generic checkpoint was trained up to 24)")
    e.add_argument("--iters", type=integer(), default=None,
                   help="SRFlowNet / RAFT recurrent updates (default: model's); refused for tvl1, farneback, "
                        "liteflownet2 and custom")
    e.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="learned models: fp32 (default), bf16 (autocast; fast on CPUs with AVX512-BF16/AMX and on "
                        "GPUs), auto (bf16 where the device has native bf16 kernels); tvl1 and farneback run in "
                        "float32 and refuse the others")
    e.add_argument("--compile", action="store_true",
                   help="learned models: run the network through torch.compile (the warm-up pair compiles, about a "
                        "minute on a CPU; then faster: for long runs of same-sized pairs)")
    e.add_argument("--tta", default="none", choices=["none", "hflip"],
                   help="learned models: none (default) or hflip: average the flow with the un-mirrored flow of the "
                        "horizontally mirrored pair (twice the work; lower error, the repository's "
                        "docs/benchmarks.md 'Seventh pass')")
    e.add_argument("--input-size", default="native", metavar="auto|native|INT",
                   help="size the flow is computed at before it is scored at the pairs' size: native (default), auto "
                        "(the learned weights' training crop size), or a side in pixels (see icegan flow run --help)")
    e.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    e.add_argument("--threads", type=integer(), default=0, help="torch CPU threads (default 0: leave as is)")
    e.add_argument("--json", default=None,
                   help="write the results JSON here: every per-pair row (the table lists them up to 20 pairs) and "
                        "the resolved input_size, precision and iters")
    e.set_defaults(func=_eval)

    r = sub.add_parser("run", help="estimate the flow between two images",
                       description="Estimate the optical flow from img1 to img2 (e.g. onset to apex) with a learned "
                                   "network or a classical method; writes it as a colour-coded PNG (--out) and, with "
                                   "--flo, as a Middlebury .flo file.")
    r.add_argument("img1")
    r.add_argument("img2")
    r.add_argument("--out", required=True, help="colour-coded flow PNG")
    r.add_argument("--flo", default=None, help="also write Middlebury .flo")
    r.add_argument("--model", default="srflownet", metavar="MODEL",
                   help="srflownet | liteflownet2 | raft_small | raft_large | ptlflow:<name> | tvl1 | farneback | "
                        "custom (--module); default srflownet")
    r.add_argument("--module", default=None, metavar="SPEC", help="--model custom: as for icegan flow eval")
    r.add_argument("--weights", default=None, help="as for icegan flow eval (see its --help)")
    r.add_argument("--gray", action="store_true",
                   help="read the images as grey. Done anyway where the model was trained on grey frames: the shipped "
                        "weights and any trained with icegan flow (their meta 'gray'), DecFlow, tvl1 and farneback "
                        "(as icegan flow eval reads its frames), a custom network whose first convolution takes 1 "
                        "channel; colour frames go to torchvision / ptlflow checkpoints and other custom networks. "
                        "Also done, with a note, when one image is grey and the other colour")
    r.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="learned models: fp32 (default), bf16 or auto (see icegan flow eval --help); tvl1 and "
                        "farneback refuse bf16 and auto")
    r.add_argument("--tta", default="none", choices=["none", "hflip"],
                   help="learned models: none (default) or hflip, the mirrored-pair average (see icegan flow eval --help)")
    r.add_argument("--input-size", default="native", metavar="auto|native|INT",
                   help="size the flow is computed at: native (default, the images' size), auto (the square crop size "
                        "the learned weights were trained at, 128 for the shipped SRFlowNet: use it for small face "
                        "crops), or a side in pixels; the flow is resized back to the images and rescaled")
    r.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    r.add_argument("--key", action="store_true",
                   help="also write the colour key of the picture(s), OUT stem + _key (hue = direction, full colour "
                        "at the largest motion, in pixels)")
    r.add_argument("--decompose", action="store_true",
                   help="also write the head and expression flow (OUT stem + _head / _expression; same for --flo)")
    r.add_argument("--decompose-method", default=None, choices=["ransac", "learned"],
                   help="with --decompose only (refused without it): ransac (default): global similarity fit of "
                        "--model's flow (flownet.decompose); learned: the DecFlow network (--weights = DecFlow "
                        "weights, default flownet/weights/decflow_facial.pt)")
    r.set_defaults(func=_run)

    td = sub.add_parser("train-decflow", help="train DecFlow (SRFlowNet with head + expression decoders)",
                        description="Train DecFlow, SRFlowNet with a head-motion and an expression-motion decoder, on "
                                    "synthetic facial pairs whose head and expression flows are both known (the "
                                    "learned decomposition of flow.decompose=learned). Run again, it resumes from "
                                    "its last.pt.")
    td.add_argument("--config", required=True, help=f"YAML config, e.g. {config_hint('flow_decflow')}")
    td.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_minutes=5")
    td.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    add_out_hint(td, "flow train-decflow")
    td.set_defaults(func=_train_decflow)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _input_size(text: str):
    """``--input-size`` value: ``auto`` / ``native`` as given, ASCII digits as an int of at least 8 (pixels).

    Raises:
        ValueError: anything else, naming ``--input-size`` (before any image or weights are read).
    """
    t = str(text).strip()
    if t in ("auto", "native"):
        return t
    try:
        side = read_int(t)                  # ASCII digits only, as every numeric flag (icegan.commands._numbers)
    except ValueError:
        side = 0
    if side >= 8:
        return side
    raise ValueError(f"--input-size {text}: give auto (the weights' training size), native (the images' size) or "
                     f"the side in pixels at which the flow is computed, at least 8")


@one_line_errors("icegan flow {flow_command}")
def _train(args: argparse.Namespace) -> int:
    from flownet.selfsup import SelfSupConfig, train_selfsup
    from flownet.train import FlowTrainConfig, train
    from icegan.config import ConfigError, load_config
    mode = getattr(args, "mode", "supervised")
    kinds = {"supervised": FlowTrainConfig, "selfsup": SelfSupConfig}
    try:
        cfg = load_config(kinds[mode], args.config, args.overrides)
    except ConfigError as exc:
        from icegan.commands import config_kind
        other = "selfsup" if mode == "supervised" else "supervised"
        commands = {"supervised": "icegan flow train", "selfsup": "icegan flow train --mode selfsup"}
        if config_kind(args.config, [commands[other]]) is None:     # is the file itself one of the other mode?
            from icegan.commands import config_error_with_hint   # or of another command (train-decflow, ...)?
            raise config_error_with_hint(exc, args.config, commands[mode]) from None
        raise ValueError(f"{exc}; {args.config} is a config for --mode {other}: run icegan flow train --mode {other} "
                         f"--config {args.config}") from None
    if args.print_config:
        return print_config(cfg)
    _check_resume_checkpoint(cfg)
    try:
        (train_selfsup if mode == "selfsup" else train)(cfg, progress=not args.no_progress)
    except FileNotFoundError as exc:
        if str(exc).startswith("train.init_weights") and (made_by := _init_weights_made_by(cfg.train.init_weights)):
            exc.add_note(made_by)
        raise
    return 0


def _init_weights_made_by(value) -> str:
    """``"(runs/flow_selfsup/weights.pt is made by `icegan flow train --mode selfsup --config ...`)"``: the shipped
    flow-training config whose ``<out_dir>/<name>/weights.pt`` is the missing ``value``, else ``""``. Called only
    where the init-weights file is missing (the FileNotFoundError of ``train.init_weights``), so it does not check
    that ``value`` exists."""
    import os
    import shlex

    from flownet.models.decflow import DecFlowTrainConfig
    from flownet.selfsup import SelfSupConfig
    from flownet.train import FlowTrainConfig
    from icegan.commands import CONFIG_KINDS, config_kind
    from icegan.config import load_config
    from icegan.paths import shipped_config_dir
    p = Path(str(value or ""))
    if p.name != "weights.pt":              # the caller's FileNotFoundError: no such file
        return ""
    trainings = {"icegan flow train": FlowTrainConfig, "icegan flow train --mode selfsup": SelfSupConfig,
                 "icegan flow train-decflow": DecFlowTrainConfig}
    try:
        configs = sorted(shipped_config_dir().glob("*.yaml"))
    except FileNotFoundError:                # an install without its configs
        return ""
    for config in configs:
        kind = config_kind(config, list(trainings))
        if kind is None:
            continue
        cfg = load_config(trainings[kind], config)
        if os.path.abspath(Path(cfg.out_dir) / cfg.name / "weights.pt") == os.path.abspath(p):
            run = CONFIG_KINDS[kind][1].format(path=shlex.quote(config_hint(config.stem, runnable=True)))
            return f"({p} is made by `{run}`)"
    return ""


def _check_resume_checkpoint(cfg) -> None:
    """A training run's ``<out_dir>/<name>/last.pt`` that ``train.resume`` would continue from, read once first: empty
    or cut short, it is named in one line with what to do (a traceback of torch.load's otherwise)."""
    from flownet.models.state_dict import read_torch_file
    ckpt = Path(cfg.out_dir) / cfg.name / "last.pt"
    if cfg.train.resume and ckpt.is_file():
        read_torch_file(ckpt, "the checkpoint to resume (train.resume=true; remove it, or set train.resume=false, to "
                              "train afresh)")


@one_line_errors("icegan flow {flow_command}")
def _eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from flownet.devices import resolve_device
    from flownet.evaluate import evaluate, format_table
    from flownet.io import check_output_path
    if args.json:                        # checked before the evaluation, not after it
        check_output_path(args.json, "--json (the results file)", example="eval.json")
    if args.threads < 0:                 # torch.set_num_threads raised a RuntimeError (a traceback) on it
        raise ValueError(f"--threads must be >= 0 (torch CPU threads; 0 = leave as is), got {args.threads}")
    if args.iters is not None and args.iters < 1:     # else the model's 'iters must be >= 1', naming no flag
        raise ValueError(f"--iters must be >= 1 (recurrent updates; leave it out for the model's own count), "
                         f"got {args.iters}")
    if args.data.startswith("synthetic") and args.n_pairs == 0:     # else 'no pairs to evaluate' (< 0: load_pairs)
        raise ValueError(f"--n-pairs must be >= 1 for --data {args.data} (the synthetic test pairs to make), "
                         f"got {args.n_pairs}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")     # auto → cuda or cpu; a device this machine lacks: one line
    res = evaluate(args.model, data=args.data, root=args.root, weights=args.weights, device=device,
                   size=args.size, n_pairs=args.n_pairs, iters=args.iters, precision=args.precision,   # None: not typed
                   compile=args.compile, input_size=_input_size(args.input_size), tta=args.tta,
                   max_motion=args.max_motion, module=args.module, module_key="--module")
    print(format_table(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


@one_line_errors("icegan flow {flow_command}")
def _run(args: argparse.Namespace) -> int:
    method = getattr(args, "decompose_method", None)
    if method is not None and not getattr(args, "decompose", False):     # it would be ignored: no decomposition
        raise ValueError(f"--decompose-method {method} applies to --decompose only (without it the total flow of "
                         f"--model is written, not decomposed); add --decompose, or leave --decompose-method out")
    from flownet.devices import resolve_device
    from flownet.io import save_flow_image, write_flo
    from flownet.metrics import flow_magnitude
    args.device = resolve_device(args.device, "--device")     # auto → cuda or cpu, for every estimator built below
    _input_size(getattr(args, "input_size", "native"))        # a bad --input-size named before the images are read
    _check_run_outputs(args)                                  # before the flow is computed, not after
    (i1, i2), data = _read_run_inputs(args)     # refuses frames of two sizes (a note when their EXIF tags differ)
    if min(i1.shape[-2:]) < MIN_FLOW_SIDE:        # a 1x1 pair gave a 'flow' of 1.4 px: nothing to estimate there
        raise ValueError(f"{args.img1} and {args.img2} are {i1.shape[-1]}x{i1.shape[-2]} pixels; optical flow needs "
                         f"images of at least {MIN_FLOW_SIDE}x{MIN_FLOW_SIDE} pixels")
    # --model custom; its messages name --module, as typed
    module = {"module": args.module, "module_key": "--module"} if getattr(args, "module", None) else {}
    from flownet.registry import NonFiniteFlowError
    try:
        if getattr(args, "decompose", False):
            return _run_decomposed(args, i1, i2, module, data)
        est = _estimator(args, i1, module)
        i1, i2 = _frames_for(est, args, (i1, i2), data)       # grey for a network trained on grey frames
        with _within_memory(est, i1, args.device, f"--model {args.model}"):
            flow = est.estimate(i1[None], i2[None])[0].cpu()
    except NonFiniteFlowError as exc:      # a custom network's own refusal (it names --module): the frames added
        raise ValueError(f"frames {args.img1} and {args.img2}: {exc}; nothing written") from None
    _check_finite(flow, f"--model {args.model}")
    save_flow_image(args.out, flow)
    peak = float(flow_magnitude(flow).max())
    print(f"wrote {args.out} (max |flow| {peak:.2f} px)")
    if args.flo:
        write_flo(args.flo, flow)
        print(f"wrote {args.flo}")
    _write_key(args, peak)
    return 0


def _check_run_outputs(args: argparse.Namespace) -> None:
    """``flow run``: every file it will write (``--out``, ``--flo``, their ``_head`` / ``_expression`` parts with
    ``--decompose``, the ``--key`` picture) can be written: ValueError naming the option and path otherwise (a folder,
    a file where a folder should be, a picture name without an image extension, one of the input images img1 / img2),
    before any flow is computed."""
    from flownet.io import check_output_path
    parts = ("total", "head", "expression") if getattr(args, "decompose", False) else ("total",)
    for part in parts:
        check_output_path(_part_path(args.out, part), "--out (the colour-coded flow picture)", image=True)
        if args.flo:
            check_output_path(_part_path(args.flo, part), "--flo (the Middlebury .flo file)")
    if getattr(args, "key", False):
        check_output_path(_part_path(args.out, "key"), "--key (the colour key beside --out)", image=True)
    if args.flo and Path(args.flo).resolve() == Path(args.out).resolve():
        raise ValueError(f"--out and --flo are the same file ({args.out}); give the .flo its own name")
    written = [("--out", _part_path(args.out, part)) for part in parts]
    written += [("--flo", _part_path(args.flo, part)) for part in parts] if args.flo else []
    written += [("--key", _part_path(args.out, "key"))] if getattr(args, "key", False) else []
    inputs = {Path(args.img1).resolve(): "img1", Path(args.img2).resolve(): "img2"}
    for flag, path in written:          # an output over an input image: the frame would be lost after it is read
        if Path(path).resolve() in inputs:
            raise ValueError(f"{flag} {path} is the input image {inputs[Path(path).resolve()]}; the flow would "
                             f"replace it: give {flag} a new file name")


def _read_run_inputs(args: argparse.Namespace):
    """``flow run``'s two frames as :func:`flownet.io.read_image` reads them ((C, H, W) tensors, C = 1 with
    ``--gray`` or a classical ``--model``, else 3), and the two files' bytes (for :func:`_frames_for`), each file read
    once and decoded once (:func:`flownet.frame_io.read_frame`: a JPEG cut short decodes with grey rows, and a garbage
    flow, with only a warning of libjpeg's on stderr otherwise). Both read as grey, with a note, when one is grey and
    the other colour (decoded again from the bytes in memory).

    OpenCV turns a frame by its EXIF Orientation tag as it reads it (:mod:`flownet.frame_io`), so two frames read as
    a viewer shows them: frames with different tags (no tag counts as 1, as stored) line up when each tag is right
    (a frame saved turned by its tag, the other untagged), and are read so with a note naming both tags (a wrong tag
    would turn one frame against the other).

    Raises:
        ValueError: naming the file: missing, a folder, empty, cut short or not an image, or a 16-bit image whose
            values stay below 4096 (10- or 12-bit data: read as 8 bits, at most 16 grey levels); the two frames
            differ in size as read (naming a quarter-turn EXIF Orientation tag that swapped a frame's width and
            height: :func:`flownet.frame_io.quarter_turn_note`).
    """
    import cv2
    import numpy as np

    from flownet.frame_io import file_orientation, narrow_16_bit_max, quarter_turn_note, read_frame
    from flownet.io import image_tensor
    grey = args.gray or _classical(args)       # tvl1 / farneback work on grey: read so, as flow eval reads frames
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    data, imgs = [], []
    for path in (args.img1, args.img2):
        try:
            data.append(Path(path).read_bytes())
        except OSError as exc:          # read_frame's words for a file it cannot read
            raise ValueError(f"cannot read image {Path(path)}: {exc.strerror or exc}") from None
        img = read_frame(path, flag | cv2.IMREAD_ANYDEPTH, data=data[-1])     # 8-bit files: as with `flag`
        if img.dtype != np.uint8:       # 16-bit (or float) data: its full values checked, then read as 8 bits
            top = narrow_16_bit_max(read_frame(path, cv2.IMREAD_UNCHANGED, data=data[-1]))
            if top is not None:
                raise ValueError(f"{path} is a 16-bit image whose values reach only {top} of 65535 (10- or "
                                 f"12-bit data?): read as 8 bits it holds at most {top // 256 + 1} grey levels "
                                 f"and its flow is unreliable; scale both images to the full 16-bit range (12-bit "
                                 f"data: times 16) or save them as 8-bit")
            img = read_frame(path, flag, data=data[-1])
        imgs.append(image_tensor(img))
    grey1 = not grey and _is_grey(imgs[0])
    if not grey and grey1 != _is_grey(imgs[1]):             # grey values against colour ones: a wrong flow
        grey, colour = (args.img1, args.img2) if grey1 else (args.img2, args.img1)
        print(f"note: {grey} is greyscale and {colour} colour: both read as grey (as with --gray)")
        imgs = _grey_again(args, data)
    from flownet.data.orientation import TAG_EFFECTS
    tags = [file_orientation(path, data=raw) for path, raw in zip((args.img1, args.img2), data)]
    turns = [t if t in TAG_EFFECTS else 1 for t in tags]     # none, 1 or a value outside 1-8: read as stored
    i1, i2 = imgs
    if i1.shape[-2:] != i2.shape[-2:]:
        turned = quarter_turn_note((args.img1, args.img2), "the other frame", tags) if turns[0] != turns[1] else ""
        raise ValueError(f"images differ in size: {args.img1} is {i1.shape[-1]}x{i1.shape[-2]} pixels, {args.img2} "
                         f"{i2.shape[-1]}x{i2.shape[-2]}; flow needs two frames of one size (crop or resize them "
                         f"alike)" + turned)
    if turns[0] != turns[1]:
        print(f"note: {_orientation_note(args.img1, args.img2, tags)}")
    return imgs, data


def _classical(args: argparse.Namespace) -> bool:
    """Whether ``--model`` names a classical method (tvl1, farneback; an unknown name: False, refused later)."""
    from flownet.registry import canonical_name
    try:
        return canonical_name(args.model) in ("tvl1", "farneback")
    except ValueError:
        return False


def _frames_for(est, args: argparse.Namespace, imgs, data):
    """The frames ``est`` (an estimator or decomposer of ``flow run``) is given: ``imgs`` ((C, H, W) tensors of
    :func:`_read_run_inputs`) as read, or, when they are colour and ``est`` takes grey frames
    (:func:`flownet.registry.trained_on_grey`: the shipped and repository-trained weights, DecFlow, the classical
    methods), the files' bytes ``data`` decoded again as grey, as ``--gray`` reads them (the shipped SRFlowNet on
    Middlebury RubberWhale's colour frames: EPE 2.05 against 1.77 on its grey frames)."""
    from flownet.registry import trained_on_grey
    if imgs[0].shape[0] == 1 or not trained_on_grey(est):
        return imgs
    return _grey_again(args, data)


def _grey_again(args: argparse.Namespace, data: list[bytes]):
    """``flow run``'s two frames (``args.img1``, ``args.img2``) decoded again as grey from their files' bytes
    ``data`` (:func:`_read_run_inputs`), as ``--gray`` reads them: two (1, H, W) tensors."""
    import cv2

    from flownet.frame_io import read_frame
    from flownet.io import image_tensor
    return [image_tensor(read_frame(path, cv2.IMREAD_GRAYSCALE, data=raw))
            for path, raw in zip((args.img1, args.img2), data)]


def _orientation_note(img1, img2, tags) -> str:
    """The note of ``flow run`` for frames ``img1`` and ``img2`` whose EXIF Orientation ``tags`` (None for a file
    without one; None, 1 and values outside 1-8 are read as stored) differ."""
    from flownet.data.orientation import TAG_EFFECTS

    def said(tag) -> str:
        if tag in TAG_EFFECTS:
            return f"{tag}, which {TAG_EFFECTS[tag]} as it is read"
        return f"{'none' if tag is None else tag}, read as stored"
    return (f"the two frames carry different EXIF Orientation tags ({img1}: {said(tags[0])}; {img2}: "
            f"{said(tags[1])}): each is read turned as its tag says (as a viewer shows it); if a tag is wrong, one "
            f"frame is turned against the other and the flow is wrong")


def _estimator(args: argparse.Namespace, img, module: dict):
    """``flow run``'s flow estimator: ``--model`` with ``--weights``, ``--device``, ``--precision`` and ``--tta``,
    computing at ``--input-size`` for images of ``img``'s size ((C, H, W)); ``module``: as for
    :func:`_run_decomposed`."""
    import flownet
    from flownet.registry import refuse_classical_precision
    from flownet.resolution import at_input_size
    refuse_classical_precision(args.model, args.precision)
    est = flownet.get_estimator(args.model, weights=args.weights, device=args.device, precision=args.precision,
                                tta=getattr(args, "tta", "none"), **module)
    return at_input_size(est, _input_size(getattr(args, "input_size", "native")), tuple(img.shape[-2:]))


def _device_memory(device) -> int | None:
    """Bytes of memory of ``device`` (a ``torch.device``): the CPU's physical memory (``os.sysconf``), a CUDA GPU's
    ``total_memory``; None where it is not known (another device, or a system without those ``sysconf`` names)."""
    import os

    import torch
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):
            return None
    return None


def _bytes(n: float) -> str:
    """``n`` bytes in decimal units, e.g. ``"67.2 GB"``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _check_correlation_memory(est, img, device, label: str) -> None:
    """Refuse, before any flow is computed, a pair too large for the all-pairs correlation volume of ``est``'s
    network (SRFlowNet, RAFT, DecFlow: a torchvision ``CorrBlock``; other estimators are not checked).

    The volume holds one value for every pair of cells of the feature grid, ``(h/k)·(w/k)`` cells (``k`` the
    network's downsampling, 8; the working size: ``--input-size``, else the images' ``img`` (C, H, W) size, padded up
    to a multiple of ``k``): ``((h/k)·(w/k))²`` values of 4 bytes (2 under bf16 autocast), for each image of the batch
    (two with ``--tta hflip``). Building it holds the product and its scaled copy at once (torchvision's
    ``CorrBlock._compute_corr_volume``), twice the volume; the pooled levels of its pyramid (a quarter, a sixteenth,
    ... of it) come after the product is freed. Two 3840x2160 frames: 67.2 GB, 134.4 GB to build.

    Raises:
        ValueError: the bytes to build it exceed the memory of ``device`` (:func:`_device_memory`), giving the
            estimate, the memory, and ``--input-size`` as the way out.
    """
    import math

    import torch
    from torchvision.models.optical_flow.raft import CorrBlock

    from flownet.resolution import ResizedEstimator
    model = getattr(est, "model", None)
    if not isinstance(model, torch.nn.Module) or not any(isinstance(m, CorrBlock) for m in model.modules()):
        return
    h, w = est.size if isinstance(est, ResizedEstimator) else tuple(int(v) for v in img.shape[-2:])
    k = int(getattr(getattr(model, "config", None), "downsample", 8) or 8)
    gh, gw = math.ceil(h / k), math.ceil(w / k)
    cells = gh * gw
    batch = 2 if getattr(est, "tta", "none") == "hflip" else 1
    width = 2 if getattr(est, "precision", "fp32") == "bf16" else 4
    volume = batch * cells * cells * width
    memory = _device_memory(device)
    if memory is None or 2 * volume <= memory:
        return
    kind = "bfloat16" if width == 2 else "float32"
    pairs = " (the pair and its mirror, --tta hflip)" if batch == 2 else ""
    raise ValueError(f"{label} computes the flow of {w}x{h} pixels through an all-pairs correlation volume of its "
                     f"{gw}x{gh} feature grid: ({gw}*{gh})^2 {kind} values = {_bytes(volume)}{pairs}, and about "
                     f"{_bytes(2 * volume)} while it is built, more than the {_bytes(memory)} of memory of {device}. "
                     f"Compute the flow at a smaller size with --input-size (auto: the weights' training size, or a "
                     f"side in pixels such as 512; the flow is resized back to the frames), or crop the frames")


class _within_memory:
    """Context manager around ``flow run``'s computation by ``est`` of the flow of images ``img`` ((C, H, W)) on
    ``device``: on entry, :func:`_check_correlation_memory` refuses (ValueError) a pair too large for ``est``'s
    all-pairs correlation volume, before any flow is computed; inside, an allocation that fails (``MemoryError``;
    torch's ``RuntimeError`` of "can't allocate memory" or "out of memory", ``torch.OutOfMemoryError`` included)
    becomes one ValueError naming ``label`` (the method), the images' size and ``--input-size``; any other error
    passes unchanged."""

    def __init__(self, est, img, device, label: str):
        self.est, self.img = est, img
        self.size, self.device, self.label = f"{img.shape[-1]}x{img.shape[-2]}", device, label

    def __enter__(self):
        _check_correlation_memory(self.est, self.img, self.device, self.label)
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None:
            return False
        said = str(exc)
        if not (isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
                words in said.lower() for words in ("can't allocate memory", "out of memory")))):
            return False
        torch_says = " ".join(said.split())[:200]
        raise ValueError(f"ran out of memory computing the flow of {self.size} pixels with {self.label} on "
                         f"{self.device} ({torch_says}); compute it at a smaller size with --input-size (auto, or a "
                         f"side in pixels such as 512), or crop the frames") from None


def _check_finite(flow, source: str) -> None:
    """ValueError naming ``source`` (the flow's method) when the flow ((2, H, W) tensor) holds NaN or infinite values."""
    import torch
    bad = int((~torch.isfinite(flow)).any(0).sum())
    if bad:
        raise ValueError(f"{source} gave a flow with NaN or infinite values at {bad} of {flow[0].numel()} "
                         f"pixels; nothing written")


def _write_key(args: argparse.Namespace, scale: float) -> None:
    """``--key``: the colour key of the pictures just written (:func:`flownet.io.save_flow_key`), beside OUT."""
    if not getattr(args, "key", False):
        return
    from flownet.io import save_flow_key
    key = _part_path(args.out, "key")
    shown = scale if scale > 0 else 1.0          # a flow with no motion: the key of 1 px, as the pictures are drawn
    save_flow_key(key, shown)
    print(f"wrote {key} (the colour key: full colour at {shown:.2f} px)")


def _is_grey(img) -> bool:
    """Whether a (3, H, W) image of :func:`flownet.io.read_image` is grey: a greyscale file, read as colour, has three
    equal channels."""
    return bool((img[0] == img[1]).all() and (img[1] == img[2]).all())


def _part_path(path: str, part: str) -> str:
    """``flow.png`` → ``flow_head.png`` (the total keeps the given name)."""
    from pathlib import Path
    p = Path(path)
    return str(p) if part == "total" else str(p.with_name(f"{p.stem}_{part}{p.suffix}"))


def _run_decomposed(args: argparse.Namespace, i1, i2, module: dict, data) -> int:
    """``flow run --decompose``: total, head and expression flow pictures (and .flo files); ``module``: the
    ``get_estimator`` argument of ``--model custom`` (empty otherwise); ``data``: the two files' bytes (frames read
    again as grey for a network trained on grey frames, :func:`_frames_for`).

    Raises:
        ValueError: ``--model``, ``--module``, ``--precision``, ``--tta`` or ``--input-size`` given (other than their
            defaults) with ``--decompose-method learned`` (they set the RANSAC method's base estimator only; DecFlow
            is its own network); a pair too large for the network's correlation volume, or memory running out
            (as for plain ``flow run``).
    """
    from flownet.decompose import get_decomposer
    from flownet.io import save_flow_image, write_flo
    from flownet.metrics import flow_magnitude
    if getattr(args, "decompose_method", None) == "learned":      # None (not given): ransac
        # DecFlow is its own network: the base estimator's options cannot apply, and are not dropped silently
        given = [flag for flag, value, default in (("--model", args.model, "srflownet"),
                                                   ("--module", getattr(args, "module", None), None),
                                                   ("--precision", args.precision, "fp32"),
                                                   ("--tta", getattr(args, "tta", "none"), "none"),
                                                   ("--input-size", getattr(args, "input_size", "native"), "native"))
                 if value != default]
        if given:
            raise ValueError(f"{', '.join(given)} set the base flow estimator of --decompose-method ransac; the "
                             "learned decomposition (DecFlow) is its own network (--weights: its weights) and runs "
                             "in fp32 at the images' own size: leave them out")
        dec = get_decomposer("learned", weights=args.weights, device=args.device)
        net, label = dec, "DecFlow (--decompose-method learned)"
    else:     # the base flow is built as plain `flow run` builds it: precision, test-time flips and input size apply
        net, label = _estimator(args, i1, module), f"--model {args.model}"
        dec = get_decomposer("ransac", base=net)
    i1, i2 = _frames_for(net, args, (i1, i2), data)
    with _within_memory(net, i1, args.device, label):      # net: the network whose correlation volume is checked
        parts = dec.decompose(i1[None], i2[None])
    names = ("total", "head", "expression")
    peak = {part: float(flow_magnitude(parts[part][0]).max()) for part in names}
    # one colour scale for the three pictures, so a weak part looks weak (each saturated at its own maximum before)
    scale = max(peak.values())
    for part in names:
        flow = parts[part][0].cpu()
        out = _part_path(args.out, part)
        save_flow_image(out, flow, max_flow=scale if scale > 0 else None)
        print(f"wrote {out} ({part}, max |flow| {peak[part]:.2f} px)")
        if args.flo:
            flo = _part_path(args.flo, part)
            write_flo(flo, flow)
            print(f"wrote {flo}")
    print(f"the three pictures share one colour scale: full colour at {scale:.2f} px")
    _write_key(args, scale)
    return 0


@one_line_errors("icegan flow {flow_command}")
def _train_decflow(args: argparse.Namespace) -> int:
    from flownet.models.decflow import DecFlowTrainConfig, train_decflow
    from icegan.commands import load_command_config   # a flow train, gan train, main-job ... file: says which
    cfg = load_command_config(DecFlowTrainConfig, args.config, args.overrides, "icegan flow train-decflow")
    _check_resume_checkpoint(cfg)
    train_decflow(cfg, progress=not args.no_progress)
    return 0
