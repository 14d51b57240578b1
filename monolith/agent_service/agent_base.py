"""Agent base class and helpers for model-server / proxy command lines and their logs."""

import abc
import os
from typing import Optional, Tuple

from absl import logging

from monolith.agent_service import utils
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.utils import AgentConfig, TFSServerType
from monolith.native_training.zk_utils import MonolithKazooClient

# `TFS_HOME` in the environment relocates the serving tree (binaries, logs' cwd).
TFS_HOME = os.environ.get('TFS_HOME', utils.TFS_HOME)
# A real TF Serving binary: MONOLITH_TFS_BINARY, else the one under TFS_HOME. Launchers fall back
# to the built-in `model_server` when it is not an executable file.
TFS_BINARY = os.environ.get('MONOLITH_TFS_BINARY') or f'{TFS_HOME}/bin/tensorflow_model_server'
PROXY_BINARY = f'{TFS_HOME}/bin/server'
# `zk_servers fake` in an agent conf runs the agent on an in-process ZooKeeper (one machine,
# nothing to install); replicas are then visible only through this agent's AgentService.
FAKE_ZK_SERVERS = 'fake'


def get_cmd_path() -> str:
  return os.path.abspath(__file__)


def get_cmd_and_port(config: AgentConfig,
                     conf_path: Optional[str] = None,
                     server_type: Optional[str] = None,
                     config_file: Optional[str] = None,
                     tfs_binary: str = TFS_BINARY,
                     proxy_binary: str = PROXY_BINARY) -> Tuple[str, int]:
  if server_type in (TFSServerType.PS, TFSServerType.ENTRY, TFSServerType.DENSE):
    return config.get_cmd_and_port(tfs_binary, server_type=server_type, config_file=config_file)
  proxy_conf = os.path.join(conf_path, 'proxy.conf') if conf_path else None
  cmd = f'{proxy_binary} --port={config.proxy_port} --grpc_target=localhost:{config.tfs_entry_port}'
  if proxy_conf and os.path.exists(proxy_conf):
    cmd += f' --conf_file={proxy_conf}'
  return cmd + ' &', config.proxy_port


def make_zk_client(zk_servers: Optional[str]):
  """A kazoo client for `zk_servers`, or the in-process fake for `fake`."""
  if zk_servers == FAKE_ZK_SERVERS:
    logging.warning('zk_servers is %r: using an in-process ZooKeeper', FAKE_ZK_SERVERS)
    return FakeKazooClient()
  if not zk_servers:
    raise ValueError('zk_servers is empty: set it in the agent conf (host:port list, or '
                     f'{FAKE_ZK_SERVERS!r} for an in-process ZooKeeper)')
  return MonolithKazooClient(hosts=zk_servers)


class ServingLog:
  """`with ServingLog('ps', tfs_log) as log:` appends to `<dir>/ps_<name>` from `{TFS_HOME}/bin`.

  The model server runs with `{TFS_HOME}/bin` as cwd (its relative `conf/...` flags resolve
  there); when that directory does not exist the cwd is left alone.
  """

  def __init__(self, log_prefix: str, tfs_log: str):
    self._log_prefix = log_prefix
    self._tfs_log = tfs_log
    self._cwd = None

  def __enter__(self):
    log_dir = os.path.dirname(self._tfs_log)
    log_filename = os.path.join(log_dir, f'{self._log_prefix}_{os.path.basename(self._tfs_log)}')
    if log_dir:
      os.makedirs(log_dir, exist_ok=True)
    self._cwd = os.getcwd()
    bin_dir = f'{TFS_HOME}/bin'
    if os.path.isdir(bin_dir):
      os.chdir(bin_dir)
    return open(log_filename, 'a')

  def __exit__(self, exc_type, exc_val, exc_tb):
    os.chdir(self._cwd)


class AgentBase(abc.ABC):

  def __init__(self, config: AgentConfig):
    self.config = config

  @abc.abstractmethod
  def start(self):
    raise NotImplementedError

  @abc.abstractmethod
  def wait_for_termination(self):
    raise NotImplementedError
