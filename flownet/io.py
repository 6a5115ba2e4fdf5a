"""Optical-flow file I/O and pictures.

* Middlebury ``.flo``: little-endian float32 magic ``202021.25``, int32 width, int32 height, then
  ``height * width * 2`` float32 values, u and v interleaved per pixel, row-major. Values with an
  absolute value above ``1e9`` mean "unknown" (Middlebury convention) and become invalid pixels.
* KITTI 16-bit flow PNG: three uint16 channels (stored as B, G, R by OpenCV); ``u = (R - 2**15) / 64``,
  ``v = (G - 2**15) / 64``, valid where ``B > 0``.
* Colour-coded flow pictures via :func:`torchvision.utils.flow_to_image` (Baker et al. colour wheel).

Flow arrays are (H, W, 2) float32 numpy arrays in pixels (channel 0 = u horizontal, 1 = v vertical)
at the file level; :func:`flow_to_tensor` converts to the (2, H, W) torch layout used elsewhere.
"""
from __future__ import annotations

import codecs
import os
import unicodedata
from pathlib import Path

import numpy as np

__all__ = ["FLO_MAGIC", "UNKNOWN_FLOW_THRESH", "read_flo", "write_flo", "read_kitti_png",
           "write_kitti_png", "flow_to_color", "save_flow_image", "flow_to_tensor", "read_image", "check_output_path",
           "write_whole", "write_text_whole", "read_npz_whole", "read_npz_cache", "image_tensor", "remove_stale",
           "remove_stale_temps_of", "STALE_TMP_SECONDS", "PROBE_PIDS", "not_utf8_csv",
           "wide_text"]


#: a temporary file or folder of a process that no longer runs is removed once it is older than this (seconds): a
#: process of the same number on another machine sharing the folder is given time to finish its write
STALE_TMP_SECONDS = 3600

#: whether ``os.kill(pid, 0)`` only asks if a process runs: on Windows signal 0 is CTRL_C_EVENT, which would
#: interrupt that process's group, so there a left temporary is judged by its age alone (caches are written in
#: seconds to minutes, never an hour)
PROBE_PIDS = os.name != "nt"


