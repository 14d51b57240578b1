import threading
import time
from unittest import mock

import tensorflow as tf

from monolith.native_training import barrier_ops
from monolith.native_training import logging_ops
from monolith.native_training.hooks import ps_check_hooks
from monolith.native_training.runtime.ops import logging_ops_pb2


class _RecordingReport(object):

  def __init__(self):
    self.calls = []
    self.called = threading.Event()

  def __call__(self, results):
    self.calls.append(results)
    self.called.set()


class _MachineInfoFirstHook(tf.compat.v1.train.SessionRunHook):
  """Creates PS 0's machine info with its own limit before the checker's op runs."""

  def __init__(self, mem_limit):
    self._info = logging_ops.machine_info(
        mem_limit=mem_limit, shared_name=ps_check_hooks.get_ps_machine_info_shared_name(0))

  def after_create_session(self, session, coord):
    session.run(self._info)


class _RaiseHook(tf.compat.v1.train.SessionRunHook):

  def __init__(self, where):
    self._where = where

  def after_create_session(self, session, coord):
    if self._where == "after_create_session":
      raise tf.errors.DeadlineExceededError(None, None, "raised in after_create_session")

  def before_run(self, run_context):
    if self._where == "before_run":
      raise tf.errors.DeadlineExceededError(None, None, "raised in before_run")


def _local_device(index):
  return "/device:CPU:0"


class PsCheckHooksTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    patcher = mock.patch.object(ps_check_hooks, "_CHECK_INTERVAL_SECONDS", 0.05)
    patcher.start()
    self.addCleanup(patcher.stop)

  def _checker_hook(self, report, barrier_op):
    return ps_check_hooks.PsHealthCheckerHook(
        ps_check_hooks.Config(barrier_op=barrier_op,
                              num_ps=1,
                              ps_device_fn=_local_device,
                              report_fn=report))

  def test_shared_name(self):
    self.assertEqual(ps_check_hooks.get_ps_machine_info_shared_name(3), "ps_machine_info_3")

  def test_basic(self):
    report = _RecordingReport()
    barrier_op = barrier_ops.BarrierOp(1)
    hooks = [_MachineInfoFirstHook(1 << 62), self._checker_hook(report, barrier_op)]
    global_step = tf.compat.v1.train.get_or_create_global_step()
    with tf.compat.v1.train.MonitoredSession(hooks=hooks) as sess:
      time.sleep(0.5)  # about ten health checks
      sess.run(global_step)
      self.assertEqual(report.calls, [])
      self.assertTrue(barrier_op.is_barrier_removed(sess._tf_sess()))  # pylint: disable=protected-access

  def test_oom(self):
    report = _RecordingReport()
    barrier_op = barrier_ops.BarrierOp(1)
    hooks = [_MachineInfoFirstHook(0), self._checker_hook(report, barrier_op)]
    with tf.compat.v1.train.MonitoredSession(hooks=hooks) as sess:
      self.assertTrue(report.called.wait(30))
      time.sleep(0.5)  # would be about ten more checks
      self.assertLen(report.calls, 1)
      self.assertEqual(list(report.calls[0]), [0])
      result = report.calls[0][0]
      self.assertEqual(result.status, logging_ops_pb2.MachineHealthResult.OUT_OF_MEMORY)
      self.assertRegex(result.message, r"^Memory limit exceeded. Current: \d+, Limit: 0$")
      self.assertTrue(barrier_op.is_barrier_placed(sess._tf_sess()))  # pylint: disable=protected-access

  def _assert_raise_propagates(self, where):
    """A hook raising in `where` next to the checker fails the session with that error."""
    hooks = [self._checker_hook(_RecordingReport(), barrier_ops.BarrierOp(1)), _RaiseHook(where)]
    global_step = tf.compat.v1.train.get_or_create_global_step()
    with self.assertRaisesRegex(tf.errors.DeadlineExceededError, where):
      with tf.compat.v1.train.MonitoredSession(hooks=hooks) as sess:
        sess.run(global_step)

  def test_raise_in_after_create_session(self):
    self._assert_raise_propagates("after_create_session")

  def test_raise_in_before_run(self):
    self._assert_raise_propagates("before_run")

  def test_default_report(self):
    result = logging_ops_pb2.MachineHealthResult(
        status=logging_ops_pb2.MachineHealthResult.OUT_OF_MEMORY, message="too big")
    with self.assertLogs(level="ERROR") as logs:
      ps_check_hooks._default_report({1: result})  # pylint: disable=protected-access
    self.assertLen(logs.output, 1)
    self.assertIn('PS 1: status: OUT_OF_MEMORY message: "too big"', logs.output[0])


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
