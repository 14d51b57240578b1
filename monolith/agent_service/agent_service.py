"""The agent's gRPC AgentService: replica discovery (HeartBeat, GetReplicas) and resources.

The backing source depends on the agent version: v1 a ReplicaWatcher, v2 a ZKMirror, v3 an
AgentDataProvider callback returning `{model:sub_graph: [addr, ...]}`.
"""

from concurrent import futures
from functools import singledispatchmethod
from typing import Callable, Dict, List, Optional

from absl import logging
import grpc

from monolith.agent_service import agent_service_pb2 as pb
from monolith.agent_service import agent_service_pb2_grpc as pb_grpc
from monolith.agent_service.replica_manager import ReplicaWatcher
from monolith.agent_service.resource_utils import cal_available_memory_v2
from monolith.agent_service.utils import AgentConfig, get_local_ip
from monolith.agent_service.zk_mirror import ZKMirror


class AgentDataProvider:

  def __init__(self, addrs_fn: Callable[[], Dict[str, List[str]]]):
    self._addrs_fn = addrs_fn


class AgentServiceImpl(pb_grpc.AgentServiceServicer):

  @singledispatchmethod
  def __init__(self, source, conf: Optional[AgentConfig] = None):
    raise TypeError(f'AgentServiceImpl cannot serve from {type(source).__name__}')

  @__init__.register
  def _(self, watcher: ReplicaWatcher, conf: Optional[AgentConfig] = None):
    self._watcher = watcher
    self._conf = conf
    self._agent_version = 1 if conf is None else conf.agent_version
    # (watcher version, server type) -> reply: with 10,000 replicas, rebuilding the reply per
    # HeartBeat cost more than the gRPC round trip.
    self._heart_beat_cache: Dict[tuple, pb.HeartBeatResponse] = {}

  @__init__.register
  def _(self, zk: ZKMirror, conf: AgentConfig):
    self._zk = zk
    self._conf = conf
    self._agent_version = conf.agent_version

  @__init__.register
  def _(self, data_provider: AgentDataProvider, conf: AgentConfig):
    self._data_provider = data_provider
    self._conf = conf
    self._agent_version = conf.agent_version

  def GetReplicas(self, request, context):
    if self._agent_version == 1:
      conf = self._watcher._conf
      server_type = pb.ServerType.Name(request.server_type).lower()
      addrs = self._watcher.get_replicas(server_type, request.task, conf.idc, conf.cluster)
    elif self._agent_version == 2:
      server_type = pb.ServerType.Name(request.server_type).lower()
      replicas = self._zk.get_task_replicas(request.model_name, server_type, request.task)
      addrs = [rm.address for rm in replicas]
    else:
      # Upstream raises NotImplementedError here; the client sees UNIMPLEMENTED.
      context.abort(grpc.StatusCode.UNIMPLEMENTED,
                    f'GetReplicas is not implemented for agent_version {self._agent_version}')
    return pb.GetReplicasResponse(address_list=pb.AddressList(address=addrs))

  def HeartBeat(self, request, context):
    resp = pb.HeartBeatResponse()
    if self._agent_version == 1:
      cache_key = (self._watcher.version, request.server_type)
      cached = self._heart_beat_cache.get(cache_key)
      if cached is not None:
        return cached
      conf = self._watcher._conf
      server_type = pb.ServerType.Name(request.server_type).lower()
      all_replicas = self._watcher.get_all_replicas(server_type, conf.idc, conf.cluster)
      dc_aware = conf.dc_aware
      for key, addrs in all_replicas.items():
        name = key.split('/')[-1] if dc_aware else key
        resp.addresses[name].address.extend(addrs)
      self._heart_beat_cache = {cache_key: resp, **{
          k: v for k, v in self._heart_beat_cache.items() if k[0] == cache_key[0]
      }}
    elif self._agent_version == 2:
      server_type = pb.ServerType.Name(request.server_type).lower()
      for key, replicas in self._zk.get_all_replicas(server_type).items():
        resp.addresses[key].address.extend([rm.address for rm in replicas])
    else:
      addrs_map = self._data_provider._addrs_fn()
      for key, addrs in (addrs_map or {}).items():
        resp.addresses[key].address.extend(addrs)
    return resp

  def GetResource(self, request, context):
    if self._agent_version == 1:
      return pb.GetResourceResponse()
    return pb.GetResourceResponse(address=f'{get_local_ip()}:{self._conf.agent_port}',
                                  shard_id=self._conf.shard_id,
                                  replica_id=self._conf.replica_id,
                                  memory=cal_available_memory_v2(),
                                  cpu=-1.0,
                                  network=-1.0,
                                  work_load=-1.0)


class AgentService:
  """AgentServiceImpl on a gRPC server bound to `[::]:port`."""

  @singledispatchmethod
  def __init__(self, source, port: int = 0, max_workers: int = 10, conf=None):
    raise TypeError(f'AgentService cannot serve from {type(source).__name__}')

  @__init__.register
  def _(self, watcher: ReplicaWatcher, port: int = 0, max_workers: int = 10, conf=None):
    self._build(AgentServiceImpl(watcher, conf), port or 0, max_workers)

  @__init__.register
  def _(self, zk: ZKMirror, conf: AgentConfig, max_workers: int = 10):
    self._build(AgentServiceImpl(zk, conf), conf.agent_port, max_workers)

  @__init__.register
  def _(self, data_provider: AgentDataProvider, conf: AgentConfig, max_workers: int = 10):
    self._build(AgentServiceImpl(data_provider, conf), conf.agent_port, max_workers)

  def _build(self, servicer: AgentServiceImpl, port: int, max_workers: int):
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    pb_grpc.add_AgentServiceServicer_to_server(servicer, self._server)
    self.port = self._server.add_insecure_port(f'[::]:{port}')
    if self.port == 0:
      raise RuntimeError(f'AgentService cannot bind port {port}')

  def start(self):
    self._server.start()
    logging.info('AgentService listening on [::]:%d', self.port)

  def stop(self, grace: Optional[float] = None):
    self._server.stop(grace).wait()

  def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
    return self._server.wait_for_termination(timeout)
