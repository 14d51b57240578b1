"""TPU infeed/outfeed session hook that ends training when the input signals end-of-data.

The input pipeline (`BaseEmbeddingTask.create_input_fn` with `enable_stopping_signals`) appends
batches flagged with `_USER_PROVIDED_SIGNAL_NAME`. The model reduces the flag across replicas
(`get_stopping_signals_and_name`) and sends it through the outfeed; once the outfeed thread sees
it, the next `before_run` raises `OutOfRangeError`, which ends a MonitoredSession cleanly.
"""

import os
import queue
import threading
import time

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf.tpu import compilation_result_pb2 as tpu_compilation_result
from tensorflow.python.framework import ops
from tensorflow.python.ops import summary_ops_v2

_USER_PROVIDED_SIGNAL_NAME = '_user_provided_signal_name'
_ITERATIONS_PER_LOOP_VAR_COLLECTION = 'tpu_estimator_iterations_per_loop'
_ITERATIONS_PER_LOOP_VAR_SCOPE = 'tpu_estimator'
_ITERATIONS_PER_LOOP_VAR_NAME = 'iterations_per_loop'
# Value of `ctx.config.tpu_config.per_host_input_for_training` meaning "broadcast input".
_INPUT_PIPELINE_BROADCAST = 4
_INIT_OPS_TIMEOUT_MS = 30 * 60 * 1000


class PeriodicLogger:
  """Logs at most once every `seconds`."""

  def __init__(self, seconds: float):
    self._log_every_n_seconds = seconds
    self._last_log_time = 0

  def log(self, msg, *args, **kw):
    if time.time() - self._last_log_time > self._log_every_n_seconds:
      self._last_log_time = time.time()
      tf.compat.v1.logging.info(msg, *args, **kw)


class _SIGNAL:
  """Control values sent through the controller queues (iteration counts are >= 0)."""
  NEXT_BATCH = -1
  STOP = -2


class _OpQueueContext:
  """Runs `target(self, *args)` in a daemon thread fed with iteration counts through a queue."""

  def __init__(self, name, target, args):
    self._name = name
    self._queue = queue.Queue()
    args = (self,) + args
    self._thread = threading.Thread(name=name, target=target, args=args, daemon=True)
    self._thread.start()

  def stop(self):
    self._queue.put(_SIGNAL.STOP)

  def send_next_batch_signal(self, iterations):
    self._queue.put(iterations)

  def read_iteration_counts(self):
    while True:
      iterations = self._queue.get(block=True)
      tf.compat.v1.logging.debug('%s read iterations %s', self._name, iterations)
      if iterations == _SIGNAL.STOP:
        tf.compat.v1.logging.info('%s received shutdown signal, stopping.', self._name)
        return
      yield iterations

  def join(self):
    tf.compat.v1.logging.info('Shutting down %s thread.', self._name)
    self.stop()
    self._thread.join()


class _OpSignalOnceQueueContext(_OpQueueContext):
  """An `_OpQueueContext` whose target runs only for the first signal (an endless loop)."""

  def __init__(self, name, target, args):
    super(_OpSignalOnceQueueContext, self).__init__(name, target, args)
    self._has_signaled = False

  def send_next_batch_signal(self, iterations):
    if not self._has_signaled:
      self._queue.put(iterations)
      self._has_signaled = True


