"""PS health checks: a background thread on the chief evaluates every PS's machine-health op;
when one reports a problem it reports the results and places the barrier so that the workers
stop making progress against a sick PS."""

import dataclasses
import threading
from typing import Callable, Dict

from absl import logging
from google.protobuf import text_format
import tensorflow as tf

from monolith.native_training import barrier_ops
from monolith.native_training import logging_ops
from monolith.native_training import utils
from monolith.native_training.runtime.ops import logging_ops_pb2

# Seconds between two health checks.
_CHECK_INTERVAL_SECONDS = 30


def get_ps_machine_info_shared_name(index: int) -> str:
  return "ps_machine_info_{}".format(index)


def _default_report(results: Dict[int, logging_ops_pb2.MachineHealthResult]):
  for index, result in sorted(results.items()):
    logging.error("PS %d: %s", index, text_format.MessageToString(result, as_one_line=True))


@dataclasses.dataclass
class Config:
  barrier_op: barrier_ops.BarrierOp
  num_ps: int
  ps_device_fn: Callable[[int], str] = utils.ps_device
  # Called with {ps index: MachineHealthResult} for every unhealthy PS.
  report_fn: Callable[[Dict[int, logging_ops_pb2.MachineHealthResult]], None] = _default_report


class _PsHealthChecker(object):

  def __init__(self, config: Config):
    self._config = config
    self._statuses = []
    for i in range(config.num_ps):
      with tf.device(config.ps_device_fn(i)):
        info = logging_ops.machine_info(shared_name=get_ps_machine_info_shared_name(i))
        self._statuses.append(logging_ops.check_machine_health(info))

  def start(self, session, coord: tf.train.Coordinator):
    thread = threading.Thread(target=self._run, args=(session, coord), daemon=True)
    coord.register_thread(thread)
    thread.start()

  def _run(self, session, coord: tf.train.Coordinator):
    with coord.stop_on_exception():
      while not coord.should_stop():
        statuses = session.run(self._statuses) if self._statuses else []
        unhealthy = {
            i: logging_ops_pb2.MachineHealthResult.FromString(status)
            for i, status in enumerate(statuses)
            if len(status) > 0
        }
        if unhealthy:
          self._config.report_fn(unhealthy)
          try:
            self._config.barrier_op.place_barrier(session)
          except barrier_ops.BarrierAlreadyPlacedError:
            pass  # already holding the workers, which is what we want
          # Report once; training is held at the barrier until an operator intervenes.
          coord.wait_for_stop()
          return
        coord.wait_for_stop(timeout=_CHECK_INTERVAL_SECONDS)


class PsHealthCheckerHook(tf.compat.v1.train.SessionRunHook):

  def __init__(self, config: Config):
    self._config = config
    self._checker = None

  def begin(self):
    self._checker = _PsHealthChecker(self._config)

  def after_create_session(self, session, coord):
    self._checker.start(session, coord)