def remove_stale(folder: str | Path, name_re: str, what: str, probe_pids: bool | None = None,
                 max_age: float | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` left by processes killed (SIGKILL, a power cut) while they wrote
    ``what``: the files or folders whose whole name matches the regular expression ``name_re``, whose group ``pid``
    is the number of the process that wrote them, when that process no longer runs on this machine (not asked when
    ``probe_pids`` is False, the default on Windows: :data:`PROBE_PIDS`) and they are older than ``max_age`` seconds
    (default :data:`STALE_TMP_SECONDS`). A ``name_re`` without a group ``pid`` (a fixed temporary name of an earlier
    version, naming no process) is judged by the age alone. A running process's temporary, a recent one and a name
    that does not match are kept; one that cannot be removed (another user's) is left. Each removal is logged (INFO,
    ``flownet.io``).

    Returns:
        The paths removed.
    """
    import logging
    import re
    import shutil
    import time
    probe = PROBE_PIDS if probe_pids is None else probe_pids
    age = STALE_TMP_SECONDS if max_age is None else max_age
    rx = re.compile(name_re)
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:                             # no folder (nothing written there yet), or not readable
        return removed
    for old in entries:
        m = rx.fullmatch(old.name)
        if m is None:
            continue
        pid = m.groupdict().get("pid")
        try:
            if probe and pid is not None:
                os.kill(int(pid), 0)          # raises when no such process runs on this machine
                continue
        except ProcessLookupError:
            pass
        except (ValueError, OverflowError, OSError):    # not a process number, or another user's live process
            continue
        try:
            if time.time() - old.stat().st_mtime < age:
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        except OSError:                         # removed meanwhile by another run, or not ours to remove
            continue
        logging.getLogger(__name__).info("removed %s, left by a process%s stopped while it wrote %s", old,
                                         "" if pid is None else f" ({pid})", what)
        removed.append(old)
    return removed


def _concurrent_tmp_re(path: Path) -> str:
    """The names :func:`write_whole` gives the temporaries of ``path`` with ``concurrent=True``
    (``<stem>.<pid>-<hex>.tmp<suffix>``), the ``<stem>.<pid>.tmp<suffix>`` of earlier versions' caches, and the
    fixed ``<stem>.tmp<suffix>`` that the GAN pairs cache once used (it names no process: judged by its age alone),
    as a regular expression for :func:`remove_stale`."""
    import re
    return rf"{re.escape(path.stem)}(?:\.(?P<pid>[0-9]+)(?:-[0-9a-f]+)?)?\.tmp{re.escape(path.suffix)}"


def remove_stale_temps_of(path: str | Path) -> list[Path]:
    """Remove the temporaries of ``path`` that :func:`write_whole` (``concurrent=True``) left when a kill stopped it
    (:func:`remove_stale`: of a process that no longer runs, over :data:`STALE_TMP_SECONDS` old). For a cache that
    is read far more often than written: call it on a cache hit too, or a kill's leftover, kept as recent by the
    rerun that wrote the cache, would stay for good."""
    path = Path(path)
    return remove_stale(path.parent, _concurrent_tmp_re(path), str(path))


def write_whole(path: str | Path, write, concurrent: bool = False) -> Path:
    """Write a file through a temporary one in the same folder, renamed when complete: a kill while writing never
    leaves ``path`` cut short (the old file, if any, stays whole), and a write that fails leaves no temporary file.
    ``write(tmp_path)`` writes the content. Used by every file a rerun trusts (checkpoints, caches, run headers,
    tables; ``icegan.paths`` gives it to icegan).

    Args:
        path: the file to write; its folder must exist.
        write: ``write(tmp_path)`` writes the whole content to exactly ``tmp_path``. ``np.savez`` given a path adds
            ``.npz`` to a name without it, so with ``concurrent=False`` (temporary ``<name>.tmp``) give it an open
            file instead (``with open(tmp_path, "wb") as fh: np.savez(fh, ...)``); ``concurrent=True`` keeps the
            suffix.
        concurrent: the file may be written by several processes at once (a cache shared by runs): the temporary
            file is named for this process and call (``<stem>.<pid>-<hex>.tmp<suffix>``, keeping the suffix, so
            ``np.savez`` adds none), so that no process writes into another's, and the last complete file wins;
            stale ones of killed processes are removed first (:func:`remove_stale_temps_of`). False: the temporary
            is ``<name>.tmp``, one per file (a kill's leftover is overwritten by the next write).
    """
    path = Path(path)
    if concurrent:
        import uuid
        remove_stale_temps_of(path)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    else:
        tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_whole(path: str | Path, text: str) -> Path:
    """Write the text ``text`` to ``path`` whole (:func:`write_whole`): a JSON header, metrics or a config that a
    rerun or another command reads back, never left cut short by a kill."""
    return write_whole(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_npz_whole(path: str | Path, names) -> dict:
    """The arrays ``names`` of the ``.npz`` file ``path``, every one read into memory now (``allow_pickle=False``),
    for a cache that is trusted only when it reads back whole.

    Returns:
        ``{name: np.ndarray}``.

    Raises:
        ValueError: the file cannot be read whole: cut short (a kill while an older version wrote it in place, a copy
            cut short), damaged on disk (a bad CRC, a bad compressed stream, a damaged zip directory), another kind of
            file, or an array in ``names`` missing; the message names the file and the cause. The caller says what to
            do (a cache: compute it again).
    """
    import zipfile
    import zlib
    try:
        with np.load(path, allow_pickle=False) as z:
            return {n: np.array(z[n]) for n in names}
    # NotImplementedError / RuntimeError: zipfile's answer to a damaged directory entry (an unknown zip version or
    # compression method, an "encrypted" flag bit)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(f"{path} cannot be read ({type(exc).__name__}: {why})") from None


def read_npz_cache(path: str | Path, names, damaged) -> dict | None:
    """A cache's arrays, for a cache written by :func:`write_whole` with ``concurrent=True``: ``{name: np.ndarray}``
    of ``names`` (:func:`read_npz_whole`), or None when ``path`` is no file or cannot be read whole; then
    ``damaged(message)`` is called with the message of :func:`read_npz_whole` (the caller warns and computes the cache
    again). Temporaries a kill left beside an existing cache are removed first (:func:`remove_stale_temps_of`: kept as
    recent by the rerun that wrote the cache, they would otherwise stay for good)."""
    path = Path(path)
    if not path.is_file():
        return None
    remove_stale_temps_of(path)
    try:
        return read_npz_whole(path, names)
    except ValueError as exc:       # damaged on disk, or cut short by a kill of an older version that wrote in place
        damaged(str(exc))
        return None

FLO_MAGIC = 202021.25
UNKNOWN_FLOW_THRESH = 1e9


def check_output_path(path: str | Path, what: str, image: bool = False, example: str | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there, checked before any work is done.

    Args:
        path: the file to write (its folder is created when written).
        what: what it is, for the message (e.g. ``"--out (the flow picture)"``).
        image: the file is an image written by OpenCV: its extension must name a format OpenCV writes (``.png``).
        example: a file name to suggest when ``path`` is a folder (default ``flow.png`` or ``flow.flo``).

    Raises:
        ValueError: ``path`` is an existing folder, a folder above it is a file, or (``image``) OpenCV has no
            writer for its extension; the message names the path and what it is.
    """
    p = Path(path)
    if p.is_dir():
        example = example or ("flow.png" if image else "flow.flo")
        raise ValueError(f"{what}: {p} is a folder; give a file name in it, e.g. {p / example}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what}: {p} cannot be written, {parent} is a file, not a folder")
            break
    if image:
        import cv2
        if not cv2.haveImageWriter(str(p)):
            raise ValueError(f"{what}: {p} has no image extension OpenCV can write "
                             f"({p.suffix or 'no extension'}); give a .png file name")
    return p


def read_flo(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a Middlebury ``.flo`` file.

    Returns:
        (flow, valid): ``flow`` (H, W, 2) float32 in pixels with unknown values set to 0, and
        ``valid`` (H, W) bool, False where |u| or |v| exceeds 1e9 (or is not finite).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: bad magic number, non-positive size, or a file size that does not match the header's (truncated
            data, or bytes after the flow); the message names the file and the expected and actual byte counts.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f".flo file not found: {p}")
    raw = p.read_bytes()
    if len(raw) < 12:
        raise ValueError(f"{p}: too short for a .flo header ({len(raw)} bytes)")
    magic = np.frombuffer(raw[:4], "<f4")[0]
    if magic != np.float32(FLO_MAGIC):
        if np.frombuffer(raw[:4], ">f4")[0] == np.float32(FLO_MAGIC):
            raise ValueError(f"{p}: its magic number is byte-swapped: a big-endian .flo file; Middlebury .flo files "
                             f"are little-endian")
        raise ValueError(f"{p}: not a Middlebury .flo file: its magic number (first 4 bytes) is {raw[:4]!r} (float32 "
                         f"{float(magic):g}), not b'PIEH' (float32 {FLO_MAGIC})")
    w, h = (int(x) for x in np.frombuffer(raw[4:12], "<i4"))
    if w <= 0 or h <= 0:
        raise ValueError(f"{p}: invalid size {w}x{h} in .flo header")
    need = 12 + 4 * 2 * w * h
    if len(raw) < need:
        raise ValueError(f"{p}: truncated .flo data ({len(raw)} bytes, need {need} for {w}x{h})")
    if len(raw) > need:         # a header that does not describe the data (or junk appended): the values are suspect
        raise ValueError(f"{p}: {len(raw)} bytes, but its header says {w}x{h}, which takes {need} bytes "
                         f"({len(raw) - need} extra): not a valid .flo file")
    flow = np.frombuffer(raw[12:need], "<f4").reshape(h, w, 2).astype(np.float32)
    valid = np.isfinite(flow).all(-1) & (np.abs(flow) <= UNKNOWN_FLOW_THRESH).all(-1)
    flow = np.where(valid[..., None], flow, 0.0).astype(np.float32)
    return flow, valid


def write_flo(path: str | Path, flow, valid=None) -> Path:
    """Write ``flow`` ((H, W, 2) array or (2, H, W) tensor/array, pixels) as a Middlebury ``.flo``.

    Pixels where ``valid`` ((H, W) bool) is False, and pixels with a NaN or infinite component, are written as 1e10
    in both components: Middlebury's unknown flow (|u| or |v| above 1e9; :func:`read_flo` reads them as invalid), as
    :func:`write_kitti_png` marks them invalid. Parents are created.

    Raises:
        ValueError: ``flow`` is not (H, W, 2) or (2, H, W), or ``path`` cannot be written (:func:`check_output_path`).
    """
    f = _as_hw2(flow)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != f.shape[:2]:
            raise ValueError(f"valid mask shape {v.shape} does not match flow {f.shape[:2]}")
        f = np.where(v[..., None], f, np.float32(1e10))
    f = np.where(np.isfinite(f).all(-1, keepdims=True), f, np.float32(1e10))     # NaN / inf: unknown, not stored
    p = check_output_path(path, "flow file")
    p.parent.mkdir(parents=True, exist_ok=True)
    h, w = f.shape[:2]
    with open(p, "wb") as fh:
        fh.write(np.array([FLO_MAGIC], "<f4").tobytes())
        fh.write(np.array([w, h], "<i4").tobytes())
        fh.write(np.ascontiguousarray(f, dtype="<f4").tobytes())
    return p


def read_kitti_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI 16-bit flow PNG.

    Returns:
        (flow, valid): flow (H, W, 2) float32 pixels, ``u = (R - 32768) / 64``, ``v = (G - 32768) / 64``;
        valid (H, W) bool from the B channel (> 0). Pixels as stored: an EXIF orientation tag is ignored (turning the
        picture would not turn its vectors).

    Raises:
        FileNotFoundError / ValueError: missing file, a PNG cut short (:func:`flownet.frame_io.truncation_problem`),
            or not a 3-channel 16-bit PNG.
    """
    import cv2

    from .frame_io import truncation_problem
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"KITTI flow PNG not found: {p}")
    data = p.read_bytes()
    why = truncation_problem(data) if data else None
    if why is not None:                     # decoded anyway, its lost rows would read as flow 0 or invalid pixels
        raise ValueError(f"{p}: not a complete KITTI flow PNG: {why} (an interrupted copy or unzip?); copy the file "
                         f"again")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint16:
        if img is None:
            desc = "not an image OpenCV can decode" + (" (an empty file)" if p.stat().st_size == 0 else "")
        else:
            channels = 1 if img.ndim == 2 else img.shape[2]
            desc = f"an image of {channels} channel(s) of {img.dtype.itemsize * 8} bits"
            if channels == 3 and img.dtype == np.uint8:
                desc += " (a colour-coded flow picture?)"
        raise ValueError(f"{p}: not a KITTI flow PNG (3 channels of 16 bits): {desc}")
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    flow = np.stack([(r.astype(np.float32) - 2 ** 15) / 64.0, (g.astype(np.float32) - 2 ** 15) / 64.0], -1)
    valid = b > 0
    return np.where(valid[..., None], flow, 0.0).astype(np.float32), valid


def write_kitti_png(path: str | Path, flow, valid=None) -> Path:
    """Write flow as a KITTI 16-bit PNG (values clipped to the representable ±512 px range). Pixels where ``valid``
    ((H, W) bool) is False, or whose flow is not finite, are written as invalid.

    Raises:
        ValueError: ``flow`` is not (H, W, 2) or (2, H, W), ``valid`` has another shape, or ``path`` cannot be written.
    """
    f = _as_hw2(flow)
    v = np.ones(f.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    if v.shape != f.shape[:2]:
        raise ValueError(f"valid mask shape {v.shape} does not match flow {f.shape[:2]}")
    finite = np.isfinite(f).all(-1)         # a NaN was cast to 0, i.e. a valid flow of -512 px
    v = v & finite
    f = np.where(finite[..., None], f, 0.0)
    enc = np.clip(np.round(f * 64.0 + 2 ** 15), 0, 2 ** 16 - 1).astype(np.uint16)
    img = np.stack([v.astype(np.uint16), enc[..., 1], enc[..., 0]], -1)
    p = check_output_path(path, "KITTI flow PNG", image=True)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_image(p, img)


def write_image(path: str | Path, img: np.ndarray) -> Path:
    """Write ``img`` (uint8 or uint16 (H, W) grey or (H, W, 3) BGR, as OpenCV takes it) to ``path`` in the format of
    its extension, encoded in memory (``cv2.imencode``) and written as bytes: ``cv2.imwrite`` cannot open a path with
    non-ASCII letters on Windows (a folder named in Chinese), and says so only by returning False.

    Raises:
        OSError: the image cannot be encoded in that format, or the file cannot be written (naming ``path``).
    """
    import cv2
    p = Path(path)
    try:
        ok, buf = cv2.imencode(p.suffix or ".png", img)
    except cv2.error:               # no encoder for the extension, or a shape / dtype the format cannot hold
        ok = False
    if not ok:
        raise OSError(f"could not encode an image of shape {tuple(img.shape)} and dtype {img.dtype} as {p.suffix} for "
                      f"{p}")
    p.write_bytes(buf.tobytes())
    return p


def flow_to_color(flow, max_flow: float | None = None):
    """Colour-code flow with :func:`torchvision.utils.flow_to_image` (hue = direction, saturation = magnitude).

    Args:
        flow: (2, H, W) or (B, 2, H, W) tensor, or (H, W, 2) numpy array, in pixels.
        max_flow: the magnitude (pixels) that saturates the colour, the same for every image, so that several
            pictures compare (e.g. the head and expression parts of one flow); a larger magnitude in an image
            saturates at its own maximum instead. None: each image saturates at its own largest magnitude.

    Returns:
        uint8 tensor (3, H, W) or (B, 3, H, W).

    Raises:
        ValueError: ``max_flow`` not a positive finite number, or the flow holds NaN or infinite values.
    """
    import torch
    from torchvision.utils import flow_to_image
    if isinstance(flow, np.ndarray):
        flow = torch.from_numpy(_as_hw2(flow)).permute(2, 0, 1)
    flow = flow.detach().float().cpu()
    if max_flow is not None and not (np.isfinite(max_flow) and max_flow > 0):
        raise ValueError(f"max_flow must be a positive number of pixels, got {max_flow}")
    bad = int((~torch.isfinite(flow)).any(-3).sum())     # an IndexError deep in flow_to_image otherwise
    if bad:
        raise ValueError(f"the flow holds NaN or infinite values at {bad} pixel(s): it has no colour picture")
    if flow.dim() == 4:          # flow_to_image scales a batch by its largest magnitude: one image at a time instead
        return torch.stack([flow_to_color(f, max_flow) for f in flow]) if len(flow) else flow_to_image(flow)
    if max_flow is None:
        return flow_to_image(flow)
    # flow_to_image scales an image by its largest magnitude: one extra column holding a vector of length max_flow
    # makes that scale max_flow (or the image's own maximum, if larger); the column is cut off again
    pad = torch.zeros(*flow.shape[:-1], 1)
    pad[..., 0, :, :] = float(max_flow)
    return flow_to_image(torch.cat([flow, pad], -1))[..., :-1]


def save_flow_image(path: str | Path, flow, max_flow: float | None = None) -> Path:
    """Save the colour-coded picture of one flow field ((2, H, W) tensor or (H, W, 2) array) as PNG; ``max_flow``:
    the saturating magnitude in pixels, as in :func:`flow_to_color` (None: the field's own maximum). ValueError
    (naming it) for a path that cannot be written or whose extension is no image format (:func:`check_output_path`)."""
    img = flow_to_color(flow, max_flow)
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ValueError(f"save_flow_image takes one flow field, got a batch of {img.shape[0]}")
        img = img[0]
    p = check_output_path(path, "flow picture", image=True)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_image(p, np.ascontiguousarray(img.permute(1, 2, 0).numpy()[..., ::-1]))


def save_flow_key(path: str | Path, max_flow: float, size: int = 161) -> Path:
    """Save the colour key of :func:`flow_to_color` pictures drawn with ``max_flow``: a disc whose pixel at offset
    (dx, dy) from the centre has the colour of the flow (dx, dy) scaled to ``max_flow`` pixels at the rim (hue =
    direction, x to the right and y down as in the images; white = no motion; full colour = ``max_flow``: the rim
    has the picture's colour of a vector of ``max_flow`` pixels), with the scale written under it.

    Args:
        path: the PNG to write (parents are created).
        max_flow: the magnitude in pixels that saturates the colour (> 0).
        size: side of the disc in pixels.

    Raises:
        ValueError: ``max_flow`` not a positive finite number (:func:`flow_to_color`), or ``size`` < 16.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    r = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size) - r, torch.arange(size) - r, indexing="ij")
    field = torch.stack([xx, yy]).float() * (max_flow / r)                      # the rim is max_flow pixels
    outside = xx ** 2 + yy ** 2 > r ** 2
    # zero outside the disc: the square's corners (max_flow·√2) would set the colour scale, the rim at ~71% colour
    field[:, outside] = 0.0
    img = flow_to_color(field, max_flow).permute(1, 2, 0).numpy().copy()
    img[outside.numpy()] = 255                                                  # white outside the disc
    fig, ax = plt.subplots(figsize=(2.6, 2.9))
    ax.imshow(img)
    ax.set_axis_off()
    ax.set_title("flow direction: colour", fontsize=9)
    fig.text(0.5, 0.04, f"white = still, rim = {max_flow:.2f} px or more", ha="center", fontsize=8)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def flow_to_tensor(flow: np.ndarray):
    """(H, W, 2) numpy flow → (2, H, W) float32 torch tensor."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(_as_hw2(flow).transpose(2, 0, 1)))


def read_image(path: str | Path, gray: bool = False):
    """Read an image file as a float tensor (C, H, W) in [0, 1] (C = 1 if ``gray`` else 3, RGB order).

    Decoded by :func:`flownet.frame_io.read_frame`: a JPEG, PNG or BMP cut short (which OpenCV alone decodes with grey
    rows, a wrong flow and EPE) is refused.

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, cut short or undecodable (the message names the
            file and says how).
    """
    import cv2

    from .frame_io import read_frame
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    return image_tensor(read_frame(p, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR))


def image_tensor(img: np.ndarray):
    """The float tensor (C, H, W) in [0, 1], RGB order, of a uint8 frame as :func:`flownet.frame_io.read_frame`
    decodes it: (H, W) grey (C = 1) or (H, W, 3) BGR (C = 3)."""
    import torch
    arr = img[None] if img.ndim == 2 else img[..., ::-1].transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0


def _as_hw2(flow) -> np.ndarray:
    """(H, W, 2) float32 array of a flow given as a (2, H, W) tensor (the torch layout, read first: a tensor of
    shape (2, H, 2) is two channels of width 2) or an (H, W, 2) array (the numpy layout, read first) or (2, H, W)
    array."""
    tensor = hasattr(flow, "detach")
    if tensor:
        flow = flow.detach().cpu().numpy()
    f = np.asarray(flow, dtype=np.float32)
    if tensor and f.ndim == 3 and f.shape[0] == 2:
        return np.ascontiguousarray(f.transpose(1, 2, 0))
    if f.ndim == 3 and f.shape[-1] == 2:
        return f
    if f.ndim == 3 and f.shape[0] == 2:
        return np.ascontiguousarray(f.transpose(1, 2, 0))
    raise ValueError(f"flow must be (H, W, 2) or (2, H, W), got shape {f.shape}")


def not_utf8_csv(path: str | Path, exc: UnicodeDecodeError) -> ValueError:
    """The error for a CSV sheet ``path`` that is not UTF-8 text (``exc``: the decoder's error): names the file and
    the first byte that is not, and says to save it as 'CSV UTF-8'. One message for every sheet flownet and icegan
    read (the CASME II manifest in :func:`flownet.data.real_pairs.read_manifest` and
    :func:`icegan.gan.pairs.load_casme2_pairs`, the composite's sheet in
    :func:`flownet.data.synthetic_face.extra_face_paths`, the tables of :func:`icegan.data.feature_table.read_csv_cells`:
    feature tables, the composite's sheet, clip lists)."""
    return ValueError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); save it as 'CSV UTF-8'")


#: byte-order marks of text that is not UTF-8, longest first (UTF-32 LE begins as UTF-16 LE does)
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
              (b"\xfe\xff", "UTF-16"))
#: which bytes of each 4 are NUL in most of a text's characters (those below U+0100: a CSV table's commas, digits and
#: Latin letters) in each encoding of text that is not UTF-8, and its name
_WIDE_NULS = {(False, True, False, True): "UTF-16 text (little-endian",
              (True, False, True, False): "UTF-16 text (big-endian",
              (False, True, True, True): "UTF-32 text (little-endian",
              (True, True, True, False): "UTF-32 text (big-endian"}


def wide_text(head: bytes) -> str | None:
    """What the file beginning with the bytes ``head`` (its first 4 KiB) is, when it is UTF-16 or UTF-32 text rather
    than UTF-8 (``"UTF-16 text (it begins with a UTF-16 byte-order mark)"``, ``"UTF-16 text (little-endian, without
    a byte-order mark: ...)"``), else None. Without a byte-order mark the encoding is told by where NUL bytes fall:
    the bytes of ``head`` at each offset modulo 4 are NUL at least half the time exactly at the offsets where that
    encoding puts a NUL in a character below U+0100 (``a`` is ``61 00`` in UTF-16 LE, ``00 00 00 61`` in UTF-32 BE),
    and the head's whole code units decode in that encoding to characters none of which is a control character
    other than tab, CR and LF (a ``\\x00`` or ``\\x01`` decoded from 16- or 32-bit numbers of a binary file, such
    as an int16 ``.npy``, whose high bytes are NUL as well; also no invalid code unit or surrogate), so that a
    binary file or UTF-8 text with a NUL in it is seldom taken for one (numbers that are all codes of printable
    characters still are)."""
    wide = next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)
    if wide is not None:
        return f"{wide} text (it begins with a {wide} byte-order mark)"
    n = len(head) // 4
    if n == 0 or 0 not in head:
        return None
    name = _WIDE_NULS.get(tuple(2 * head[i:4 * n:4].count(0) >= n for i in range(4)))
    if name is None:
        return None
    width = 4 if name.startswith("UTF-32") else 2
    codec = f"utf-{8 * width}-{'le' if 'little' in name else 'be'}"
    try:            # incremental: a surrogate pair cut at the head's end is no error
        text = codecs.getincrementaldecoder(codec)().decode(head[:len(head) // width * width])
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) == "Cc" and c not in "\t\r\n" for c in text):
        return None
    return f"{name}, without a byte-order mark: NUL bytes between its characters)"
