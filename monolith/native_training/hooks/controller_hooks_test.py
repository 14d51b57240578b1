import os
import time
from unittest import mock

import tensorflow as tf

from monolith.native_training import barrier_ops
from monolith.native_training.hooks import controller_hooks
from monolith.native_training.test_utils import wait_for


class ControllerHookTest(tf.test.TestCase):

  def testStop(self):
    helper = controller_hooks.StopHelper()
    barrier_op = barrier_ops.BarrierOp(1, barrier_callbacks=[helper.create_barrier_callback()])
    hook = controller_hooks.ControllerHook(0, barrier_op)
    global_step = tf.compat.v1.train.get_or_create_global_step()
    train_op = global_step.assign_add(1)
    with tf.compat.v1.train.MonitoredSession(
        hooks=[hook, helper.create_stop_hook()]) as sess:
      sess.run(train_op)
      self.assertFalse(sess.should_stop())
      sess.run(hook.stop_op)
      # The flag raised by stop_op may be read in this run or the next one.
      if not sess.should_stop():
        sess.run(train_op)
      self.assertTrue(helper.should_stop)
      self.assertTrue(sess.should_stop())
      raw = sess._tf_sess()  # pylint: disable=protected-access
      # The chief removed the barrier again once every worker (here: itself) was blocked.
      self.assertTrue(barrier_op.is_barrier_removed(raw))

  def testOtherBarrierActionsDoNotStop(self):
    helper = controller_hooks.StopHelper()
    barrier_op = barrier_ops.BarrierOp(1, barrier_callbacks=[helper.create_barrier_callback()])
    global_step = tf.compat.v1.train.get_or_create_global_step()
    with tf.compat.v1.train.MonitoredSession(hooks=[helper.create_stop_hook()]) as sess:
      barrier_op.place_barrier(sess._tf_sess(), action="not_stop")  # pylint: disable=protected-access
      sess.run(global_step)
      self.assertFalse(helper.should_stop)
      self.assertFalse(sess.should_stop())

  def testSave(self):
    saved_sessions = []
    barrier_op = barrier_ops.BarrierOp(1)
    hook = controller_hooks.ControllerHook(0, barrier_op, trigger_save=saved_sessions.append)
    global_step = tf.compat.v1.train.get_or_create_global_step()
    train_op = global_step.assign_add(1)
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
      sess.run(train_op)
      self.assertEqual(saved_sessions, [])
      sess.run(hook.trigger_save_op)
      sess.run(train_op)  # the flag is seen by this run at the latest
      self.assertLen(saved_sessions, 1)
      # The flag was reset: later steps do not save again.
      sess.run(train_op)
      sess.run(train_op)
      self.assertLen(saved_sessions, 1)
      self.assertFalse(sess.should_stop())


class QueryActionHookTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self._model_dir = os.path.join(self.get_temp_dir(), self._testMethodName)
    os.makedirs(self._model_dir)
    self._query = os.path.join(self._model_dir, "monolith_action")
    self._resp = os.path.join(self._model_dir, "monolith_action_response")
    patcher = mock.patch.object(controller_hooks, "QUERY_INTERVAL", 0.05)
    patcher.start()
    self.addCleanup(patcher.stop)

  def _write_query(self, text):
    with open(self._query + ".tmp", "w") as f:
      f.write(text)
    os.rename(self._query + ".tmp", self._query)

  def _wait_processed(self):
    wait_for(lambda: not os.path.exists(self._query))
    with open(self._resp) as f:
      return f.read()

  def _session(self, trigger_save=None, helper=None):
    callbacks = [helper.create_barrier_callback()] if helper else None
    barrier_op = barrier_ops.BarrierOp(1, barrier_callbacks=callbacks)
    hook = controller_hooks.ControllerHook(0, barrier_op, trigger_save=trigger_save)
    hooks = [hook, controller_hooks.QueryActionHook(self._model_dir, hook)]
    if helper:
      hooks.append(helper.create_stop_hook())
    self._train_op = tf.compat.v1.train.get_or_create_global_step().assign_add(1)
    return tf.compat.v1.train.MonitoredSession(hooks=hooks)

  def testTriggerSave(self):
    saved = []
    with self._session(trigger_save=saved.append) as sess:
      self._write_query("action: TRIGGER_SAVE")
      self.assertEqual(self._wait_processed(), "OK")
      sess.run(self._train_op)
      self.assertLen(saved, 1)

  def testStop(self):
    helper = controller_hooks.StopHelper()
    with self._session(helper=helper) as sess:
      self._write_query("action: STOP")
      self.assertEqual(self._wait_processed(), "OK")
      sess.run(self._train_op)
      self.assertTrue(sess.should_stop())

  def testUnknownActionWritesErrorResponse(self):
    saved = []
    with self._session(trigger_save=saved.append) as sess:
      self._write_query("")  # action left at UNKNOWN
      self.assertEqual(self._wait_processed(), "Unknown action: UNKNOWN")
      # The poller survived: a later query is still served.
      self._write_query("action: TRIGGER_SAVE")
      self.assertEqual(self._wait_processed(), "OK")
      sess.run(self._train_op)
      self.assertLen(saved, 1)

  def testUnparsableQueryWritesErrorResponse(self):
    with self._session() as sess:
      self._write_query("action: EXPLODE")
      resp = self._wait_processed()  # the parse error text
      self.assertIn("EXPLODE", resp)
      self.assertNotEqual(resp, "OK")
      sess.run(self._train_op)
      self.assertFalse(sess.should_stop())

  def testUnreadableQueryKeepsPolling(self):
    saved = []
    os.makedirs(self._query)  # a directory where the query file should be: reading it fails
    with self._session(trigger_save=saved.append) as sess:
      time.sleep(0.3)  # several failed polls
      self.assertFalse(os.path.exists(self._resp))
      os.rmdir(self._query)
      self._write_query("action: TRIGGER_SAVE")
      self.assertEqual(self._wait_processed(), "OK")
      sess.run(self._train_op)
      self.assertLen(saved, 1)


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
