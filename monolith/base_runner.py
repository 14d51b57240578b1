"""`BaseRunner`: base class of Monolith runners, plus TensorBoard summary writing."""

from typing import Dict

import tensorflow as tf


class BaseRunner:
  """A runner drives training/evaluation; subclasses implement `run()`."""

  def __init__(self, *args, **kwargs):
    del args, kwargs

  def run(self):
    raise NotImplementedError('Abstract method.')

  def write_summary(self, logs: Dict[str, float], summary_writer, current_step: int):
    """Writes `logs` (tag -> number) as scalar summaries at `current_step`.

    `summary_writer` is a `tf.compat.v1.summary.FileWriter` (anything with `add_summary`).
    """
    with tf.Graph().as_default():
      tf_summary = tf.compat.v1.Summary(value=[
          tf.compat.v1.Summary.Value(tag=tag, simple_value=value) for tag, value in logs.items()
      ])
      summary_writer.add_summary(tf_summary, current_step)
