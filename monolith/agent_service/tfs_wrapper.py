"""Launches one model server for agent v3 and reads its models' states.

The real `tensorflow_model_server` is used when `MONOLITH_TFS_BINARY` (or `$TFS_HOME/bin/`)
names an executable; otherwise the built-in `monolith.agent_service.model_server` is started with
the flags it understands.
"""

import dataclasses
import os
import subprocess
from typing import Dict, List, Optional

from absl import logging
import grpc
from google.protobuf import text_format

from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import status_pb2
from tensorflow_serving.config import model_server_config_pb2

from monolith.agent_service import model_server
from monolith.agent_service.agent_base import TFS_BINARY
from monolith.agent_service.utils import TfServingConfig, gen_model_spec, \
  latest_version_status, rpc_error_version_status
from monolith.utils import find_main

State = get_model_status_pb2.ModelVersionStatus.State
ModelVersionStatus = get_model_status_pb2.ModelVersionStatus


class _ModelConfigFile:
  """The models a wrapper serves are the ones named in its (text proto) model config file."""

  def __init__(self, model_config_file: str):
    self._model_config_file = model_config_file

  def model_config_text(self) -> str:
    with open(self._model_config_file) as f:
      return f.read()

  def list_saved_models(self) -> List[str]:
    config = text_format.Parse(self.model_config_text(),
                               model_server_config_pb2.ModelServerConfig())
    return [c.name for c in config.model_config_list.config]


class TFSWrapper(_ModelConfigFile):

  def __init__(self,
               archon_port: int,
               grpc_port: int,
               http_port: int,
               model_config_file: str,
               binary_config: TfServingConfig,
               log_file: str = '/var/log/tiger/monolith_serving/tfs.std.log',
               tfs_binary: Optional[str] = TFS_BINARY,
               model_config_file_poll_wait_seconds: int = 60):
    super().__init__(model_config_file)
    self._model_config_file_poll_wait_seconds = model_config_file_poll_wait_seconds
    self._archon_port = archon_port
    self._grpc_port = grpc_port
    self._http_port = http_port
    self._binary_config = binary_config
    self._log_file = log_file
    self._tfs_binary = model_server.resolve_tfs_binary(tfs_binary)
    self._proc: Optional[subprocess.Popen] = None
    self._channel = None
    self._stub = None
    self._log = None
    if self._tfs_binary is None:
      if tfs_binary:
        logging.warning('TF Serving binary %s is not executable, using the built-in server',
                        tfs_binary)
      self._is_grpc_remote_op = True  # the built-in server serves entry->ps over gRPC
    else:
      ret = subprocess.run(f'strings {self._tfs_binary} | grep PredictionServiceGrpc',
                           shell=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
      self._is_grpc_remote_op = ret.returncode == 0

  @property
  def is_grpc_remote_op(self) -> bool:
    return self._is_grpc_remote_op

  def _prepare_cmd(self) -> str:
    config = self._binary_config
    flags = [
        f'--model_config_file={self._model_config_file}',
        f'--port={self._grpc_port}',
        f'--rest_api_port={self._http_port}',
        f'--model_config_file_poll_wait_seconds={self._model_config_file_poll_wait_seconds}',
        f'--archon_port={self._archon_port}',
        f'--archon_rpc_psm={os.environ.get("TCE_PSM", "unknown")}',
        f'--archon_rpc_cluster={os.environ.get("TCE_CLUSTER", "default")}',
        f'--metrics_namespace_prefix={os.environ.get("TCE_PSM", "unknown")}',
    ]
    if not self._is_grpc_remote_op:
      flags.append(f'--archon_entry_to_ps_rpc_timeout={config.fetch_ps_timeout_ms}')
    flags += ['--conf_file=conf/service.conf', '--log_conf=conf/log4j.properties']
    for field in dataclasses.fields(TfServingConfig):
      value = getattr(config, field.name)
      if field.name == 'platform_config_file' and value is None:
        flags.append('--platform_config_file=conf/platform_config_file.cfg')
        continue
      default = field.default if field.default is not dataclasses.MISSING else None
      if value == default or value is None:
        continue
      if isinstance(value, bool):
        value = str(value).lower()
      flags.append(f'--{field.name}={value}')
    return ' '.join([self._tfs_binary or 'tensorflow_model_server'] + flags)

  def start(self):
    os.chdir(find_main())
    tfs_cmd = self._prepare_cmd()
    if self._tfs_binary is None:
      args = model_server.builtin_command(tfs_cmd.split()[1:])
      env = model_server.builtin_env()
    else:
      args, env = tfs_cmd.split(), os.environ
    logging.info('start model server: %s', ' '.join(args))
    log_dir = os.path.dirname(self._log_file)
    if log_dir:
      os.makedirs(log_dir, exist_ok=True)
    self._log = open(self._log_file, 'a')
    self._proc = subprocess.Popen(args,
                                  shell=False,
                                  stderr=subprocess.STDOUT,
                                  stdout=self._log,
                                  env=env)
    self._channel = grpc.insecure_channel(f'localhost:{self._grpc_port}')
    self._stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

  def stop(self):
    if self._channel is not None:
      self._channel.close()
    if self._proc is not None:
      self._proc.kill()
      self._proc.wait()
    if self._log is not None:
      self._log.close()

  def poll(self) -> Optional[int]:
    self._proc.poll()
    return self._proc.returncode

  def list_saved_models_status(self) -> Dict[str, ModelVersionStatus]:
    result = {}
    for name in self.list_saved_models():
      request = get_model_status_pb2.GetModelStatusRequest(model_spec=gen_model_spec(name))
      try:
        response = self._stub.GetModelStatus(request, timeout=10)
        result[name] = latest_version_status(response.model_version_status, 'no version found')
      except grpc.RpcError as e:
        result[name] = rpc_error_version_status(e)
    return result


class FakeTFSWrapper(_ModelConfigFile):
  """No process: every model in the config file is reported AVAILABLE."""

  @property
  def is_grpc_remote_op(self) -> bool:
    return True

  def start(self):
    pass

  def stop(self):
    pass

  def poll(self) -> Optional[int]:
    return None

  def list_saved_models_status(self) -> Dict[str, ModelVersionStatus]:
    return {
        name: ModelVersionStatus(version=1,
                                 state=State.AVAILABLE,
                                 status=status_pb2.StatusProto(error_code=0))
        for name in self.list_saved_models()
    }
