"""Wire and text-format compatibility of the training-side protos."""
import unittest

from google.protobuf import text_format

from monolith.native_training.hooks import controller_hooks_pb2
from monolith.native_training.hooks.server import service_pb2
from monolith.native_training.hooks.server import service_pb2_grpc
from monolith.native_training.proto import ckpt_info_pb2
from monolith.native_training.runtime.ops import logging_ops_pb2
from monolith.native_training.runtime.parameter_sync import parameter_sync_pb2


class TrainingProtosTest(unittest.TestCase):

  def test_controller_action_text_and_bytes(self):
    proto = text_format.Parse("action: TRIGGER_SAVE", controller_hooks_pb2.ControllerHooksProto())
    self.assertEqual(proto.action, controller_hooks_pb2.ControllerHooksProto.TRIGGER_SAVE)
    self.assertEqual(proto.SerializeToString(), b"\x08\x01")
    self.assertEqual(controller_hooks_pb2.ControllerHooksProto().action,
                     controller_hooks_pb2.ControllerHooksProto.UNKNOWN)
    with self.assertRaises(text_format.ParseError):
      text_format.Parse("action: REBOOT", controller_hooks_pb2.ControllerHooksProto())

  def test_ckpt_info_text_format(self):
    info = ckpt_info_pb2.CkptInfo()
    info.slot_counts[3] = 10
    self.assertEqual(text_format.MessageToString(info), "slot_counts {\n  key: 3\n  value: 10\n}\n")
    # map entry: key field 1 varint, value field 2 varint.
    self.assertEqual(info.SerializeToString(), bytes.fromhex("0a04" "0803" "100a"))

  def test_controller_service(self):
    service = service_pb2.DESCRIPTOR.services_by_name["Controller"]
    self.assertEqual(service.full_name, "Controller")
    self.assertEqual(sorted(m.name for m in service.methods), [
        "GetBlockStatus", "GetTrainingStatus", "ResumeTraining", "SaveCheckpoint", "StopTraining"
    ])
    status = service_pb2.GetBlockStatusResponse(blocked_indices=[1, 2], unblocked_indices=[0])
    self.assertEqual(status.SerializeToString(), bytes.fromhex("0a020102" "120100"))
    self.assertEqual(service_pb2.GetTrainingStatusResponse(global_step=5).SerializeToString(),
                     b"\x08\x05")
    self.assertTrue(hasattr(service_pb2_grpc, "ControllerStub"))

  def test_machine_health_result(self):
    self.assertEqual(logging_ops_pb2.MachineHealthResult().SerializeToString(), b"")
    oom = logging_ops_pb2.MachineHealthResult(
        status=logging_ops_pb2.MachineHealthResult.OUT_OF_MEMORY, message="m")
    self.assertEqual(oom.SerializeToString(), bytes.fromhex("0801" "12016d"))
    self.assertEqual(logging_ops_pb2.MachineHealthResult.DESCRIPTOR.full_name,
                     "tensorflow.monolith_tf.MachineHealthResult")

  def test_parameter_sync_client_config(self):
    info = parameter_sync_pb2.ClientConfig.TargetExtraInfo(idc="lf", cluster="c", replica_id=3)
    self.assertEqual(parameter_sync_pb2.ClientConfig.TargetExtraInfo().replica_id, -1)
    self.assertEqual(parameter_sync_pb2.ClientConfig().timeout_in_ms, 1000)
    config = parameter_sync_pb2.ClientConfig(model_name="m", targets=["a:1"],
                                             targets_extra_info=[info])
    # model_name=1, targets=3, targets_extra_info=5 { idc=1, cluster=2, replica_id=3 }.
    self.assertEqual(config.SerializeToString(),
                     bytes.fromhex("0a016d" "1a03613a31" "2a09" "0a026c66" "120163" "1803"))
    self.assertEqual(parameter_sync_pb2.ClientConfig.DESCRIPTOR.full_name,
                     "monolith.parameter_sync.ClientConfig")


if __name__ == "__main__":
  unittest.main()
