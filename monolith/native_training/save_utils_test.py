import datetime
import os
from unittest import mock

import tensorflow as tf

from monolith.native_training import monolith_checkpoint_state_pb2
from monolith.native_training import save_utils

_State = monolith_checkpoint_state_pb2.MonolithCheckpointState


class _Recorder(tf.compat.v1.train.CheckpointSaverListener):

  def __init__(self, fail_before_save=False):
    self.events = []
    self._fail = fail_before_save

  def before_save(self, session, global_step_value):
    self.events.append(("before", global_step_value))
    if self._fail:
      raise RuntimeError("guard failure is only logged")

  def after_save(self, session, global_step_value):
    self.events.append(("after", global_step_value))


class _FailingSaver(object):
  """Wraps a Saver; the first `failures` saves raise an OpError."""

  def __init__(self, saver, failures):
    self._saver = saver
    self._failures = failures
    self.saver_def = saver.saver_def

  def save(self, *args, **kwargs):
    if self._failures > 0:
      self._failures -= 1
      raise tf.errors.UnavailableError(None, None, "disk went away")
    return self._saver.save(*args, **kwargs)

  def export_meta_graph(self, *args, **kwargs):
    return self._saver.export_meta_graph(*args, **kwargs)


class SaveUtilsTest(tf.test.TestCase):

  def _model_dir(self):
    return os.path.join(self.get_temp_dir(), self._testMethodName)

  def test_no_first_save_and_state(self):
    model_dir = self._model_dir()
    step = tf.compat.v1.train.get_or_create_global_step()
    train_op = step.assign_add(1)
    listener = _Recorder()
    guard = _Recorder(fail_before_save=True)
    hook = save_utils.NoFirstSaveCheckpointSaverHook(model_dir,
                                                     save_steps=2,
                                                     listeners=[listener],
                                                     guard_saver_listeners=[guard])
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
      # No checkpoint at session creation, but the state file and debugging meta graph exist.
      self.assertIsNone(tf.train.latest_checkpoint(model_dir))
      state = save_utils.get_monolith_checkpoint_state(model_dir)
      self.assertEqual(state.builtin_hash_table_type, _State.CUCKOO_HASH_MAP)
      self.assertTrue(os.path.exists(os.path.join(model_dir, "meta_graph_for_debugging.pb")))
      for _ in range(2):
        sess.run(train_op)
    self.assertEqual(listener.events, [("before", 2), ("after", 2)])
    self.assertEqual(guard.events, [("before", 2), ("after", 2)])
    self.assertEqual(tf.train.latest_checkpoint(model_dir), os.path.join(model_dir,
                                                                         "model.ckpt-2"))
    self.assertGreater(save_utils.get_monolith_checkpoint_state(model_dir)
                       .last_checkpoint_save_timestamp, 0)

  def test_multi_hash_table_state(self):
    model_dir = self._model_dir()
    tf.compat.v1.train.get_or_create_global_step()
    hook = save_utils.NoFirstSaveCheckpointSaverHook(model_dir,
                                                     save_secs=1000,
                                                     use_native_multi_hash_table=True)
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]):
      pass
    self.assertEqual(save_utils.get_monolith_checkpoint_state(model_dir).builtin_hash_table_type,
                     _State.MULTI_CUCKOO_HASH_MAP)

  def test_retry_then_success(self):
    model_dir = self._model_dir()
    tf.compat.v1.train.get_or_create_global_step()
    saver = _FailingSaver(tf.compat.v1.train.Saver(), failures=1)
    hook = save_utils.NoFirstSaveCheckpointSaverHook(model_dir, save_secs=1000, saver=saver)
    with tf.compat.v1.train.SingularMonitoredSession(hooks=[hook]) as sess:
      hook.trigger_save(sess.raw_session())
      self.assertEqual(tf.train.latest_checkpoint(model_dir),
                       os.path.join(model_dir, "model.ckpt-0"))

  def test_two_failures_raise_unless_ignored(self):
    model_dir = self._model_dir()
    tf.compat.v1.train.get_or_create_global_step()
    saver = _FailingSaver(tf.compat.v1.train.Saver(), failures=4)
    hook = save_utils.NoFirstSaveCheckpointSaverHook(model_dir, save_secs=1000, saver=saver)
    with tf.compat.v1.train.SingularMonitoredSession(hooks=[hook]) as sess:
      with self.assertRaisesRegex(tf.errors.UnavailableError, "disk went away"):
        hook.trigger_save(sess.raw_session())
      hook.trigger_save(sess.raw_session(), ignore_save_errors=True)  # 2 more failures, ignored
      self.assertIsNone(tf.train.latest_checkpoint(model_dir))
      hook.trigger_save(sess.raw_session())
      self.assertIsNotNone(tf.train.latest_checkpoint(model_dir))

  def test_unparsable_state_is_ignored(self):
    model_dir = self._model_dir()
    os.makedirs(model_dir)
    with open(os.path.join(model_dir, "monolith_checkpoint"), "w") as f:
      f.write("this is { not text format")
    with self.assertLogs(level="WARNING") as logs:
      self.assertIsNone(save_utils.get_monolith_checkpoint_state(model_dir))
    self.assertTrue(any("Checkpoint ignored" in line for line in logs.output))
    self.assertIsNone(save_utils.get_monolith_checkpoint_state(self._model_dir() + "_missing"))

  def test_remove_invalid_path(self):
    model_dir = self._model_dir()
    v = tf.compat.v1.get_variable("v", initializer=1.0)
    saver = tf.compat.v1.train.Saver([v])
    with self.session() as sess:
      sess.run(v.initializer)
      saver.save(sess, os.path.join(model_dir, "model.ckpt"), global_step=3)
    state = _State(exempt_model_checkpoint_paths=["model.ckpt-3", "model.ckpt-4"])
    save_utils.write_monolith_checkpoint_state(model_dir, state)
    got = save_utils.get_monolith_checkpoint_state(model_dir, remove_invalid_path=True)
    self.assertEqual(list(got.exempt_model_checkpoint_paths),
                     [os.path.join(model_dir, "model.ckpt-3")])
    helper = save_utils.SaveHelper(os.path.join(model_dir, "model.ckpt"))
    self.assertEqual(helper.get_existing_checkpoint_steps(), {3})
    self.assertEqual(helper.get_ckpt_prefix(7), os.path.join(model_dir, "model.ckpt-7"))
    self.assertEqual(save_utils.SaveHelper.get_ckpt_asset_dir("p-7"), "p-7.assets/")
    self.assertEqual(save_utils.SaveHelper.get_global_step_value("/a/model.ckpt-12"), 12)
    self.assertEqual(save_utils.SaveHelper.get_global_step_value("nodash"), 0)

  def test_tide_timer(self):
    timer = save_utils.SecondOrStepTimerWithTideSetting(every_steps=10,
                                                        tide_start_hour=1,
                                                        tide_start_minute=0,
                                                        tide_end_hour=5,
                                                        tide_end_minute=0,
                                                        tide_every_secs=3600)
    self.assertTrue(timer.should_trigger_for_step(1))  # never triggered
    timer.update_last_triggered_step(1)
    self.assertFalse(timer.should_trigger_for_step(1))
    with mock.patch.object(save_utils, "tide_available_now", return_value=True):
      self.assertTrue(timer.should_trigger_for_step(11))
    with mock.patch.object(save_utils, "tide_available_now", return_value=False):
      self.assertFalse(timer.should_trigger_for_step(11))  # outside tide: every 3600 s
    timer.disable()
    self.assertFalse(timer.should_trigger_for_step(100))
    timer.enable()
    with mock.patch.object(save_utils, "tide_available_now", return_value=True):
      self.assertTrue(timer.should_trigger_for_step(100))

  def test_tide_available_now(self):

    def at(hour, minute):
      fake = mock.MagicMock(wraps=datetime.datetime)
      fake.utcnow.return_value = datetime.datetime(2024, 1, 1, hour, minute)
      return mock.patch.object(save_utils.datetime, "datetime", fake)

    with at(3, 0):
      self.assertTrue(save_utils.tide_available_now(1, 0, 5, 0))
    with at(5, 0):
      self.assertFalse(save_utils.tide_available_now(1, 0, 5, 0))
    # start >= end (overnight window): "before start or from end on", which upstream keeps and
    # which holds at any time of day.
    for hour in (3, 7, 23):
      with at(hour, 0):
        self.assertTrue(save_utils.tide_available_now(22, 0, 6, 0))


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
