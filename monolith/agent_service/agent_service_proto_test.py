"""Wire compatibility of agent_service.proto: hand-computed bytes, round trips, gRPC paths."""
import unittest

from monolith.agent_service import agent_service_pb2
from monolith.agent_service import agent_service_pb2_grpc


class AgentServiceProtoTest(unittest.TestCase):

  def test_get_replicas_request_bytes(self):
    request = agent_service_pb2.GetReplicasRequest(server_type=agent_service_pb2.DENSE, task=3,
                                                   model_name="m")
    self.assertEqual(request.SerializeToString(), bytes.fromhex("0802" "1003" "1a016d"))

  def test_get_resource_response_bytes(self):
    response = agent_service_pb2.GetResourceResponse(address="a", shard_id=1, replica_id=2,
                                                     memory=300, cpu=-1.0)
    # memory: field 4 varint 300 = ac 02; cpu: field 5 fixed32 -1.0f = 00 00 80 bf.
    self.assertEqual(response.SerializeToString(),
                     bytes.fromhex("0a0161" "1001" "1802" "20ac02" "2d000080bf"))

  def test_heartbeat_round_trip(self):
    response = agent_service_pb2.HeartBeatResponse()
    response.addresses["ps:0"].address.extend(["127.0.0.1:1", "127.0.0.1:2"])
    response.addresses["entry:0"].address.append("[::1]:3")
    parsed = agent_service_pb2.HeartBeatResponse.FromString(response.SerializeToString())
    self.assertEqual(dict((k, list(v.address)) for k, v in parsed.addresses.items()),
                     {"ps:0": ["127.0.0.1:1", "127.0.0.1:2"], "entry:0": ["[::1]:3"]})

  def test_server_type_names(self):
    self.assertEqual([agent_service_pb2.ServerType.Name(i).lower() for i in range(3)],
                     ["ps", "entry", "dense"])

  def test_grpc_service_paths(self):
    service = agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"]
    self.assertEqual(service.full_name, "monolith.serving.agent_service.AgentService")
    self.assertEqual(sorted(m.name for m in service.methods),
                     ["GetReplicas", "GetResource", "HeartBeat"])
    self.assertTrue(hasattr(agent_service_pb2_grpc, "AgentServiceStub"))
    self.assertTrue(hasattr(agent_service_pb2_grpc, "add_AgentServiceServicer_to_server"))


if __name__ == "__main__":
  unittest.main()
