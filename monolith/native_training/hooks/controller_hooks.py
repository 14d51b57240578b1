"""Training control from outside the training loop: stop (through the barrier) and on-demand
checkpoint saves, triggered by ops (`ControllerHook`) or by an action file that an operator drops
into the model directory (`QueryActionHook`)."""

import os
import threading
import time
from typing import Callable, Optional

from absl import logging
from google.protobuf import text_format
import tensorflow as tf

from monolith.native_training import barrier_ops
from monolith.native_training import utils
from monolith.native_training.hooks import controller_hooks_pb2

STOP_ACTION = "Stop"

# Seconds between two looks at <model_dir>/monolith_action.
QUERY_INTERVAL = 60
QUERY_FILENAME = "monolith_action"
RESPONSE_FILENAME = "monolith_action_response"

# How long the chief waits for every worker to block at the stop barrier.
_STOP_WAIT_SECONDS = 30
_STOP_POLL_SECONDS = 2

_STOP_INDEX = 0
_TRIGGER_SAVE_INDEX = 1


class ControllerHook(tf.compat.v1.train.SessionRunHook):
  """Runs on the chief. `stop_op` / `trigger_save_op` raise flags in a local variable; after the
  next step the hook acts on them: STOP places the barrier with action "Stop" (so every
  `StopHelper` callback fires), waits for the workers to block and removes it; TRIGGER_SAVE calls
  `trigger_save(session)`."""

  def __init__(self,
               num_ps: int,
               barrier_op: barrier_ops.BarrierOp,
               trigger_save: Optional[Callable[[tf.compat.v1.Session], None]] = None):
    self._barrier_op = barrier_op
    self._trigger_save = trigger_save
    device = utils.ps_device(0) if num_ps > 0 else None
    with tf.compat.v1.variable_scope("controller_hook"), tf.device(device):
      self._control_var = tf.compat.v1.get_variable(
          "control_var",
          initializer=[False, False],
          trainable=False,
          collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
          use_resource=True)
      self._stop_op = tf.compat.v1.scatter_nd_update(self._control_var, [[_STOP_INDEX]], [True])
      self._reset_stop_op = tf.compat.v1.scatter_nd_update(self._control_var, [[_STOP_INDEX]],
                                                           [False])
      self._trigger_save_op = tf.compat.v1.scatter_nd_update(self._control_var,
                                                             [[_TRIGGER_SAVE_INDEX]], [True])
      self._reset_trigger_save_op = tf.compat.v1.scatter_nd_update(self._control_var,
                                                                   [[_TRIGGER_SAVE_INDEX]],
                                                                   [False])

  @property
  def stop_op(self) -> tf.Operation:
    return self._stop_op.op

  @property
  def trigger_save_op(self) -> tf.Operation:
    return self._trigger_save_op.op

  @property
  def reset_trigger_save_op(self) -> tf.Operation:
    return self._reset_trigger_save_op.op

  def before_run(self, run_context):
    return tf.compat.v1.train.SessionRunArgs(self._control_var)

  def after_run(self, run_context, run_values):
    should_stop, should_save = run_values.results
    session = run_context.session
    if should_stop:
      # Upstream leaves the flag set, which re-places the barrier after every later step (each
      # time stalling up to 30 s) when the chief keeps training; act on a request once.
      session.run(self._reset_stop_op)
      self._stop_workers(session)
    if should_save:
      session.run(self._reset_trigger_save_op)
      if self._trigger_save is not None:
        self._trigger_save(session)

  def _stop_workers(self, session):
    try:
      self._barrier_op.place_barrier(session, action=STOP_ACTION)
    except barrier_ops.BarrierAlreadyPlacedError:
      logging.warning("The barrier is already placed; the stop request still waits for workers.")
    deadline = time.time() + _STOP_WAIT_SECONDS
    while not self._barrier_op.is_all_blocked(session):
      if time.time() >= deadline:
        logging.warning("Not all workers blocked within %ds; unblocked: %s", _STOP_WAIT_SECONDS,
                        self._barrier_op.get_unblocked_indices(session))
        break
      time.sleep(_STOP_POLL_SECONDS)
    self._barrier_op.remove_barrier(session)


class StopHelper(object):
  """Stops a session whose barrier saw the "Stop" action: register `create_barrier_callback()`
  with the BarrierOp and add `create_stop_hook()` to the session."""

  def __init__(self):
    self._should_stop = False

  def create_barrier_callback(self):

    def callback(action: str, session):
      if action == STOP_ACTION:
        self._should_stop = True

    return callback

  def create_stop_hook(self) -> tf.compat.v1.train.SessionRunHook:
    return _StopHook(self)

  @property
  def should_stop(self) -> bool:
    return self._should_stop


class _StopHook(tf.compat.v1.train.SessionRunHook):

  def __init__(self, helper: StopHelper):
    self._helper = helper

  def after_run(self, run_context, run_values):
    if self._helper.should_stop:
      run_context.request_stop()


class QueryActionHook(tf.compat.v1.train.SessionRunHook):
  """Polls <model_dir>/monolith_action (a text-format ControllerHooksProto) in a background
  thread, runs the requested action through `controller_hook`, writes the outcome to
  <model_dir>/monolith_action_response and deletes the query file."""

  def __init__(self, model_dir: str, controller_hook: ControllerHook):
    self._model_dir = model_dir
    self._hook = controller_hook
    self._query_path = os.path.join(model_dir, QUERY_FILENAME)
    self._resp_path = os.path.join(model_dir, RESPONSE_FILENAME)
    self._stopped = threading.Event()
    self._thread = None

  def after_create_session(self, session, coord):
    self._stopped.clear()
    self._thread = threading.Thread(target=self._poll, args=(session,), daemon=True)
    self._thread.start()

  def end(self, session):
    self._stop_thread()

  def _stop_thread(self):
    self._stopped.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None

  def _poll(self, session):
    while not self._stopped.wait(QUERY_INTERVAL):
      try:
        self._query_once(session)
      except Exception as e:  # pylint: disable=broad-except
        # The poller must outlive a bad model_dir or file system hiccup; training goes on.
        logging.log_every_n_seconds(logging.ERROR, "Unable to process %s: %s", 60,
                                    self._query_path, e)

  def _query_once(self, session):
    if not tf.io.gfile.exists(self._query_path):
      return
    text = tf.io.gfile.GFile(self._query_path).read()
    try:
      query = text_format.Parse(text, controller_hooks_pb2.ControllerHooksProto())
    except text_format.ParseError as e:
      self._write_resp(str(e))
    else:
      if query.action == controller_hooks_pb2.ControllerHooksProto.TRIGGER_SAVE:
        session.run(self._hook.trigger_save_op)
        self._write_resp("OK")
      elif query.action == controller_hooks_pb2.ControllerHooksProto.STOP:
        session.run(self._hook.stop_op)
        self._write_resp("OK")
      else:
        # Upstream passes two arguments to _write_resp here and crashes the poller with a
        # TypeError; report the unknown action instead.
        self._write_resp("Unknown action: {}".format(
            controller_hooks_pb2.ControllerHooksProto.Action.Name(query.action)))
    tf.io.gfile.remove(self._query_path)

  def _write_resp(self, resp: str):
    with tf.io.gfile.GFile(self._resp_path, "w") as f:
      f.write(resp)
