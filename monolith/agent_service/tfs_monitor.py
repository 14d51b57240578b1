"""gRPC monitor of the local model servers (entry / ps / dense): model states and reloads."""

import os
from functools import singledispatchmethod
from typing import Dict, List, Optional, Tuple

from absl import logging
import grpc

from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import status_pb2
from tensorflow_serving.config import model_server_config_pb2

from monolith.agent_service.data_def import PublishMeta, PublishType, VersionPath, \
  TFSModelName
from monolith.agent_service.utils import AgentConfig, DEFAULT_MODEL_CONFIG, DeployType, \
  TFSServerType, gen_model_config, gen_model_spec, get_local_ip, latest_version_status, \
  pasre_sub_model_name, rpc_error_version_status

ModelVersionStatus = get_model_status_pb2.ModelVersionStatus


class TFSMonitor:

  def __init__(self, config: AgentConfig):
    self._conf = config
    self._host: Optional[str] = None
    self._channels: Dict[str, grpc.Channel] = {}
    self._stubs: Dict[str, Tuple[model_service_pb2_grpc.ModelServiceStub,
                                 prediction_service_pb2_grpc.PredictionServiceStub]] = {}

  @property
  def host(self) -> str:
    if self._host is None or self._host == 'localhost':
      self._host = get_local_ip()
    return self._host

  def _served_types(self) -> List[str]:
    deploy_type = self._conf.deploy_type
    types = []
    for st in (TFSServerType.ENTRY, TFSServerType.PS, TFSServerType.DENSE):
      if st == TFSServerType.DENSE and not self._conf.dense_alone:
        continue
      if deploy_type == DeployType.MIXED or deploy_type == st:
        types.append(st)
    return types

  def _port(self, service_type: str) -> int:
    return {
        TFSServerType.ENTRY: self._conf.tfs_entry_port,
        TFSServerType.PS: self._conf.tfs_ps_port,
        TFSServerType.DENSE: self._conf.tfs_dense_port,
    }[service_type]

  def connect(self):
    for st in self._served_types():
      channel = grpc.insecure_channel(f'{self.host}:{self._port(st)}')
      self._channels[st] = channel
      self._stubs[st] = (model_service_pb2_grpc.ModelServiceStub(channel),
                         prediction_service_pb2_grpc.PredictionServiceStub(channel))

  def start(self):
    self._stubs = {}
    self._channels = {}
    self.connect()

  def stop(self):
    for channel in self._channels.values():
      channel.close()
    self._channels = {}
    self._stubs = {}

  def get_service_type(self, sub_model_name: str) -> Optional[str]:
    kind, _ = pasre_sub_model_name(sub_model_name)
    service_type = {
        'entry': TFSServerType.ENTRY,
        'ps': TFSServerType.PS,
        'dense': TFSServerType.DENSE
    }.get(kind)
    return service_type if service_type in self._stubs else None

  def get_addr(self, sub_model_name: str) -> Optional[str]:
    service_type = self.get_service_type(sub_model_name)
    if service_type is None:
      return None
    return f'{self.host}:{self._port(service_type)}'

  def _is_dense_node(self, sub_model_name: str) -> bool:
    kind, _ = pasre_sub_model_name(sub_model_name)
    if self._conf.dense_alone:
      return kind == 'dense'
    return kind == 'entry'

  @singledispatchmethod
  def get_model_status(self, pm, fix_dense_version: bool = False):
    raise TypeError(f'get_model_status does not accept {type(pm).__name__}')

  @get_model_status.register
  def _(self, pm: PublishMeta, fix_dense_version: bool = False
       ) -> Dict[TFSModelName, Tuple[VersionPath, ModelVersionStatus]]:
    result = {}
    for sub_model_name, version_path in pm.sub_models.items():
      tfs_model_name = f'{pm.model_name}:{sub_model_name}'
      service_type = self.get_service_type(sub_model_name)
      if service_type is None:
        continue
      if self._is_dense_node(sub_model_name) and not fix_dense_version:
        spec = gen_model_spec(tfs_model_name)
      else:
        spec = gen_model_spec(tfs_model_name, int(os.path.basename(version_path)))
      model_stub, _ = self._stubs[service_type]
      try:
        response = model_stub.GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec=spec), timeout=10)
        status = latest_version_status(response.model_version_status,
                                       f'{tfs_model_name} not found')
      except grpc.RpcError as e:
        status = rpc_error_version_status(e)
      result[tfs_model_name] = (version_path, status)
    return result

  @get_model_status.register
  def _(self,
        name: str,
        version: Optional[int] = None,
        signature_name: Optional[str] = None) -> List[ModelVersionStatus]:
    service_type = self.get_service_type(name)
    if service_type is None:
      return []
    model_stub, _ = self._stubs[service_type]
    request = get_model_status_pb2.GetModelStatusRequest(
        model_spec=gen_model_spec(name, version, signature_name))
    return list(model_stub.GetModelStatus(request, timeout=10).model_version_status)

  def gen_model_config(
      self,
      pms: List[PublishMeta],
      fix_dense_version: bool = False) -> Dict[str, model_server_config_pb2.ModelServerConfig]:
    model_configs = {}
    for st in self._served_types():
      config = model_server_config_pb2.ModelServerConfig()
      config.model_config_list.SetInParent()
      model_configs[st] = config
    for pm in pms:
      if pm.ptype == PublishType.UNLOAD:
        continue
      for sub_model_name, version_path in pm.sub_models.items():
        service_type = self.get_service_type(sub_model_name)
        if service_type is None:
          continue
        base_path = os.path.dirname(version_path)
        version = int(os.path.basename(version_path))
        name = f'{pm.model_name}:{sub_model_name}'
        if self._is_dense_node(sub_model_name):
          if fix_dense_version:
            config = gen_model_config(name, base_path, 'specific', version)
          else:
            config = gen_model_config(name, base_path, 'latest', 1)
        else:
          config = gen_model_config(name, base_path, 'specific', version)
        model_configs[service_type].model_config_list.config.append(config)
    return model_configs

  def handle_reload_config_request(
      self, service_type: str,
      model_configs: model_server_config_pb2.ModelServerConfig) -> status_pb2.StatusProto:
    names = {c.name for c in model_configs.model_config_list.config}
    if DEFAULT_MODEL_CONFIG.name not in names:
      model_configs.model_config_list.config.append(DEFAULT_MODEL_CONFIG)
    model_stub, _ = self._stubs[service_type]
    request = model_management_pb2.ReloadConfigRequest(config=model_configs)
    response = model_stub.HandleReloadConfigRequest(request, timeout=30)
    logging.info('reload %s config with %d models: %s', service_type,
                 len(model_configs.model_config_list.config), response.status)
    return response.status
