"""The face_recognition package (dlib's face detectors and 68-point shape predictor), imported once on demand.

Torch-free on purpose: :mod:`icegan.data.landmarks` and the preprocessing workers
(:mod:`icegan.data.face_models_preload`) import it, and ``icegan prepare`` should not pay torch's import (seconds in
every process) to detect faces. :mod:`flownet.data.synthetic_face` re-exports :func:`face_recognition_modules` (the
same function and memo).
"""
from __future__ import annotations

import warnings

__all__ = ["face_recognition_modules", "import_face_recognition"]

_FR = None


def import_face_recognition():
    """``(face_recognition, face_recognition.api)`` (they load the dlib models at their first import), without
    face_recognition_models' pkg_resources deprecation warning; no memo of its own (see
    :func:`face_recognition_modules`).

    Raises:
        ImportError: face_recognition (or dlib, or its models) is not installed; the message says how to install it
            (a ``pip install`` of the package alone lacks it: it is installed with ``--no-deps``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation warning of face_recognition_models
        try:
            import face_recognition
            import face_recognition.api as api
        except ImportError as exc:       # not a dependency of the package: the Makefile installs it apart
            raise ImportError(
                f"the 68 facial landmarks need the face_recognition package ({exc}); install it as the Makefile "
                f"does, without its dlib dependency (icegan's dlib-bin wheel provides dlib): pip install "
                f"--no-deps face_recognition==1.3.0") from exc
    return face_recognition, api


def face_recognition_modules():
    """``(face_recognition, face_recognition.api)``, imported once (:func:`import_face_recognition`).

    Raises:
        ImportError: face_recognition (or dlib, or its models) is not installed; the message says how to install it.
    """
    global _FR
    if _FR is None:
        _FR = import_face_recognition()
    return _FR
