import os
import threading
import time

import grpc
import tensorflow as tf
from tensorflow.python.training import monitored_session

from monolith.native_training import barrier_ops
from monolith.native_training import save_utils
from monolith.native_training.hooks.server import client_lib
from monolith.native_training.hooks.server import constants
from monolith.native_training.hooks.server import server_lib
from monolith.native_training.hooks.server import service_pb2
from monolith.native_training.test_utils import wait_for


class _CountingListener(tf.compat.v1.train.CheckpointSaverListener):

  def __init__(self):
    self.saved_steps = []

  def after_save(self, session, global_step_value):
    self.saved_steps.append(global_step_value)


class ServerLibTest(tf.test.TestCase):

  def test_controller_over_grpc(self):
    model_dir = os.path.join(self.get_temp_dir(), "controller")
    global_step = tf.compat.v1.train.get_or_create_global_step()
    train_op = global_step.assign_add(1)
    barrier_op = barrier_ops.BarrierOp(2, wait_seconds=0.05)
    listener = _CountingListener()
    saver_hook = save_utils.NoFirstSaveCheckpointSaverHook(model_dir,
                                                           save_secs=10000,
                                                           listeners=[listener])
    server_hook = server_lib.ServerHook(model_dir, barrier_op, saver_hook)

    with tf.compat.v1.train.SingularMonitoredSession(hooks=[saver_hook, server_hook]) as sess:
      raw_sess = sess.raw_session()
      stop_worker = threading.Event()
      worker_session = monitored_session._HookedSession(raw_sess,
                                                        [barrier_ops.BarrierHook(1, barrier_op)])

      def work():
        while not stop_worker.is_set():
          worker_session.run(train_op)
          time.sleep(0.01)

      worker = threading.Thread(target=work)
      worker.start()
      try:
        with open(os.path.join(model_dir, constants.SERVER_ADDR_FILENAME)) as f:
          self.assertRegex(f.read(), r"^.+:\d+$")
        stub = client_lib.get_stub_from_model_dir(model_dir)
        wait_for(lambda: raw_sess.run(global_step) > 0)

        status = stub.GetBlockStatus(service_pb2.GetBlockStatusRequest())
        self.assertEqual(list(status.blocked_indices), [])
        self.assertEqual(list(status.unblocked_indices), [0, 1])

        stub.StopTraining(service_pb2.StopTrainingRequest())
        wait_for(lambda: list(
            stub.GetBlockStatus(service_pb2.GetBlockStatusRequest()).blocked_indices) == [0, 1])
        status = stub.GetBlockStatus(service_pb2.GetBlockStatusRequest())
        self.assertEqual(list(status.unblocked_indices), [])
        blocked_step = raw_sess.run(global_step)
        time.sleep(0.3)
        self.assertEqual(raw_sess.run(global_step), blocked_step)  # the worker makes no progress

        with self.assertRaises(grpc.RpcError) as cm:
          stub.StopTraining(service_pb2.StopTrainingRequest())
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        self.assertEqual(cm.exception.details(), "Barrier is placed already.")

        self.assertEqual(
            stub.GetTrainingStatus(service_pb2.GetTrainingStatusRequest()).global_step,
            blocked_step)

        self.assertEqual(listener.saved_steps, [])  # no save at session creation
        stub.SaveCheckpoint(service_pb2.SaveCheckpointRequest())
        self.assertEqual(listener.saved_steps, [blocked_step])
        self.assertEqual(tf.train.latest_checkpoint(model_dir),
                         os.path.join(model_dir, "model.ckpt-{}".format(blocked_step)))
        state = save_utils.get_monolith_checkpoint_state(model_dir)
        self.assertGreater(state.last_checkpoint_save_timestamp, 0)

        stub.ResumeTraining(service_pb2.ResumeTrainingRequest())
        wait_for(lambda: raw_sess.run(global_step) > blocked_step)
        wait_for(lambda: list(
            stub.GetBlockStatus(service_pb2.GetBlockStatusRequest()).blocked_indices) == [])
      finally:
        stop_worker.set()
        barrier_op.remove_barrier(raw_sess)
        worker.join()
      step = raw_sess.run(global_step)
      self.assertEqual(
          stub.GetTrainingStatus(service_pb2.GetTrainingStatusRequest()).global_step, step)
    self.assertEqual(listener.saved_steps, [blocked_step, step])  # plus the final save at end

  def test_client_without_server_address(self):
    model_dir = os.path.join(self.get_temp_dir(), "no_server")
    with self.assertRaisesRegex(ValueError, "controller_server_addr.txt"):
      client_lib.get_stub_from_model_dir(model_dir)


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
