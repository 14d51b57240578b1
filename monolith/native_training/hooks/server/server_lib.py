"""The training Controller gRPC service (stop/resume through the barrier, on-demand checkpoint,
status) and the hook that serves it on the chief for the life of the session."""

from concurrent import futures
import os

from absl import logging
import grpc
import tensorflow as tf

from monolith.native_training import barrier_ops
from monolith.native_training import net_utils
from monolith.native_training import save_utils
from monolith.native_training.hooks.server import constants
from monolith.native_training.hooks.server import service_pb2
from monolith.native_training.hooks.server import service_pb2_grpc

_STOP_GRACE_SECONDS = 20


class ControllerServicer(service_pb2_grpc.ControllerServicer):

  def __init__(self, sess, barrier_op: barrier_ops.BarrierOp,
               saver_hook: save_utils.NoFirstSaveCheckpointSaverHook):
    self._sess = sess
    self._barrier_op = barrier_op
    self._saver_hook = saver_hook
    self._global_step = tf.compat.v1.train.get_global_step()

  def StopTraining(self, request, context):
    try:
      self._barrier_op.place_barrier(self._sess)
    except barrier_ops.BarrierAlreadyPlacedError:
      context.abort(grpc.StatusCode.ALREADY_EXISTS, "Barrier is placed already.")
    return service_pb2.StopTrainingResponse()

  def ResumeTraining(self, request, context):
    self._barrier_op.remove_barrier(self._sess)
    return service_pb2.ResumeTrainingResponse()

  def GetBlockStatus(self, request, context):
    blocked = self._barrier_op.get_blocked_indices(self._sess)
    unblocked = sorted(set(range(self._barrier_op.capacity)) - set(blocked))
    return service_pb2.GetBlockStatusResponse(blocked_indices=blocked,
                                              unblocked_indices=unblocked)

  def SaveCheckpoint(self, request, context):
    self._saver_hook.trigger_save(self._sess)
    return service_pb2.SaveCheckpointResponse()

  def GetTrainingStatus(self, request, context):
    return service_pb2.GetTrainingStatusResponse(
        global_step=int(self._sess.run(self._global_step)))


class ServerHook(tf.compat.v1.train.SessionRunHook):
  """Serves the Controller service once the session exists and publishes its address in
  <model_dir>/controller_server_addr.txt."""

  def __init__(self, model_dir: str, barrier_op: barrier_ops.BarrierOp,
               saver_hook: save_utils.NoFirstSaveCheckpointSaverHook):
    self._model_dir = model_dir
    self._barrier_op = barrier_op
    self._saver_hook = saver_hook
    self._server = None

  def after_create_session(self, session, coord):
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_pb2_grpc.add_ControllerServicer_to_server(
        ControllerServicer(session, self._barrier_op, self._saver_hook), self._server)
    port = self._server.add_insecure_port("[::]:0")
    self._server.start()
    addr = net_utils.get_local_server_addr(port)
    tf.io.gfile.makedirs(self._model_dir)
    addr_file = os.path.join(self._model_dir, constants.SERVER_ADDR_FILENAME)
    with tf.io.gfile.GFile(addr_file + ".tmp", "w") as f:
      f.write(addr)
    # Renamed into place so that clients never read a half-written address.
    tf.io.gfile.rename(addr_file + ".tmp", addr_file, overwrite=True)
    logging.info("Controller server listens on %s", addr)

  def end(self, session):
    if self._server is not None:
      self._server.stop(_STOP_GRACE_SECONDS).wait()
      self._server = None
