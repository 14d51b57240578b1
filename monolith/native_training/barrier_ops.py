"""A chief-controlled barrier: the chief places it, workers block at their next step until the
chief removes it. State is a bool vector variable: slot 0 = "placed", slot i > 0 = "worker i is
blocked"."""

import threading
import time
from typing import Callable, List, Optional

from absl import logging
import tensorflow as tf

BarrierCallback = Callable[[str, tf.compat.v1.Session], None]


class BarrierAlreadyPlacedError(Exception):
  pass


class BarrierOp(object):

  def __init__(self,
               capacity: int,
               is_chief: bool = True,
               wait_seconds: float = 1,
               name_prefix: str = "default",
               barrier_callbacks: Optional[List[BarrierCallback]] = None):
    self._capacity = capacity
    self._wait_seconds = wait_seconds
    self._lock = threading.Lock()
    self._barrier_callbacks = barrier_callbacks or []
    with tf.name_scope(name_prefix + "_barrier_op"):
      # Workers share the chief's copy through the PS, so for them it is a global variable.
      collections = ([tf.compat.v1.GraphKeys.LOCAL_VARIABLES]
                     if is_chief else [tf.compat.v1.GraphKeys.GLOBAL_VARIABLES])
      self._barrier_var = tf.compat.v1.get_variable("barrier_var",
                                                    initializer=[False] * capacity,
                                                    collections=collections,
                                                    use_resource=True)
      self._index_placeholder = tf.compat.v1.placeholder(tf.int32, [], name="index_placeholder")
      self._place_op = tf.compat.v1.scatter_nd_update(self._barrier_var,
                                                      [[self._index_placeholder]], [True])
      self._remove_op = tf.compat.v1.scatter_nd_update(self._barrier_var,
                                                       [[self._index_placeholder]], [False])
      self._barrier_placed_tensor = self._barrier_var[0]
      self._action_var = tf.compat.v1.get_variable(
          "barrier_op_action",
          initializer="",
          dtype=tf.string,
          trainable=False,
          collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
          use_resource=True)
      self._action_placeholder = tf.compat.v1.placeholder(tf.string, [],
                                                          name="barrier_op_action_placeholder")
      self._action_assign_op = self._action_var.assign(self._action_placeholder,
                                                       read_value=False)
      self._action_value = self._action_var.read_value()

  @property
  def barrier_placed_tensor(self) -> tf.Tensor:
    return self._barrier_placed_tensor

  @property
  def capacity(self) -> int:
    return self._capacity

  def place_barrier(self, session, action: str = ""):
    with self._lock:
      if self.is_barrier_placed(session):
        raise BarrierAlreadyPlacedError()
      session.run([self._place_op, self._action_assign_op],
                  feed_dict={
                      self._index_placeholder: 0,
                      self._action_placeholder: action
                  })
      self._run_barrier_callbacks(action, session)

  def remove_barrier(self, session):
    with self._lock:
      session.run(self._remove_op, feed_dict={self._index_placeholder: 0})

  def is_barrier_placed(self, session) -> bool:
    return session.run(self._barrier_placed_tensor)

  def is_barrier_removed(self, session) -> bool:
    return not self.is_barrier_placed(session)

  def wait_until_barrier_removed(self, session, index: int):
    with self._lock:
      if index <= 0 or index >= self._capacity:
        raise ValueError("Index [{}] must be non-negative and less than capacity [{}]. ".format(
            index, self._capacity))
      session.run(self._place_op, feed_dict={self._index_placeholder: index})
      action = session.run(self._action_value).decode()
      self._run_barrier_callbacks(action, session)
    # Polled outside the lock so that the chief can remove the barrier meanwhile.
    while self.is_barrier_placed(session):
      logging.log_every_n_seconds(logging.INFO, "The worker %d waits until barrier removed.", 60,
                                  index)
      time.sleep(self._wait_seconds)
    session.run(self._remove_op, feed_dict={self._index_placeholder: index})

  def is_all_blocked(self, session) -> bool:
    return int(session.run(self._barrier_var).sum()) == self._capacity

  def is_none_blocked(self, session) -> bool:
    return int(session.run(self._barrier_var).sum()) == 0

  def get_unblocked_indices(self, session) -> List[int]:
    return [i for i, v in enumerate(session.run(self._barrier_var)) if not v]

  def get_blocked_indices(self, session) -> List[int]:
    return [i for i, v in enumerate(session.run(self._barrier_var)) if v]

  def _run_barrier_callbacks(self, action: str, session):
    for callback in self._barrier_callbacks:
      callback(action, session)


class BarrierHook(tf.compat.v1.train.SessionRunHook):
  """Blocks worker `index` (> 0) after a step while the barrier is placed."""

  def __init__(self, index: int, barrier_op: BarrierOp):
    self._index = index
    self._barrier_op = barrier_op

  def before_run(self, run_context):
    return tf.compat.v1.train.SessionRunArgs(self._barrier_op.barrier_placed_tensor)

  def after_run(self, run_context, run_values):
    if self._index > 0 and run_values.results:
      self._barrier_op.wait_until_barrier_removed(run_context.session, self._index)
