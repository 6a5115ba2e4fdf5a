"""Imported first by the preprocessing forkserver (:func:`icegan.data.prepare.worker_context`): makes the server ignore
Ctrl-C (the parent stops the pool; the workers forked from the server inherit that), then loads the face_recognition
models once, without face_recognition_models' pkg_resources deprecation warning, so that every worker forked from
the server starts with them."""
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)    # before the slow imports: a Ctrl-C there would print a traceback

from flownet.data.face_models import face_recognition_modules  # noqa: E402

face_recognition_modules()
