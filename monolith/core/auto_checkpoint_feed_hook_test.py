import threading
import time
import types
from unittest import mock

import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf.tpu import compilation_result_pb2

from monolith.core import auto_checkpoint_feed_hook as hook_lib

tf.disable_eager_execution()

_SIGNAL = hook_lib._USER_PROVIDED_SIGNAL_NAME


class PeriodicLoggerTest(tf.test.TestCase):

  def test_logs_at_most_once_per_period(self):
    now = [1000.0]
    with mock.patch.object(hook_lib.time, 'time', lambda: now[0]), \
        mock.patch.object(tf.logging, 'info') as info:
      logger = hook_lib.PeriodicLogger(seconds=10)
      logger.log('a %d', 1)
      now[0] += 5
      logger.log('b')
      now[0] += 6
      logger.log('c')
      now[0] += 1
      logger.log('d')
    self.assertEqual([c.args for c in info.call_args_list], [('a %d', 1), ('c',)])


def _collect(queue_ctx, out, done):
  for iterations in queue_ctx.read_iteration_counts():
    out.append(iterations)
  done.set()


class OpQueueContextTest(tf.test.TestCase):

  def _iterations_read(self, ctx_class, signals):
    """Sends `signals` to a `ctx_class` queue context and returns the iteration counts its
    reader thread saw before the context stopped."""
    out, done = [], threading.Event()
    ctx = ctx_class('collector', _collect, (out, done))
    for iterations in signals:
      ctx.send_next_batch_signal(iterations)
    ctx.join()
    self.assertTrue(done.is_set())
    return out

  def test_signals_until_stop(self):
    self.assertEqual(self._iterations_read(hook_lib._OpQueueContext, [3, 0, 7]), [3, 0, 7])

  def test_signal_once(self):
    self.assertEqual(self._iterations_read(hook_lib._OpSignalOnceQueueContext, [5, 6, 7]), [5])

  def test_signal_values(self):
    self.assertEqual(hook_lib._SIGNAL.NEXT_BATCH, -1)
    self.assertEqual(hook_lib._SIGNAL.STOP, -2)


def _cpu_ctx():
  """A TPU context whose TPU system is initialized elsewhere (model parallel + broadcast)."""
  return types.SimpleNamespace(
      master_job=None,
      embedding_config=None,
      model_parallelism_enabled=True,
      config=types.SimpleNamespace(tpu_config=types.SimpleNamespace(
          per_host_input_for_training=hook_lib._INPUT_PIPELINE_BROADCAST,
          initial_infeed_sleep_secs=None)))


class _Rendezvous:

  def __init__(self):
    self.done = []
    self.errors = []

  def record_done(self, name):
    self.done.append(name)

  def record_error(self, name, error):
    self.errors.append((name, error))


