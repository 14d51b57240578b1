"""Checkpoint-saver listener wrappers that forward only one phase of a wrapped listener."""

import tensorflow as tf


class BeforeSaveListener(tf.compat.v1.train.CheckpointSaverListener):
  """Forwards only `before_save` to `listener`."""

  def __init__(self, listener: tf.compat.v1.train.CheckpointSaverListener):
    self._listener = listener

  def before_save(self, session, global_step_value):
    self._listener.before_save(session, global_step_value)

  def __repr__(self):
    return "{}({!r})".format(type(self).__name__, self._listener)


class AfterSaveListener(tf.compat.v1.train.CheckpointSaverListener):
  """Forwards only `after_save` to `listener`."""

  def __init__(self, listener: tf.compat.v1.train.CheckpointSaverListener):
    self._listener = listener

  def after_save(self, session, global_step_value):
    return self._listener.after_save(session, global_step_value)

  def __repr__(self):
    return "{}({!r})".format(type(self).__name__, self._listener)
