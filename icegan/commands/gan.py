"""``icegan gan train``, ``icegan gan eval`` and ``icegan generate`` (ICE-GAN).

Examples::

    icegan gan train --config configs/gan_casme2.yaml data.holdout_subjects=[sub01]
    icegan gan eval --checkpoint runs/gan_casme2/checkpoints/last.pt --data casme2 --json runs/gan_casme2/eval.json
    icegan gan eval --checkpoint CKPT --data DIR_OF_ONSET_FACES
    icegan generate --checkpoint CKPT --onset FACE.png --class positive -n 8 --out DIR
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path

from icegan.commands import add_out_hint, add_print_config, one_line_errors, print_config
from flownet.user_numbers import SEED_MAX, is_ascii_digits
from icegan.commands._numbers import integer


def register(subparsers) -> None:
    """Add ``gan`` (with ``train``/``eval``) and ``generate`` to the ``icegan`` parser."""
    gan = subparsers.add_parser("gan", help="ICE-GAN: train the apex-face generator, evaluate it")
    gsub = gan.add_subparsers(dest="gan_command", metavar="{train,eval}")

    tr = gsub.add_parser("train", help="train ICE-GAN on onset/apex face pairs (the shared CASME II copy, or "
                                             "data.source=prepared: your CASME II, SAMM, SMIC or clip list)",
                         description="Train ICE-GAN (identity-aware generator with graph reasoning, capsule "
                                     "discriminator) to synthesise apex faces from onset faces, on the shared CASME II "
                                     "copy or, with data.source=prepared, on your prepared CASME II, SAMM, SMIC or "
                                     "clip list. --fold SUBJECT holds one subject out, as a LOSO fold does. The run "
                                     "folder keeps checkpoints/last.pt (resumed when run again), sample grids and "
                                     "TensorBoard logs.")
    tr.add_argument("--config", default=None,
                    help="YAML config (GanConfig; default: the shipped gan_casme2.yaml; `icegan configs` lists them)")
    tr.add_argument("--fold", default=None,
                    help="hold out this subject (LOSO fold), e.g. sub01: it replaces the config's "
                         "data.holdout_subjects (refused together with a data.holdout_subjects override); one "
                         "subject only: hold out several with data.holdout_subjects=[sub01,sub02]")
    tr.add_argument("--device", default=None, help="override train.device (cpu, cuda, cuda:1, auto)")
    add_print_config(tr)
    add_out_hint(tr, "gan train", default_config="gan_casme2")   # --out: gan eval's, not here
    tr.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.epochs=2")
    tr.set_defaults(func=_train)

    ev = gsub.add_parser("eval", help="identity preservation, controllability, ExpCaps MER, speed, grids",
                         description="Evaluate an ICE-GAN checkpoint on the subjects it did not train on (its held-out "
                                     "subjects, or --subjects): identity preservation of the synthetic apex faces, "
                                     "controllability (is the asked class recognised), the capsule discriminator's "
                                     "ExpCaps recognition, synthesis speed, and sample grids.")
    ev.add_argument("--checkpoint", required=True, help="checkpoint written by icegan gan train")
    ev.add_argument("--data", default="casme2",
                    help="'casme2' (the checkpoint's held-out subjects of its own data: the shared CASME II copy, "
                         "or the datasets it was prepared from with data.source=prepared; the default), a CASME II "
                         "folder with manifest.csv, or a folder of onset face images (refused when one is an onset "
                         "or apex of the checkpoint's training pairs or the mirror image of one; other frames of its "
                         "training clips, shifted or re-cropped copies and other images of its training subjects are "
                         "not caught)")
    ev.add_argument("--subjects", nargs="*", default=None,
                    help="subjects to evaluate, e.g. sub01 or samm/006 (default: the checkpoint's holdout_subjects)")
    ev.add_argument("--n-per-class", type=integer(1, meaning="synthetic faces per onset and class"), default=2,
                    help="synthetic faces per onset and class (default 2)")
    ev.add_argument("--seed", default=0,
                    type=integer(0, SEED_MAX, "a seed of numpy's random generator, as the recognizers take it"),
                    help="seed of the generator's noise and of the recognizers the metrics train (default 0; same "
                         "seed, same synthetic faces and metrics; the noise is drawn in order over the evaluated "
                         "onsets, so the faces are not those icegan generate --seed makes for the same onsets)")
    ev.add_argument("--out", default=None,
                    help="folder for the grids and eval.md (default: eval/ beside the checkpoint's folder, e.g. "
                         "runs/NAME/eval for runs/NAME/checkpoints/last.pt)")
    ev.add_argument("--json", default=None, help="write the metrics as JSON here")
    ev.add_argument("--device", default="auto", help="auto (default: cuda when present, else cpu), cpu, cuda or cuda:N")
    ev.add_argument("--no-cross-dataset", dest="cross_dataset", action="store_false",
                    help="skip the independent controllability check (an STSTNet trained on the SAMM and SMIC "
                         "features of megc2019_htnet, applied to TV-L1 features of the synthetic apexes)")
    ev.set_defaults(func=_eval)

    ge = subparsers.add_parser(
        "generate", help="synthesise apex faces of a class from onset faces",
        description="Synthesise apex faces of a chosen class from onset faces with a trained ICE-GAN generator (the "
                    "checkpoints/last.pt of icegan gan train, or a main-job fold's folds/<dataset>_<subject>/gan/"
                    "checkpoints/last.pt). The onset faces should be face crops as the training faces were (cropped, "
                    "aligned); each is read grey and resized to the generator's size as its training faces were "
                    "(the checkpoint's data section: the CASME II crops of icegan gan train with INTER_AREA; "
                    "prepared faces with INTER_AREA when shrinking, INTER_CUBIC when enlarging), the aspect ratio "
                    "not kept (a 231x282 crop becomes 128x128, as in training); a line says what was resized. With "
                    "-n above 1, a warning says when the draws of every onset and class are copies (within 1 grey "
                    "level): a generator that ignores its noise input, as after short training (icegan gan eval's "
                    "z_diversity about 0); the faces are still written.")
    ge.add_argument("--checkpoint", required=True,
                    help="an ICE-GAN checkpoint (last.pt) written by icegan gan train or by a main-job fold with the "
                         "GAN on")
    ge.add_argument("--onset", required=True, nargs="+", help="onset face image(s) and/or folder(s) of them")
    ge.add_argument("--class", dest="cls", required=True,
                    help="negative|positive|surprise or 0|1|2, or 'all' (a generator of another label set, from a "
                         "main-job run of data.labels=casme2_5 or samm_5: its classes, e.g. happiness|disgust|"
                         "repression|surprise|others, or 0..4; the checkpoint names them)")
    ge.add_argument("-n", type=integer(1, meaning="faces per onset and class"), default=1,
                    help="faces per onset (and class; default 1), each from its own noise; a generator that ignores "
                         "its noise makes copies, and a warning says so")
    ge.add_argument("--seed", type=integer(0, SEED_MAX, "a seed of the generator's noise"), default=0,
                    help="seed of the generator's noise (default 0): each face's noise is drawn from (seed, its output "
                         "NAME, class, draw NN), so the same seed gives the same NAME_CLASS_NN.png whatever other "
                         "onsets, classes or -n the command has")
    ge.add_argument("--out", required=True, help="output folder (PNG files NAME_CLASS_NN.png, NAME: the onset's file "
                                                 "name without suffix, SUBJECT_CLIP_imgN for a CASME II frame "
                                                 "SUBJECT/CLIP/imgN.jpg; a name met again gets -2, -3, ... in the "
                                                 "order given; generated.csv beside them names each file's onset "
                                                 "image, class, draw, seed and whether the onset is a face the "
                                                 "generator trained on); a file of these names already there is "
                                                 "refused, see --overwrite")
    ge.add_argument("--overwrite", action="store_true",
                    help="replace output files of the same names already in --out (other files there are kept)")
    ge.add_argument("--device", default="auto", help="auto (default: cuda when present, else cpu), cpu, cuda or cuda:N")
    ge.set_defaults(func=_generate)

    gan.set_defaults(func=lambda a: (gan.print_help(), 2)[1])


@one_line_errors("icegan gan train")
def _train(args: argparse.Namespace) -> int:
    from torch.utils.tensorboard import SummaryWriter

    from icegan.config import override_key, save_config, where_set
    from icegan.gan.pairs import load_casme2_pairs, load_prepared_pairs
    from icegan.data.prepare import refuse_replaced_prepare
    from icegan.gan.trainer import (GanConfig, apply_num_threads, build_models, check_resumable,
                                    class_pair_counts, gan_precision, train_gan)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.fold is not None:
        if not args.fold.strip():
            raise ValueError("--fold needs a subject to hold out, e.g. --fold sub01 (without --fold the config's "
                             "data.holdout_subjects are held out)")
        given = [o for o in overrides if override_key(o).startswith("data.holdout_subjects.")
                 or where_set("data.holdout_subjects", None, [o]) == "command line"]
        if given:       # --fold would replace it without a word
            raise ValueError(f"--fold {args.fold} and the override {given[0]} both set data.holdout_subjects (--fold "
                             f"replaces the config's held-out subjects): give one of them")
        overrides.append(_fold_override(args.fold))
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.config is None:
        from icegan.paths import shipped_config
        args.config = str(shipped_config("gan_casme2"))
    from icegan.commands import load_command_config       # a file of train.py or icegan loso: says which
    cfg = load_command_config(GanConfig, args.config, overrides, "icegan gan train")
    if cfg.data.source == "prepared":
        # load_prepared_pairs prepares the faces at data.img_size, in gray: a data.prepare.size or color it would
        # replace is refused now, as train.py does, not recorded in the run's config.yaml as if it had been used
        refuse_replaced_prepare(cfg.data.prepare, cfg.data.img_size, args.config, overrides)
    if args.print_config:
        return print_config(cfg)
    # a device this machine lacks, or train.amp_dtype=fp16 on a CPU: a message now, not after loading
    precision = gan_precision(_device(cfg.train.device, "train.device"), cfg.train)
    from icegan.labels import DEFAULT_LABELS, LABEL_SETS
    megc = LABEL_SETS[DEFAULT_LABELS].classes
    if cfg.model.n_classes != len(megc) or (cfg.model.classes and tuple(cfg.model.classes) != megc):
        # the pairs carry MEGC2019 classes (class3) only: another class count or other names would condition the
        # generator on classes it never sees, and icegan generate would name them after another label set
        named = f" model.classes={list(cfg.model.classes)}" if cfg.model.classes else ""
        raise ValueError(f"model.n_classes={cfg.model.n_classes}{named}: icegan gan train trains on its pairs' "
                         f"classes, MEGC2019's three classes ({', '.join(megc)}), so model.n_classes must be 3 and "
                         f"model.classes empty or those names; a generator of another label set is trained per fold "
                         f"by the main job: icegan train --config C data.labels=casme2_5|samm_5 gan.enabled=true")
    try:                                            # model settings they refuse (data.img_size 30): before any work
        build_models(cfg)
    except ValueError as exc:
        raise ValueError(f"data.img_size={cfg.data.img_size} or the model section: {exc}") from None
    if cfg.loss.perceptual == "vgg16":               # the weights file: before the pairs load and the folder is written
        from icegan.gan.perceptual import vgg16_weights_file
        vgg16_weights_file(cfg.loss.vgg_weights, "loss.vgg_weights")
    run = Path(cfg.out_dir) / cfg.name
    if cfg.data.source == "prepared":        # your own copy of a release, in its official layout
        pairs = load_prepared_pairs(cfg.data.prepare, cfg.data.img_size, cfg.data.apex_neighbors)
    else:
        pairs = load_casme2_pairs(cfg.data.root, cfg.data.img_size, cfg.data.apex_neighbors)
    train = pairs.by_subjects(cfg.data.train_subjects, exclude=cfg.data.holdout_subjects)
    if len(train) == 0:         # before a run folder is made; train_gan would say only 'no training pairs'
        have = sorted(set(pairs.subjects))
        raise ValueError(f"no training pairs: the data's {len(pairs)} pairs are of the subjects {', '.join(have)}, and "
                         f"data.holdout_subjects={list(cfg.data.holdout_subjects)} (--fold) with data.train_subjects="
                         f"{cfg.data.train_subjects} leaves none of them to train on; hold out fewer subjects")
    onset, apex, labels = train.tensors()
    # a checkpoint of other pairs, or one cut short: refused before the folder changes
    resume = [check_resumable(run, cfg, onset, apex, labels)]      # last.pt read (None: none to resume)
    if resume[0] is None:       # a fresh start: the discarded run's grids and events are not left beside the new ones
        cleared = _clear_previous_run(run)
        if cleared:
            print(f"starting afresh in {run}: removed the previous run's {cleared}")
    save_config(cfg, run / "config.yaml")
    split = {"train_subjects": sorted(set(train.subjects)), "holdout_subjects": cfg.data.holdout_subjects,
             "n_train_pairs": len(train),
             "n_train_pairs_per_class": dict(zip(megc, class_pair_counts(labels, len(megc)))),
             "n_train_clips": len(set(train.clips)),
             "skipped_clips": [list(s) for s in pairs.skipped],
             # the CPU threads it trains with (set here as train_gan sets them: train.num_threads, null keeps the
             # environment's; the checkpoint records the same count): the weights' last bits depend on them
             "torch_threads": apply_num_threads(cfg.train),
             # the precision it trains in (autocast, its dtype, the gradient scaler), not only the amp keys asked
             # for: train.amp=true on a CPU trains in float32 (the checkpoint records the same)
             "precision": precision}
    from flownet.io import write_text_whole
    write_text_whole(run / "split.json", json.dumps(split, indent=1))   # never left cut short
    print(f"training ICE-GAN on {len(train)} pairs ({split['n_train_clips']} clips, "
          f"{len(split['train_subjects'])} subjects) -> {run}")
    with SummaryWriter(str(run / "tb")) as writer:
        # the checkpoint handed over, not read again (popped: not held here while the training runs)
        state = train_gan(onset, apex, labels, cfg, out_dir=run, log=writer, resume_payload=resume.pop())
    last = state.history[-1] if state.history else {}
    # a run the time budget cut short says so: a rerun with the same budget trains only one more epoch
    cut = state.stopped_by_time
    done = (f"stopped at epoch {state.epochs_done} of {cfg.train.epochs} by train.max_minutes (counted across "
            f"resumes); rerun with a larger train.max_minutes or 0 to finish" if cut else
            f"done: {state.epochs_done} epochs")
    print(f"{done}; last epoch " +
          " ".join(f"{k}={v:.4g}" if k == "lr" else f"{k}={v:.4f}"      # a small lr: 7.3e-05, not 0.0001
                   for k, v in last.items() if isinstance(v, float)))
    print(f"checkpoint: {run / 'checkpoints' / 'last.pt'}")
    return 0


#: characters that make ``--fold`` text more than one subject id once put in the YAML override (a list, a mapping)
_FOLD_SPECIAL = set(",[]{}:")


def _fold_override(fold: str) -> str:
    """The ``data.holdout_subjects`` override of ``--fold SUBJECT``: a one-item list written as JSON (a YAML flow
    sequence of one quoted string), so the subject is taken as typed (``--fold 006`` stays the string ``"006"``).

    Args:
        fold: one subject id, e.g. ``sub01`` or ``samm/006``.
    Returns:
        ``'data.holdout_subjects=["sub01"]'``.
    Raises:
        ValueError: ``fold`` holds ``, [ ] { } :`` or whitespace (it would be read as several subjects or a nested
            list); the message names those characters once each ("whitespace" for any kind) and says how to hold
            out several subjects.
    """
    bad = sorted({c for c in fold if c in _FOLD_SPECIAL or c.isspace()})
    if bad:
        shown = " ".join(dict.fromkeys("whitespace" if c.isspace() else repr(c) for c in bad))
        several = [s for s in re.split(r"[\s,\[\]{}]+", fold) if s] or ["sub01", "sub02"]
        raise ValueError(f"--fold {fold!r}: --fold takes one subject (e.g. sub01 or samm/006), and this holds "
                         f"{shown}; to hold out several subjects give the override data.holdout_subjects=["
                         f"{','.join(several)}] without --fold")
    return f"data.holdout_subjects={json.dumps([fold])}"


def _clear_previous_run(run: Path) -> str | None:
    """Remove what an earlier ``icegan gan train`` run wrote into ``run/samples`` (its ``epoch_*.png`` grids) and
    ``run/tb`` (its ``events.out.tfevents.*`` files), for a run that starts afresh there (``train.resume=false``, or no
    checkpoint to resume); other files are kept, and each folder is removed only when that leaves it empty.

    Returns:
        what was removed, in words (e.g. ``"4 sample grid(s) (samples/) and 1 TensorBoard event file(s) (tb/)"``),
        or None when there was nothing.
    """
    said = []
    for sub, pattern, what in (("samples", "epoch_*.png", "sample grid(s)"),
                               ("tb", "events.out.tfevents.*", "TensorBoard event file(s)")):
        folder = run / sub
        if not folder.is_dir():
            continue
        files = [f for f in folder.glob(pattern) if f.is_file()]
        for f in files:
            f.unlink()
        if files:
            said.append(f"{len(files)} {what} ({sub}/)")
        if not any(folder.iterdir()):
            folder.rmdir()
    return " and ".join(said) or None


@one_line_errors("icegan generate")
def _generate(args: argparse.Namespace) -> int:
    from flownet.io import write_image
    from icegan.gan.generate import draws_are_copies, load_onsets
    from icegan.gan.pairs import to_tensor
    from icegan.gan.synthesis import synthesize, to_uint8
    from icegan.gan.trainer import load_checkpoint, untrained_classes

    out = Path(args.out)
    if out.exists() and not out.is_dir():       # else a FileExistsError traceback after the faces are made
        raise ValueError(f"--out {out} is a file; --out is the folder the faces are written to")
    _check_checkpoint_arg(args.checkpoint)
    g, _, gcfg, payload = load_checkpoint(args.checkpoint, _device(args.device))
    _check_out_not_onset(out, args.onset)       # after the checkpoint's checks, before any face is made
    names_k = gcfg.model.class_names()          # the classes the generator is conditioned on
    every = str(args.cls).strip().lower() == "all"
    classes = list(range(g.n_classes)) if every else [_class_of(args.cls, names_k, args.checkpoint)]
    onset_arg = args.onset[0] if len(args.onset) == 1 else args.onset
    from icegan.gan.pairs import list_face_files
    sources = list_face_files(onset_arg)                    # listed once: the files of the faces, in their order
    faces, names, fitted = load_onsets(sources, gcfg)       # resized as the generator's training faces were
    if fitted:
        print(f"note: {fitted}")
    untrained = untrained_classes(payload)                  # None: a checkpoint that did not record its counts
    if untrained is not None:
        missing, counts = untrained
        shown = ", ".join(f"{names_k[c]} {n}" for c, n in enumerate(counts))
        for c in (c for c in classes if c in missing):
            print(f"note: class {names_k[c]}: the generator had no training pair of it (0 of its {sum(counts)} "
                  f"training pairs; {shown}), so its faces of this class come from a condition it never learned")
    in_training = _training_face_warning(faces, sources, gcfg, args.checkpoint)
    unique = unique_names(names)
    renamed = [u for n, u in zip(names, unique) if n != u]
    if renamed:                 # A/face.png and B/face.png, or x.png and x.jpg: else the outputs overwrite each other
        print(f"note: {len(renamed)} onset image(s) share a file name with an earlier one; their outputs are named "
              f"{', '.join(renamed)} (in the order given)")
    names = unique
    # synthesize's order: onset-major, then class, then draw
    files = [out / f"{name}_{names_k[c]}_{j:02d}.png" for name in names for c in classes for j in range(args.n)]
    there = [f for f in files if f.exists()] if out.is_dir() else []
    if there and not args.overwrite:        # before any face is made: an earlier run's faces are not mixed in
        raise ValueError(f"--out {out} already holds {len(there)} of the {len(files)} files this would write (e.g. "
                         f"{there[0].name}), from an earlier run: give another --out, or --overwrite to replace them")
    # each face's noise from (seed, its output name, class, draw): the same face whatever else the command makes
    apex, src, cls = synthesize(g, to_tensor(faces), classes, args.n, seed=args.seed, noise_keys=names)
    out.mkdir(parents=True, exist_ok=True)
    imgs = to_uint8(apex)
    for img, path in zip(imgs, files):
        write_image(path, img)     # OSError naming the file if it fails
    if draws_are_copies(imgs, args.n):     # one line for the run: its faces are still written, as asked
        print(f"warning: the {args.n} draws of each of the {len(imgs) // args.n} (onset, class) are copies (within 1 "
              f"grey level): the generator of this checkpoint ignores its noise input ({args.checkpoint}; icegan gan "
              f"eval reports it as z_diversity about 0), so these are not {args.n} different synthetic samples per "
              f"onset and class: use -n 1, or a checkpoint trained longer")
    rows = [{"file": files[i].name, "source": os.path.abspath(sources[int(s)]), "class": names_k[int(c)],
             "draw": i % args.n, "seed": args.seed, "checkpoint": os.path.abspath(args.checkpoint),
             "in_gan_training": in_training[int(s)]}
            for i, (s, c) in enumerate(zip(src.tolist(), cls.tolist()))]
    table = _write_generated_csv(out, rows)
    print(f"wrote {len(imgs)} synthetic apex faces ({g.img_size}x{g.img_size}) to {out}; {table.name} maps each to "
          f"its onset file")
    return 0


#: the columns of ``generated.csv``, the table ``icegan generate`` writes beside its faces
GENERATED_COLUMNS = ("file", "source", "class", "draw", "seed", "checkpoint", "in_gan_training")


def _training_face_warning(faces, sources: list[Path], gcfg, checkpoint: str) -> list[str]:
    """Warn (one printed line) about onset images that are faces the generator trained on, the check ``icegan gan
    eval --data DIR`` refuses them by (:func:`icegan.gan.evaluate.training_face_matches`): their synthetic apexes
    are not faces of an unseen person.

    Args:
        faces: (N, S, S) uint8 onset faces as :func:`icegan.gan.generate.load_onsets` read them from ``sources``.
        gcfg: the checkpoint's :class:`icegan.gan.trainer.GanConfig`.
    Returns:
        N values of generated.csv's ``in_gan_training``: ``yes``, ``no``, or ``unknown`` for all when the
        checkpoint's training pairs are not on this machine (data.source=prepared: its faces are read from a cache
        already there only, never prepared here) or cannot be read (a PrepareError, a ValueError, an OSError); a
        note says why.
    """
    from icegan.data.prepare import cache_root_of
    from icegan.gan.evaluate import checkpoint_training_pairs, training_face_matches, training_face_text

    def unknown(why) -> list[str]:
        print(f"note: the onsets could not be compared with the training faces of {checkpoint} ({why}); "
              f"generated.csv's in_gan_training says unknown")
        return ["unknown"] * len(faces)

    logging.disable(logging.WARNING)        # the loader's lines on training clips it skips: not about these onsets
    try:
        train = checkpoint_training_pairs(gcfg, cache_only=True)   # preparing them is minutes of face detection
    except (OSError, ValueError) as exc:    # PrepareError, SheetError are ValueErrors
        return unknown(exc)
    finally:
        logging.disable(logging.NOTSET)
    if train is None:
        return unknown(f"its training faces are not prepared on this machine: no cache of its data.prepare datasets "
                       f"at {gcfg.data.img_size} pixels in {cache_root_of(gcfg.data.prepare)}; prepare them with "
                       f"icegan prepare (the config: the data.prepare section of its run's config.yaml, with "
                       f"size={gcfg.data.img_size} color=gray) or icegan gan eval --checkpoint {checkpoint}, then run "
                       f"icegan generate again")
    hits, _ = training_face_matches(faces, train)
    if hits:
        print(f"warning: {len(hits)} of the {len(faces)} onset images are training faces of {checkpoint} "
              f"({training_face_text(hits, sources)}): their synthetic apexes are not faces of a person it has not "
              f"seen (icegan gan eval --data refuses them); "
              f"generated.csv marks them in_gan_training=yes")
    return ["yes" if i in hits else "no" for i in range(len(faces))]


def _write_generated_csv(out: Path, rows: list[dict]) -> Path:
    """Write ``out/generated.csv``, one row per face in ``out`` that ``icegan generate`` wrote: ``file`` (its name in
    ``out``), ``source`` (the onset image it was made from, an absolute path: two clips' ``img46.jpg`` give
    ``sub01_EP02_01f_img46_*`` and ``sub02_EP01_11f_img46_*``: :func:`icegan.gan.generate.onset_name`), ``class``
    (the class name), ``draw`` (0..n-1, the ``NN`` of its name), ``seed`` (``--seed``), ``checkpoint`` and
    ``in_gan_training`` (``yes`` when the onset is a face the generator trained on, ``no``, or ``unknown``:
    :func:`_training_face_warning`). A table already there (an earlier run into ``out``, ``--overwrite``) keeps its
    rows of files this run did not write that are still in ``out``; one without a ``file`` column (not this table) is
    replaced, with a note. Written whole (:func:`flownet.io.write_text_whole`): a kill leaves the old table or the
    new one.

    Args:
        out: the output folder (exists).
        rows: this run's rows, dicts of :data:`GENERATED_COLUMNS`.
    Returns:
        the table's path.
    Raises:
        OSError: it cannot be written (names the file).
    """
    import csv
    import io

    from flownet.io import write_text_whole
    path = out / "generated.csv"
    new = {r["file"] for r in rows}
    kept: list[dict] = []
    if path.is_file():
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if "file" not in (reader.fieldnames or []):
                    raise ValueError("no 'file' column")
                kept = [r for r in reader if r.get("file") and r["file"] not in new and (out / r["file"]).is_file()]
        except (UnicodeDecodeError, ValueError, csv.Error) as exc:
            print(f"note: {path} was not a generated.csv of icegan generate ({exc}); replaced")
            kept = []
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(GENERATED_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(kept + rows)
    return write_text_whole(path, buf.getvalue())


def _check_out_not_onset(out: Path, onsets: list[str]) -> None:
    """Refuse an ``--out`` folder that is an ``--onset`` folder, or the folder of an ``--onset`` file: a rerun
    (``--overwrite``; the files given again, e.g. by the shell's ``faces/*.png``) would read the faces written there
    as onsets too (3 faces, then 12, then 39). A subfolder of an onset folder is allowed: a folder's images are
    listed flat (:func:`icegan.gan.pairs.list_face_files`), and the faces are written flat into ``--out``. Folders
    are compared resolved (``faces/.``, ``x/../faces`` and links name the same folder).

    Raises:
        ValueError: naming ``--out`` and the ``--onset`` folder or file.
    """
    where = out.resolve()
    for o in map(Path, onsets):
        if o.is_dir() and o.resolve() == where:
            raise ValueError(f"--out {out} is the --onset folder {o}: a rerun would read the faces written there "
                             f"as onsets too; give another --out (a subfolder of it will do)")
        if o.is_file() and o.parent.resolve() == where:      # the file's own folder, the one a glob lists
            raise ValueError(f"--out {out} is the folder of the --onset file {o}: a rerun with that folder's images "
                             f"(e.g. the shell's {o.parent / '*'}{o.suffix}) would read the faces written there as "
                             f"onsets too; give another --out (a subfolder will do)")


def _class_of(text: str, classes: tuple[str, ...], checkpoint: str) -> int:
    """The id of ``--class`` among the generator's ``classes``: a name (any case) or an id 0..K-1 in ASCII digits
    (:func:`flownet.user_numbers.is_ascii_digits`, the rule of :func:`icegan.gan.pairs.class_id`: no sign, not ``²``
    or ``٣``, and, unlike a feature table's label cell (:func:`flownet.user_numbers.whole_number_digits`), no zero
    fraction: ``2.0`` is refused, as typed on a command line); blanks around it are ignored.

    Raises:
        ValueError: neither (names the checkpoint and its classes).
    """
    t = str(text).strip().lower()
    if t in classes:
        return classes.index(t)
    if is_ascii_digits(t) and int(t) < len(classes):
        return int(t)
    raise ValueError(f"unknown class {text!r} (--class): the generator of {checkpoint} is conditioned on the classes "
                     f"{', '.join(classes)}: use one of them, 0..{len(classes) - 1} or 'all'")


def unique_names(names: list[str]) -> list[str]:
    """``names`` made unique: a name met again gets ``-2``, ``-3``, ... (the first suffix no other name has); names
    met once are kept as they are. ``["img46", "img46", "x"]`` → ``["img46", "img46-2", "x"]``."""
    taken, seen, out = set(names), set(), []
    for name in names:
        if name in seen:
            k = 2
            while f"{name}-{k}" in taken:
                k += 1
            name = f"{name}-{k}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


def _check_checkpoint_arg(path: str) -> None:
    """Refuse a ``--checkpoint`` that is a folder (a run folder of ``icegan gan train`` given for its checkpoint),
    naming the checkpoint file inside it where there is one.

    Raises:
        ValueError: ``path`` is a folder; the message names ``checkpoints/last.pt`` (or ``last.pt``) in it if present.
    """
    p = Path(path)
    if not p.is_dir():
        return
    found = next((c for c in (p / "checkpoints" / "last.pt", p / "last.pt") if c.is_file()), None)
    hint = (f"give the checkpoint file in it: --checkpoint {found}" if found else
            "give a checkpoint file, the checkpoints/last.pt of an icegan gan train run folder")
    raise ValueError(f"--checkpoint {p} is a folder; {hint}")


def _device(name: str, key: str = "--device"):
    """The ``torch.device`` of ``name`` (ValueError, reported in one line, for a device this machine lacks)."""
    from flownet.devices import resolve_device
    return resolve_device(name, key)


@one_line_errors("icegan gan eval")
def _eval(args: argparse.Namespace) -> int:
    from flownet.io import check_output_path
    from icegan.gan.evaluate import metrics_markdown, run_eval

    if args.json:                        # checked before the evaluation, not after it
        check_output_path(args.json, "--json (the metrics file)", example="eval.json")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; --out is the folder the grids and report are written to")
    _check_checkpoint_arg(args.checkpoint)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    metrics = run_eval(args.checkpoint, args.data, subjects=args.subjects, n_per_class=args.n_per_class,
                       seed=args.seed, out_dir=args.out, device=_device(args.device),
                       cross_dataset=args.cross_dataset)
    text = json.dumps(metrics, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text, encoding="utf-8")
    print(metrics_markdown(metrics))      # the table; every number, as JSON, only into --json (not a screenful here)
    print(f"wrote {metrics['report']} and the grids beside it" + (f"; the metrics as JSON to {args.json}"
                                                                   if args.json else
                                                                   "; --json FILE writes every metric as JSON"))
    return 0
