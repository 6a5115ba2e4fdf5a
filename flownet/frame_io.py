"""Reading video frames and face images from disk, refusing files that were cut short.

Every image reader of ``flownet`` (flow evaluation, self-supervised real pairs, the synthetic facial set, KITTI flow
PNGs) and of ``icegan`` (face preparation, ``icegan data check``, apex spotting, the GAN pairs) goes through it.

``cv2.imread`` decodes a JPEG that ends early (a partial copy, an interrupted unzip) with only a warning on stderr:
the rows it could not read come back grey, and the flow of that clip is silently wrong. :func:`read_frame` reads the
file's bytes, checks that it ends where its format says it ends, and only then decodes it with ``cv2.imdecode``
(the decoder of ``cv2.imread``; with OpenCV 5.0 it refuses a cut file, but only as "cannot decode", and other
OpenCV builds differ), so that a cut file is named as cut, with what to do about it.

What counts as complete:

* JPEG (starts ``FF D8``): an end-of-image marker ``FF D9`` after the start of its first scan. The marker segments
  before the scan (EXIF, whose thumbnail holds its own ``FF D9``; tables; frame header) are stepped over by their
  lengths; inside the entropy-coded scan data a ``FF`` byte is always followed by ``00``, a restart marker
  ``D0``–``D7`` or the segments between the scans of a progressive file, never ``D9``, so a file cut inside its
  scans has no such marker. Bytes after the marker (padding, a camera's trailer, an appended video) are allowed.
* PNG (starts ``89 50 4E 47``): its length-prefixed chunks, walked from the signature, reach a complete ``IEND``
  chunk (checksums are not checked); a walk that runs past the end of the file is cut short. Bytes after ``IEND``
  (padding some transfer and archive tools leave) are allowed, as OpenCV and Pillow allow them.
* BMP (starts ``BM``): at least as many bytes as the file size in its header.
* Any other format: decoded as it is (no completeness check).

A JPEG whose scan data was changed after it was written whole (a bad disk block, a flipped bit in a transfer) has
its end marker, and ``cv2.imdecode`` decodes it to garbage, with only libjpeg's line ``Corrupt JPEG data: ...`` on
stderr, naming no file. :func:`read_frame` catches that line (stderr, file descriptor 2, sent to a temporary file
around the decoding, under a lock, since a descriptor is the whole process's: the JPEG decodings of threads, such as
``icegan data check``'s, take turns; other output of that moment is passed on to stderr) and refuses the file. JPEG
has no checksum: damage libjpeg does not complain about goes undetected. An intact file decodes as
``cv2.imdecode`` decodes it. An ``os.fork`` (``multiprocessing``'s ``fork`` start method included) waits for a
decoding of another thread to end; a child process started without the fork hooks of ``os.register_at_fork``
(``subprocess``, the ``spawn`` and ``forkserver`` start methods) while another thread decodes a JPEG is not
covered: it gets that temporary file as its stderr, and its error output is lost. On Windows (``os.name == "nt"``: no
``os.register_at_fork``, and OpenCV's libjpeg may write through a C runtime of its own, whose descriptor 2
``os.dup2`` does not reach) stderr is not watched: a damaged JPEG is decoded as ``cv2.imdecode`` decodes it.
One such line is not taken for damage: ``N extraneous bytes before marker 0xd9`` where those N bytes, the last
before the end marker (EOI) that follows the last scan, are all zero: padding some writers and transfers leave
after a scan decoded whole, which libjpeg skips (the file decodes to the pixels it would without them). The same
line for other bytes is refused: damaged scan data that the decoder finished early leaves the rest of the scan,
hundreds of bytes of coded data, before the end marker. Extraneous bytes before any other marker, and every other
``Corrupt JPEG data`` line, are refused too.

OpenCV turns a picture by its EXIF Orientation tag (JPEG, PNG, TIFF, WebP), as an image viewer shows it, except
with ``IMREAD_UNCHANGED``; Pillow's ``size`` is the stored one. :func:`oriented_size` gives the size from the header
as :func:`read_frame` reads the picture; :func:`quarter_turn_note` names a tag that swaps width and height, for the
messages of a frame whose size differs from its ground-truth flow's (a flow map is read untouched).

A 16-bit PNG read as 8 bits (every flag but ``IMREAD_UNCHANGED`` / ``IMREAD_ANYDEPTH``) keeps its top 8 bits: one
holding 10- or 12-bit data (all values below 4096, as some cameras' and converters' output) would come out nearly
black, with at most 16 grey levels, and give a flow of its noise. Such a file is refused by name.
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["read_frame", "truncation_problem", "narrow_16_bit_max", "oriented_size", "file_orientation",
           "quarter_turn_note"]

#: the start-of-image marker every JPEG begins with
_JPEG_SOI = b"\xff\xd8"
#: what each EXIF Orientation that swaps width and height does to the stored picture as it is read
_QUARTER_TURNS = {5: "mirrors it across its main diagonal", 6: "turns it a quarter turn clockwise",
                  7: "mirrors it across its other diagonal", 8: "turns it a quarter turn anticlockwise"}


def _jpeg_problem(data: bytes) -> str | None:
    """Why a JPEG (``data`` starts ``FF D8``) looks cut short, or None (module docstring): its marker segments are
    stepped over up to the first start-of-scan (``FF DA``), and an end-of-image marker must follow it."""
    i, n = 2, len(data)
    while True:
        if i + 2 > n:
            return "truncated: the JPEG ends inside its header"
        if data[i] != 0xFF:
            return None         # not a marker where one belongs: a malformed file, the decoder's to refuse
        marker = data[i + 1]
        if marker == 0xFF:      # a fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:       # markers without a length
            i += 2
            continue
        if marker == 0xD9:      # end of image before any scan: the decoder's to refuse
            return None
        if i + 4 > n:
            return "truncated: the JPEG ends inside its header"
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:
            if data.find(b"\xff\xd9", end) < 0:
                return "truncated: no JPEG end marker (FF D9) after its image data"
            return None
        i = end


def _png_problem(data: bytes) -> str | None:
    """Why a PNG (``data`` starts with its signature) looks cut short, or None (module docstring): each chunk is its
    4-byte big-endian data length, 4-byte type, the data and a 4-byte checksum; the walk stops at the first complete
    ``IEND`` chunk (bytes after it allowed). Every step moves at least 12 bytes, so the walk ends."""
    i, n = 8, len(data)
    while True:
        if i + 8 > n:
            return (f"truncated: no complete PNG IEND chunk (the file's {n} bytes end after its last complete chunk, "
                    f"at byte {i})" if i == n else
                    f"truncated: no complete PNG IEND chunk (the file's {n} bytes end inside a chunk header at byte "
                    f"{i})")
        length = int.from_bytes(data[i:i + 4], "big")
        if length >= 2 ** 31:       # not a PNG chunk length (at most 2^31 - 1): malformed, the decoder's to refuse
            return None
        end = i + 12 + length
        if end > n:
            kind = data[i + 4:i + 8].decode("latin-1")
            return (f"truncated: no complete PNG IEND chunk (the file's {n} bytes end inside its {kind!r} chunk of "
                    f"{length} data bytes at byte {i})")
        if data[i + 4:i + 8] == b"IEND":
            return None
        i = end


def truncation_problem(data: bytes) -> str | None:
    """Why an encoded image looks cut short, or None when it looks complete (or its format is not checked).

    Args:
        data: the whole file's bytes.

    Returns:
        A short reason, e.g. ``"truncated: no JPEG end marker (FF D9) after its image data"``, or None.
    """
    if data.startswith(_JPEG_SOI):
        return _jpeg_problem(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_problem(data)
    elif data[:2] == b"BM" and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if len(data) < declared:
            return f"truncated: {len(data)} bytes, its BMP header says {declared}"
    return None


#: whether JPEG decodings are watched for libjpeg's "Corrupt JPEG data" line (not on Windows; module docstring)
_WATCH_STDERR = os.name != "nt"
#: held while fd 2 goes to :data:`_stderr_sink` around a JPEG decoding, and across an ``os.fork`` (module docstring)
_STDERR_LOCK = threading.Lock()
#: libjpeg's line for bytes it skipped between the scan data and the end marker (EOI; :func:`_zero_padded_eoi`)
_EOI_PADDING = re.compile(rb"Corrupt JPEG data: ([0-9]+) extraneous bytes before marker 0xd9")

#: the temporary file that catches libjpeg's output (:func:`_imdecode_jpeg`), made at the first JPEG decoded and
#: emptied before each decoding. A forked child makes its own (its copy shares the parent's file position).
_stderr_sink = None


def _after_fork_in_child() -> None:
    """Release :data:`_STDERR_LOCK` in a forked child and close its copy of :data:`_stderr_sink`."""
    global _stderr_sink
    if _stderr_sink is not None:
        _stderr_sink.close()
        _stderr_sink = None
    _STDERR_LOCK.release()


if hasattr(os, "register_at_fork"):     # not on Windows
    os.register_at_fork(before=_STDERR_LOCK.acquire, after_in_parent=_STDERR_LOCK.release,
                        after_in_child=_after_fork_in_child)


def _zero_padded_eoi(data: bytes, line: bytes) -> bool:
    """True when libjpeg's stderr ``line`` on decoding the JPEG ``data`` is ``Corrupt JPEG data: N extraneous bytes
    before marker 0xd9`` and those N bytes, before the first end marker (``FF D9``) after the last start-of-scan
    (``FF DA``), are all zero: padding after a scan decoded whole, not damage (module docstring)."""
    m = _EOI_PADDING.fullmatch(line.strip())
    if m is None:
        return False
    n, eoi = int(m.group(1)), data.find(b"\xff\xd9", data.rfind(b"\xff\xda"))
    return 0 < n <= eoi and not any(data[eoi - n:eoi])


def _imdecode_jpeg(data: bytes, flag: int) -> tuple[np.ndarray | None, str | None]:
    """``cv2.imdecode`` of a JPEG's bytes with libjpeg's stderr output caught (module docstring).

    Returns:
        The decoded image (None when OpenCV cannot decode it) and libjpeg's first ``"Corrupt JPEG data: ..."`` line
        without that opening (e.g. ``"premature end of data segment"``), or None when it wrote none but
        ``"N extraneous bytes before marker 0xd9"`` for N zero bytes (:func:`_zero_padded_eoi`) or stderr is
        not watched (no open stderr, or Windows). Other stderr output of that moment is passed on to stderr.

    Raises:
        cv2.error: as ``cv2.imdecode``.
        OSError: no temporary file can be made (the first time).
    """
    global _stderr_sink
    import cv2
    buf = np.frombuffer(data, np.uint8)
    if not _WATCH_STDERR:
        return cv2.imdecode(buf, flag), None
    opening = b"Corrupt JPEG data: "
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:         # no stderr (fd 2 closed): the decoding is not watched
            return cv2.imdecode(buf, flag), None
        try:
            if _stderr_sink is None:
                _stderr_sink = tempfile.TemporaryFile(buffering=0)
            _stderr_sink.seek(0)
            _stderr_sink.truncate()
            try:
                os.dup2(_stderr_sink.fileno(), 2)
                img = cv2.imdecode(buf, flag)
            finally:
                os.dup2(saved, 2)
                _stderr_sink.seek(0)
                lines = _stderr_sink.read().splitlines(keepends=True)
                others = b"".join(line for line in lines if not line.startswith(opening))
                if others:
                    os.write(2, others)
        finally:
            os.close(saved)
    corrupt = [line for line in lines if line.startswith(opening) and not _zero_padded_eoi(data, line)]
    return img, corrupt[0][len(opening):].decode("latin-1").strip() if corrupt else None


class FrameAccessError(ValueError):
    """A frame file that the file system would not let this process read (an ``OSError``: permission denied, an I/O
    error of the disk, a network share gone): a problem of the environment, not of the data, which the frame file's
    size and mtime (the cache key of :func:`icegan.data.prepare.inputs_hash`) do not show. Raised by
    :func:`read_frame` for every reader of frames (the preprocessing, its apex spotting, flownet's datasets). A
    ValueError, so that it is handled as any unreadable frame; the preprocessing prepares a clip it touched again
    next time rather than keep its result for good (:func:`icegan.data.prepare.prepare_dataset`)."""


def read_frame(path: str | Path, flag: int | None = None, data: bytes | None = None) -> np.ndarray:
    """Decode one image file with OpenCV after checking that it is complete (module docstring).

    Args:
        path: the image file.
        flag: an OpenCV ``IMREAD_*`` flag (default ``cv2.IMREAD_GRAYSCALE``).
        data: the file's bytes when the caller has read them already (then not read again).

    Returns:
        The decoded image as ``cv2.imread`` returns it: uint8 (H, W) for grey flags, (H, W, 3) BGR for colour. A
        colour PNG read grey is decoded in colour and converted by ``cv2.cvtColor(BGR2GRAY)`` (libpng's own
        conversion, which ``cv2.imdecode`` uses, differs by up to a grey level). Other colour files read grey are
        as their decoder gives them, close to but not always the ``cv2.cvtColor`` grey of their colour decode: a
        BMP by OpenCV's own conversion (the same weights, rounded otherwise: one grey level off in 12 of 4096
        pixels of colour noise), a JPEG as its luma channel (off by up to 8 grey levels in 0.05 % of the pixels of
        CASME II frames).

    Raises:
        FrameAccessError: the file cannot be opened or read (an OSError: ``cannot read image <path>: Permission
            denied``); a ValueError.
        ValueError: the file is empty or cut short (the message says how, and to copy the file
            again), a JPEG whose data libjpeg calls corrupt (``corrupt JPEG data``; not for zero bytes before its end
            marker, ``extraneous bytes before marker 0xd9``: module docstring), OpenCV
            cannot decode it, it decodes only to floating-point pixels (a 32-bit float TIFF: save it
            as 8- or 16-bit), or it is a 16-bit PNG of 10- or 12-bit data read as 8 bits (module docstring); every
            message names the file.
        OSError: no temporary file can be made to catch libjpeg's output (the first JPEG read; :func:`_imdecode_jpeg`).
    """
    import cv2
    p = Path(path)
    if data is None:
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise FrameAccessError(f"cannot read image {p}: {exc.strerror or exc}") from None
    if not data:
        raise ValueError(f"cannot read image {p}: the file is empty (0 bytes; an interrupted copy or unzip?); copy "
                         f"the file again")
    why = truncation_problem(data)
    if why is not None:
        raise ValueError(f"cannot read image {p}: {why} (an interrupted copy or unzip?); copy the file again")
    flag = cv2.IMREAD_GRAYSCALE if flag is None else flag
    header = _png_header(data)
    # a colour PNG read grey: decoded in colour, then cv2.cvtColor (docstring)
    # grey: IMREAD_GRAYSCALE or a reduced one, with or without ANYDEPTH or IGNORE_ORIENTATION (not told from the
    # colour bits, which OpenCV 5's IMREAD_COLOR_RGB, 256, lacks)
    grey = flag >= 0 and flag & ~(cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION) in (
        cv2.IMREAD_GRAYSCALE, cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_GRAYSCALE_4,
        cv2.IMREAD_REDUCED_GRAYSCALE_8)
    colour_png = header is not None and header[1] in (2, 3, 6) and grey
    corrupt = None
    try:
        if data.startswith(_JPEG_SOI):
            img, corrupt = _imdecode_jpeg(data, flag)
        else:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_COLOR if colour_png else flag)
        if colour_png and img is not None and img.size:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        _refuse_floating_point(p, data)
        raise ValueError(f"cannot read image {p}: not an image OpenCV can decode")
    if corrupt is not None:
        raise ValueError(f"cannot read image {p}: corrupt JPEG data (libjpeg: {corrupt}): the file was damaged "
                         f"after it was written (a disk or transfer error?); copy the file again")
    keeps_depth = flag == cv2.IMREAD_UNCHANGED or (flag > 0 and bool(flag & cv2.IMREAD_ANYDEPTH))
    if not keeps_depth and header is not None and header[0] == 16:
        top = narrow_16_bit_max(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))
        if top is not None:
            raise ValueError(f"cannot read image {p}: a 16-bit image whose values reach only {top} of "
                             f"65535 (10- or 12-bit data?); read as 8 bits it holds at most {top // 256 + 1}"
                             f" grey levels. Scale the frames to the full 16-bit range (12-bit data: times 16) or "
                             f"save them as 8-bit")
    return img


def _refuse_floating_point(p: Path, data: bytes) -> None:
    """ValueError naming ``p`` when its bytes decode only unchanged, to floating-point pixels (a 32-bit float TIFF:
    OpenCV's 8-bit flags cannot read it; the caller's 'not an image OpenCV can decode' would be wrong); else nothing.
    A JPEG never decodes to floating point, so it is not decoded again."""
    import cv2
    if data.startswith(_JPEG_SOI):
        return
    try:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        raw = None
    if raw is not None and raw.size and np.issubdtype(raw.dtype, np.floating):
        raise ValueError(f"cannot read image {p}: a floating-point image ({raw.dtype} pixels), which is not read as "
                         f"a frame; save it as an 8- or 16-bit image (values scaled to 0-255 or 0-65535)")


def narrow_16_bit_max(img: np.ndarray) -> int | None:
    """The largest value of a 16-bit image (uint16 array, any shape) whose values all stay below 4096 (10- or 12-bit
    data: read as 8 bits, at most 16 grey levels; module docstring), else None (8-bit, or using the 16-bit range)."""
    if img.dtype != np.uint16:
        return None
    top = int(img.max())
    return top if top < 4096 else None


def _png_header(data: bytes) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` of a PNG's IHDR chunk (depth 1, 2, 4, 8 or 16; colour type 0 grey, 2 RGB,
    3 palette, 4 grey and alpha, 6 RGB and alpha), or None for another format."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[12:16] == b"IHDR":
        return data[24], data[25]
    return None


def oriented_size(path: str | Path, data: bytes | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image file as :func:`read_frame` reads it, from its header: the stored size, width
    and height swapped when its EXIF Orientation is 5-8 (a quarter turn; module docstring). ``data``: the file's
    bytes when the caller has read them already (then the file is not opened).

    Raises:
        OSError: Pillow cannot open the file or read its header (``PIL.UnidentifiedImageError`` included).
    """
    import io

    from PIL import Image
    with Image.open(path if data is None else io.BytesIO(data)) as im:
        w, h = im.size
        if im.format == "TIFF":
            return w, h         # Pillow's TIFF reader gives the size already turned by the tag
        turned = _orientation(im, path, data) in _QUARTER_TURNS
    return (h, w) if turned else (w, h)


