import tensorflow as tf

from monolith.native_training.hooks import hook_utils


class _RecordingListener(tf.compat.v1.train.CheckpointSaverListener):

  def __init__(self):
    self.calls = []

  def begin(self):
    self.calls.append("begin")

  def before_save(self, session, global_step_value):
    self.calls.append(("before_save", global_step_value))

  def after_save(self, session, global_step_value):
    self.calls.append(("after_save", global_step_value))
    return True

  def end(self, session, global_step_value):
    self.calls.append(("end", global_step_value))

  def __repr__(self):
    return "Recording"


def _drive(listener):
  listener.begin()
  listener.before_save(None, 7)
  should_stop = listener.after_save(None, 7)
  listener.end(None, 8)
  return should_stop


class HookUtilsTest(tf.test.TestCase):

  def testBeforeAfterSaverListener(self):
    # The plain base listener must be accepted and called without errors.
    _drive(hook_utils.BeforeSaveListener(tf.compat.v1.train.CheckpointSaverListener()))
    _drive(hook_utils.AfterSaveListener(tf.compat.v1.train.CheckpointSaverListener()))

  def testBeforeSaveListenerForwardsOnlyBeforeSave(self):
    inner = _RecordingListener()
    self.assertIsNone(_drive(hook_utils.BeforeSaveListener(inner)))
    self.assertEqual(inner.calls, [("before_save", 7)])

  def testAfterSaveListenerForwardsOnlyAfterSave(self):
    inner = _RecordingListener()
    # after_save's "request stop" result is passed through.
    self.assertTrue(_drive(hook_utils.AfterSaveListener(inner)))
    self.assertEqual(inner.calls, [("after_save", 7)])

  def testRepr(self):
    self.assertEqual(repr(hook_utils.BeforeSaveListener(_RecordingListener())),
                     "BeforeSaveListener(Recording)")
    self.assertEqual(repr(hook_utils.AfterSaveListener(_RecordingListener())),
                     "AfterSaveListener(Recording)")


if __name__ == "__main__":
  tf.test.main()
