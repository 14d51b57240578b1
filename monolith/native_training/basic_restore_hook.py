"""A session hook that runs restore listeners right after the session is created."""
from typing import List, Optional

from absl import logging
import tensorflow as tf


class CheckpointRestorerListener(object):
  """Interface for listeners that restore state when a session starts."""

  def begin(self):
    pass

  def before_restore(self, session):
    pass

  def after_restore(self, session):
    pass

  def end(self, session):
    pass


class CheckpointRestorerHook(tf.compat.v1.train.SessionRunHook):
  """Calls every listener's before_restore/after_restore in after_create_session."""

  def __init__(self, listeners: Optional[List[CheckpointRestorerListener]] = None):
    self._listeners = listeners or []

  def begin(self):
    for l in self._listeners:
      l.begin()

  def after_create_session(self, session, coord):
    logging.info("Restoring with %d listeners.", len(self._listeners))
    for l in self._listeners:
      l.before_restore(session)
    for l in self._listeners:
      l.after_restore(session)

  def end(self, session):
    for l in self._listeners:
      l.end(session)