def _orientation(im, path: str | Path, data: bytes | None = None) -> int | None:
    """The EXIF Orientation of the open Pillow image ``im`` of file ``path`` (whose bytes are ``data`` when given),
    None when it has none."""
    if im.format == "PNG" and "exif" not in im.info and b"eXIf" not in (Path(path).read_bytes() if data is None
                                                                         else data):
        return None             # no EXIF chunk (Pillow would decode the whole image to look for one after the data)
    return im.getexif().get(0x0112)


def file_orientation(path: str | Path, data: bytes | None = None) -> int | None:
    """The EXIF Orientation of image file ``path`` (1-8), None when it has none or Pillow cannot open it (a file
    only OpenCV reads). ``data``: the file's bytes when the caller has read them already (then the file is not
    opened)."""
    import io

    from PIL import Image
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as im:
            return _orientation(im, path, data)
    except OSError:
        return None


def quarter_turn_note(paths, other: str, tags=None) -> str:
    """``""``, or a sentence (starting ``"; "``) naming each of ``paths`` whose EXIF Orientation turns it a quarter
    turn as :func:`read_frame` reads it (width and height swapped), unlike ``other`` (what its size is compared
    with, e.g. ``"the ground-truth flow"``): the reason two sizes differ. Files Pillow cannot open are passed
    over. ``tags``: the files' Orientation tags already read (:func:`file_orientation`, one per path, None for none),
    so that no file is opened again; None: each file's is read here."""
    notes, paths = [], list(paths)
    for p, o in zip(paths, [file_orientation(p) for p in paths] if tags is None else tags, strict=True):
        if o in _QUARTER_TURNS:
            notes.append(f"{p} carries the EXIF Orientation tag {o}, which {_QUARTER_TURNS[o]} as it is read "
                         f"(width and height swapped)")
    if not notes:
        return ""
    return f"; {'; '.join(notes)}, unlike {other}: save the frame without the tag"
