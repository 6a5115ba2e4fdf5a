"""Imported first by the preprocessing forkserver of a job that needs no face model (:func:`icegan.data.prepare.
worker_context` with ``face_models=False``: cropped clips that all have their apex): makes the server ignore Ctrl-C
(the parent stops the pool; the workers forked from the server inherit that) and end with the process that started it
(:func:`icegan.data.parent_exit.exit_with_parent`), as :mod:`icegan.data.face_models_preload` does before it loads the
face_recognition models."""
import signal

from icegan.data.parent_exit import exit_with_parent

signal.signal(signal.SIGINT, signal.SIG_IGN)
exit_with_parent()
