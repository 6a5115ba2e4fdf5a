"""Imported first by the preprocessing forkserver (:func:`icegan.data.prepare.worker_context`): makes the server ignore
Ctrl-C (the parent stops the pool; the workers forked from the server inherit that) and end with the process that
started it (:func:`icegan.data.parent_exit.exit_with_parent`), then loads the face_recognition
models once, without face_recognition_models' pkg_resources deprecation warning, so that every worker forked from
the server starts with them."""
import signal

from icegan.data.parent_exit import exit_with_parent

signal.signal(signal.SIGINT, signal.SIG_IGN)    # before the slow imports: a Ctrl-C there would print a traceback
exit_with_parent()

from flownet.data.face_models import face_recognition_modules  # noqa: E402

face_recognition_modules()