class TPUInfeedOutfeedSessionWithEndOfStreamHandlingHook(tf.compat.v1.train.SessionRunHook):
  """Drives TPU infeed/outfeed threads and stops when the outfeed reports the stop signal.

  `ctx` is the TPU context of the estimator (`embedding_config`, `model_parallelism_enabled`,
  `config.tpu_config.per_host_input_for_training`); `rendezvous` has `record_done(name)` and
  `record_error(name, exc_info)`.
  """

  def __init__(self,
               ctx,
               enqueue_ops,
               dequeue_ops,
               tpu_compile_op,
               run_infeed_loop_on_coordinator=True,
               rendezvous=None,
               master=None,
               session_config=None,
               tpu_init_ops=None,
               outfeed_every_n_steps=1):
    self._master_job = ctx.master_job if ctx is not None else None
    self._enqueue_ops = enqueue_ops
    self._dequeue_ops = dequeue_ops
    self._rendezvous = rendezvous
    self._master = master
    self._session_config = session_config
    self._init_ops = list(tpu_init_ops or [])
    self._embedding_layer_config = None
    if ctx is not None and getattr(ctx, 'embedding_config', None):
      self._embedding_layer_config = ctx.embedding_config.tpu_embedding
    self._run_infeed_loop_on_coordinator = run_infeed_loop_on_coordinator
    self._initial_infeed_sleep_secs = (
        getattr(ctx.config.tpu_config, 'initial_infeed_sleep_secs', None)
        if ctx is not None else None)
    self._tpu_compile_op = tpu_compile_op
    # With model parallelism and broadcast input, TPU initialization happens elsewhere.
    if ctx is not None and ctx.model_parallelism_enabled and (
        ctx.config.tpu_config.per_host_input_for_training == _INPUT_PIPELINE_BROADCAST):
      self._should_initialize_tpu = False
    else:
      self._should_initialize_tpu = True
    self._outfeed_every_n_steps = outfeed_every_n_steps
    self.stopping_signal = False
    self._feed_error = None

  def _create_or_get_iterations_per_loop(self):
    # The collection TPUEstimator uses, so that an estimator-created variable is shared.
    collection_name = _ITERATIONS_PER_LOOP_VAR_COLLECTION
    iter_vars = tf.compat.v1.get_collection(collection_name)
    if len(iter_vars) == 1:
      return iter_vars[0]
    if len(iter_vars) > 1:
      raise RuntimeError('Multiple iterations_per_loop_var in collection.')
    with ops.colocate_with(tf.compat.v1.train.get_or_create_global_step()):
      with tf.compat.v1.variable_scope(_ITERATIONS_PER_LOOP_VAR_SCOPE,
                                       reuse=tf.compat.v1.AUTO_REUSE):
        return tf.compat.v1.get_variable(
            _ITERATIONS_PER_LOOP_VAR_NAME,
            initializer=tf.compat.v1.zeros_initializer(),
            shape=[],
            dtype=tf.int32,
            trainable=False,
            collections=[collection_name, tf.compat.v1.GraphKeys.LOCAL_VARIABLES],
            use_resource=True)

  def begin(self):
    self._iterations_per_loop_var = self._create_or_get_iterations_per_loop()
    self._finalize_ops = []
    if self._should_initialize_tpu:
      self._finalize_ops.append(tf.compat.v1.tpu.shutdown_system(job=self._master_job))
    summary_writer_init_ops = summary_ops_v2.summary_writer_initializer_op()
    self._init_ops.extend(summary_writer_init_ops)
    # Flush every summary writer when the hook ends.
    for op in summary_writer_init_ops:
      self._finalize_ops.append(summary_ops_v2.legacy_raw_flush(writer=op.inputs[0]))

  def _run_infeed(self, queue_ctx, session):
    tf.compat.v1.logging.info('Starting infeed thread controller.')
    if self._initial_infeed_sleep_secs:
      tf.compat.v1.logging.info('Infeed thread sleeping for %d seconds.',
                                self._initial_infeed_sleep_secs)
      time.sleep(self._initial_infeed_sleep_secs)
      tf.compat.v1.logging.info('Infeed thread starting after sleep')
    try:
      if self._run_infeed_loop_on_coordinator:
        for count, steps in enumerate(queue_ctx.read_iteration_counts()):
          for i in range(steps):
            tf.compat.v1.logging.debug('Infeed enqueue for iteration (%d, %d)', count, i)
            session.run(self._enqueue_ops)
      else:
        for _ in queue_ctx.read_iteration_counts():
          session.run(self._enqueue_ops)
      tf.compat.v1.logging.info('Infeed thread finished, shutting down.')
    except Exception as e:  # pylint: disable=broad-except
      self._record_feed_error('infeed', e)

  def _run_outfeed(self, queue_ctx, session):
    tf.compat.v1.logging.info('Starting outfeed thread controller.')
    status_logger = PeriodicLogger(seconds=60)
    stopping_signals = False
    try:
      for count, steps in enumerate(queue_ctx.read_iteration_counts()):
        step_counter = 0
        for i in range(steps):
          tf.compat.v1.logging.debug('Outfeed dequeue for iteration (%d, %d)', count, i)
          if step_counter % self._outfeed_every_n_steps == 0:
            outputs = session.run(self._dequeue_ops)
            if isinstance(outputs, dict) and _USER_PROVIDED_SIGNAL_NAME in outputs:
              signals = outputs[_USER_PROVIDED_SIGNAL_NAME]
              assert isinstance(signals, dict) and 'stopping' in signals, (
                  'Outfeed {} must be a dict with "stopping", got {}'.format(
                      _USER_PROVIDED_SIGNAL_NAME, signals))
              if not stopping_signals and bool(signals['stopping']):
                tf.compat.v1.logging.info('Outfeed received the stopping signal.')
                stopping_signals = True
          step_counter += 1
          status_logger.log('Outfeed finished for iteration (%d, %d)', count, i)
        # Flip only after the whole loop so the current session.run completes normally.
        if stopping_signals:
          self.stopping_signal = True
      tf.compat.v1.logging.info('Outfeed thread finished, shutting down.')
    except Exception as e:  # pylint: disable=broad-except
      self._record_feed_error('outfeed', e)

  def _record_feed_error(self, name, error):
    tf.compat.v1.logging.error('%s thread failed: %s', name, error)
    self._feed_error = error
    if self._rendezvous is not None:
      self._rendezvous.record_error(name, error)

  def _assertCompilationSucceeded(self, result, coord):
    proto = tpu_compilation_result.CompilationResultProto()
    proto.ParseFromString(result)
    if proto.status_error_message:
      tf.compat.v1.logging.error('Compilation failed: {}'.format(proto.status_error_message))
      coord.request_stop()
    else:
      tf.compat.v1.logging.info('Compilation succeeded')

  def after_create_session(self, session, coord):
    if self._should_initialize_tpu:
      tf.compat.v1.logging.info('Init TPU system')
      start = time.time()
      with tf.Graph().as_default():
        with tf.compat.v1.Session(self._master, config=self._session_config) as sess:
          sess.run(tf.compat.v1.tpu.initialize_system(
              job=self._master_job, embedding_config=self._embedding_layer_config))
      tf.compat.v1.logging.info('Initialized TPU in %d seconds', time.time() - start)

    session.run(self._init_ops,
                options=config_pb2.RunOptions(timeout_in_ms=_INIT_OPS_TIMEOUT_MS))

    if os.environ.get('TPU_SPLIT_COMPILE_AND_EXECUTE', '') == '1':
      tf.compat.v1.logging.info('Compiling user program: this may take a while...')
      self._assertCompilationSucceeded(session.run(self._tpu_compile_op), coord)

    self._infeed_controller = self._create_infeed_controller('InfeedController', session)
    self._outfeed_controller = _OpQueueContext(name='OutfeedController',
                                               target=self._run_outfeed,
                                               args=(session,))

    watchdog_timeout = int(os.environ.get('TF_TPU_WATCHDOG_TIMEOUT', '0'))
    if watchdog_timeout > 0:
      # The TPU worker watchdog (tensorflow/python/tpu/session_support.py) was removed from
      # TensorFlow; rely on the session's own timeouts instead.
      tf.compat.v1.logging.warning(
          'TF_TPU_WATCHDOG_TIMEOUT=%d is ignored: this TensorFlow has no TPU worker watchdog.',
          watchdog_timeout)

  def _create_infeed_controller(self, name, session):
    return _OpQueueContext(name=name, target=self._run_infeed, args=(session,))

  def before_run(self, run_context):
    if self._feed_error is not None:
      raise RuntimeError('TPU feed thread failed: {}'.format(self._feed_error))
    if self.stopping_signal:
      tf.compat.v1.logging.info('Stopping signal received; ending the training loop.')
      raise tf.errors.OutOfRangeError(None, None, 'Stopping signals are received.')
    iterations = run_context.session.run(self._iterations_per_loop_var)
    tf.compat.v1.logging.debug('Enqueue next (%d) batch(es) of data to infeed.', iterations)
    self._infeed_controller.send_next_batch_signal(iterations)
    tf.compat.v1.logging.debug('Dequeue next (%d) batch(es) of data from outfeed.', iterations)
    self._outfeed_controller.send_next_batch_signal(iterations)

  def end(self, session):
    tf.compat.v1.logging.info('Stop infeed thread controller')
    self._infeed_controller.join()
    if self._rendezvous is not None:
      self._rendezvous.record_done('infeed')
    tf.compat.v1.logging.info('Stop output thread controller')
    self._outfeed_controller.join()
    if self._rendezvous is not None:
      self._rendezvous.record_done('outfeed')
    tf.compat.v1.logging.info('Shutdown TPU system.')
    session.run(self._finalize_ops)


def get_stopping_signals_and_name(features):
  """Returns (`{'stopping': bool}` reduced over all replicas, the signal name), or (None, name).

  Must be called inside the TPU computation when the signal is present.
  """
  stopping_signals = None
  if _USER_PROVIDED_SIGNAL_NAME in features:
    signal = tf.cast(features[_USER_PROVIDED_SIGNAL_NAME], tf.float32)
    # Any replica that saw a stop batch stops everybody.
    stopping = tf.greater(tf.compat.v1.tpu.cross_replica_sum(tf.reduce_sum(signal)), 0)
    stopping_signals = {'stopping': stopping}
  return stopping_signals, _USER_PROVIDED_SIGNAL_NAME
