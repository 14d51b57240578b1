"""A thin client of the local agent's AgentService (HeartBeat, GetReplicas)."""

import os
import socket
from typing import Union

from absl import flags
import grpc

from monolith.agent_service.agent_service_pb2 import GetReplicasRequest, \
  HeartBeatRequest, ServerType
from monolith.agent_service.agent_service_pb2_grpc import AgentServiceStub
from monolith.agent_service.utils import AgentConfig

FLAGS = flags.FLAGS


class SvrClient:

  def __init__(self, config: Union[str, AgentConfig]):
    self._conf = AgentConfig.from_file(config) if isinstance(config, str) else config
    self._stub = None

  @property
  def stub(self) -> AgentServiceStub:
    if self._stub is None:
      host = os.environ.get('MY_HOST_IP', socket.gethostbyname(socket.gethostname()))
      channel = grpc.insecure_channel(f'{host}:{self._conf.agent_port}')
      self._stub = AgentServiceStub(channel)
    return self._stub

  @staticmethod
  def get_server_type(st) -> int:
    # Upstream quirk kept: a string argument is ignored and --server_type decides.
    if isinstance(st, str):
      return {'ps': ServerType.PS, 'dense': ServerType.DENSE}.get(FLAGS.server_type,
                                                                   ServerType.ENTRY)
    return st

  def heart_beat(self, server_type=ServerType.PS):
    request = HeartBeatRequest(server_type=self.get_server_type(server_type))
    resp = self.stub.HeartBeat(request)
    print(resp.addresses, flush=True)
    return resp

  def get_replicas(self, server_type=ServerType.PS, task: int = 0, model_name: str = ''):
    request = GetReplicasRequest(server_type=self.get_server_type(server_type),
                                 task=task,
                                 model_name=model_name)
    resp = self.stub.GetReplicas(request)
    print(resp.address_list.address, flush=True)
    return resp