class EndOfStreamHookTest(tf.test.TestCase):

  def _build(self, iterations_per_loop, stop_after):
    """Infeed pushes 1, 2, 3, ... into a queue; the outfeed pops them and signals stop once
    the popped value reaches `stop_after`; the train op waits for the outfeed's acks like a
    TPU training loop waits for its outfeed."""
    counter = tf.Variable(0, dtype=tf.int64)
    infeed = tf.FIFOQueue(100, tf.int64, shapes=[])
    acks = tf.FIFOQueue(100, tf.int64, shapes=[])
    enqueue_ops = infeed.enqueue(counter.assign_add(1))
    value = infeed.dequeue()
    dequeue_ops = {
        _SIGNAL: {
            'stopping': tf.greater_equal(value, stop_after)
        },
        'ack': acks.enqueue(value),
    }
    train_op = acks.dequeue_many(iterations_per_loop)
    tf.train.get_or_create_global_step()
    tf.Variable(iterations_per_loop, dtype=tf.int32, trainable=False,
                collections=[
                    'tpu_estimator_iterations_per_loop', tf.GraphKeys.LOCAL_VARIABLES
                ])
    return enqueue_ops, dequeue_ops, train_op

  def test_stops_after_stopping_signal(self):
    rendezvous = _Rendezvous()
    with tf.Graph().as_default():
      enqueue_ops, dequeue_ops, train_op = self._build(iterations_per_loop=2, stop_after=4)
      hook = hook_lib.TPUInfeedOutfeedSessionWithEndOfStreamHandlingHook(
          _cpu_ctx(), enqueue_ops, dequeue_ops, tpu_compile_op=None, rendezvous=rendezvous)
      self.assertFalse(hook._should_initialize_tpu)
      consumed = []
      with tf.train.MonitoredSession(hooks=[hook]) as sess:
        while not sess.should_stop():
          consumed.extend(sess.run(train_op))
          if consumed[-1] >= 4:
            # Wait for the outfeed thread to finish its loop and raise the flag.
            deadline = time.time() + 30
            while not hook.stopping_signal and time.time() < deadline:
              time.sleep(0.01)
            self.assertTrue(hook.stopping_signal)
      # The next step's before_run raised OutOfRangeError, which ends the session cleanly.
      self.assertEqual(consumed, [1, 2, 3, 4])
      self.assertEqual(rendezvous.done, ['infeed', 'outfeed'])
      self.assertEqual(rendezvous.errors, [])

  def test_iterations_per_loop_var(self):
    with tf.Graph().as_default():
      hook = hook_lib.TPUInfeedOutfeedSessionWithEndOfStreamHandlingHook(
          _cpu_ctx(), tf.no_op(), tf.no_op(), tpu_compile_op=None)
      var = hook._create_or_get_iterations_per_loop()
      self.assertIs(hook._create_or_get_iterations_per_loop(), var)
      self.assertEqual(var.dtype.base_dtype, tf.int32)
      self.assertIn(var, tf.local_variables())
      self.assertEqual(var.name, 'tpu_estimator/iterations_per_loop:0')
      self.assertEqual(tf.get_collection('tpu_estimator_iterations_per_loop'), [var])
      tf.add_to_collection('tpu_estimator_iterations_per_loop', var)
      with self.assertRaisesRegex(RuntimeError,
                                  'Multiple iterations_per_loop_var in collection.'):
        hook._create_or_get_iterations_per_loop()

  def test_tpu_initialization_unless_model_parallel_broadcast(self):
    ctx = _cpu_ctx()
    ctx.model_parallelism_enabled = False
    hook = hook_lib.TPUInfeedOutfeedSessionWithEndOfStreamHandlingHook(ctx, None, None, None)
    self.assertTrue(hook._should_initialize_tpu)
    self.assertFalse(hook.stopping_signal)

  def test_feed_thread_error_is_raised_in_the_training_loop(self):
    rendezvous = _Rendezvous()
    with tf.Graph().as_default():
      self._build(iterations_per_loop=1, stop_after=100)
      failing = tf.debugging.Assert(tf.placeholder_with_default(False, []), ['outfeed broke'])
      step = tf.no_op()
      hook = hook_lib.TPUInfeedOutfeedSessionWithEndOfStreamHandlingHook(
          _cpu_ctx(), tf.no_op(), failing, tpu_compile_op=None, rendezvous=rendezvous)
      with self.assertRaisesRegex(RuntimeError, '(?s)TPU feed thread failed.*outfeed broke'):
        with tf.train.MonitoredSession(hooks=[hook]) as sess:
          deadline = time.time() + 30
          sess.run(step)
          while hook._feed_error is None and time.time() < deadline:
            time.sleep(0.01)
          sess.run(step)
    self.assertEqual([name for name, _ in rendezvous.errors], ['outfeed'])

  def test_compilation_result(self):
    hook = hook_lib.TPUInfeedOutfeedSessionWithEndOfStreamHandlingHook(_cpu_ctx(), None, None,
                                                                       None)
    coord = mock.Mock()
    ok = compilation_result_pb2.CompilationResultProto().SerializeToString()
    hook._assertCompilationSucceeded(ok, coord)
    coord.request_stop.assert_not_called()
    failed = compilation_result_pb2.CompilationResultProto(
        status_error_message='bad shape').SerializeToString()
    hook._assertCompilationSucceeded(failed, coord)
    coord.request_stop.assert_called_once()

  def test_get_stopping_signals_and_name(self):
    with tf.Graph().as_default():
      signals, name = hook_lib.get_stopping_signals_and_name({'x': tf.constant([1])})
      self.assertIsNone(signals)
      self.assertEqual(name, _SIGNAL)
      signals, name = hook_lib.get_stopping_signals_and_name(
          {_SIGNAL: tf.constant([False, True])})
      self.assertEqual(name, _SIGNAL)
      self.assertEqual(signals['stopping'].dtype, tf.bool)
      self.assertEqual(signals['stopping'].shape.rank, 0)


if __name__ == '__main__':
  tf.test.main()
