"""Agent v1: one model-server process per role (ps / dense / entry) plus the AgentService.

The processes form a tree watched by ProcessMgr; when any of them exits, all are killed and the
agent kills itself, so the scheduler restarts the whole unit.
"""

import enum
import os
import signal
import subprocess
import threading
import time
from typing import List, Optional

from absl import logging

from monolith.agent_service import model_server
from monolith.agent_service.agent_base import AgentBase, ServingLog, TFS_BINARY, \
  get_cmd_and_port, make_zk_client
from monolith.agent_service.agent_service import AgentService
from monolith.agent_service.replica_manager import ReplicaManager
from monolith.agent_service.utils import AgentConfig, DeployType, check_port_open

_MAX_WAITING_SEC = 3600
_PORT_CHECK_INTERVAL = 0.5  # upstream polls every 10 s; a model server is up in seconds


class ProcessType(enum.Enum):
  PS = 1
  ENTRY = 2
  PROXY = 3
  UNKONWN = 4
  DENSE = 5


class ProcessNode:

  def __init__(self,
               config: AgentConfig,
               replica_mgr: ReplicaManager,
               proc_type: ProcessType,
               conf_path: Optional[str] = None,
               tfs_log: str = '/var/log/tiger/monolith_serving/tfs.std.log',
               tfs_binary: str = TFS_BINARY,
               is_tce_main: bool = False):
    self._config = config
    self._replica_mgr = replica_mgr
    self._proc_type = proc_type
    self._tfs_log = tfs_log
    self._is_tce_main = is_tce_main
    self._shell = False
    self._stderr = subprocess.STDOUT
    self._env = None
    self._sub_procs: List['ProcessNode'] = []
    self._popen: Optional[subprocess.Popen] = None
    self._is_failover = False
    if proc_type in (ProcessType.PS, ProcessType.ENTRY, ProcessType.DENSE):
      self._cmd, self._port = get_cmd_and_port(config,
                                               conf_path,
                                               server_type=proc_type.name.lower(),
                                               tfs_binary=tfs_binary)
      if proc_type == ProcessType.ENTRY:
        self._env = os.environ.copy()
        self._env['PORT2'] = str(config.agent_port)
      if model_server.resolve_tfs_binary(tfs_binary) is None:
        self._args = model_server.builtin_command(self._cmd.split()[1:])
        self._env = model_server.builtin_env(self._env)
      else:
        self._args = self._cmd.split()
    else:
      self._cmd, self._port = get_cmd_and_port(config, conf_path)
      self._args = self._cmd.split()

  @property
  def proc_type(self) -> ProcessType:
    return self._proc_type

  def add_subproc(self, node: 'ProcessNode'):
    self._sub_procs.append(node)

  @property
  def sub_procs(self) -> List['ProcessNode']:
    return self._sub_procs

  def _wait_for(self, started, what: str) -> bool:
    time.sleep(self._config.update_model_status_interval * 2)
    deadline = time.time() + _MAX_WAITING_SEC
    while not started():
      if time.time() > deadline:
        logging.error('%s not started in %d s', what, _MAX_WAITING_SEC)
        return False
      time.sleep(self._config.update_model_status_interval)
    return True

  def run(self) -> bool:
    if self._proc_type == ProcessType.ENTRY:
      if not self._wait_for(self._replica_mgr.is_ps_set_started, 'ps set'):
        return False
      if self._config.dense_alone and not self._wait_for(self._replica_mgr.is_dense_set_started,
                                                         'dense set'):
        return False
    with ServingLog(self._proc_type.name.lower(), self._tfs_log) as log:
      stdout = None if 'MLP_POD_NAME' in os.environ else log
      logging.info('start %s: %s', self._proc_type.name, ' '.join(self._args))
      self._popen = subprocess.Popen(self._args,
                                     shell=self._shell,
                                     stderr=self._stderr,
                                     stdout=stdout,
                                     env=self._env)
    if not self.wait_for_started():
      logging.error('%s did not start listening on port %s', self._proc_type.name, self._port)
      return False
    for proc in self._sub_procs:
      if not proc.run():
        logging.error('sub process %s failed to start', proc.proc_type.name)
        return False
    return True

  def wait_for_started(self) -> bool:
    if not self._port:
      return True
    deadline = time.time() + _MAX_WAITING_SEC
    while time.time() < deadline:
      if check_port_open(self._port):
        return True
      if self._popen is not None and self._popen.poll() is not None:
        # Upstream kept polling for an hour after the server died; fail now instead.
        logging.error('%s exited with %s before listening', self._proc_type.name,
                      self._popen.returncode)
        return False
      time.sleep(_PORT_CHECK_INTERVAL)
    return False

  def kill(self):
    for proc in self._sub_procs:
      proc.kill()
    if self._popen is None:
      return
    for _ in range(3):
      if self._popen.poll() is not None:
        break
      self._popen.kill()
      time.sleep(1)

  def poll(self) -> Optional[int]:
    if self._is_failover or self._popen is None:
      return None
    return self._popen.poll()

  @property
  def returncode(self) -> Optional[int]:
    if self._is_failover or self._popen is None:
      return None
    return self._popen.returncode

  def failover(self):
    self._is_failover = True
    try:
      if not self._is_tce_main and self._proc_type in (ProcessType.PS, ProcessType.DENSE):
        self.run()
      else:
        self.kill()
    finally:
      self._is_failover = False


class ProcessMgr:
  """Starts the process tree; if any process exits, kills them all and then itself."""

  _is_killed = False
  _lock = threading.RLock()

  def __init__(self, poll_interval: float = 1):
    self._procs: List[ProcessNode] = []
    self._poll_interval = poll_interval
    self._thread: Optional[threading.Thread] = None
    self._has_stopped = threading.Event()
    signal.signal(signal.SIGTERM, self._signal_handler)
    signal.signal(signal.SIGINT, self._signal_handler)

  def _signal_handler(self, signum, frame):
    del frame
    logging.info('signal %d received, killing all model servers', signum)
    self.kill_all(include_self=True)

  def add_subproc(self, node: ProcessNode):
    self._procs.append(node)

  def _flatten(self) -> List[ProcessNode]:
    nodes, stack = [], list(self._procs)
    while stack:
      node = stack.pop()
      nodes.append(node)
      stack.extend(node.sub_procs)
    return nodes

  def _poll(self):
    while not self._has_stopped.wait(self._poll_interval):
      for node in self._flatten():
        node.poll()
        if node.returncode is not None:
          logging.error('%s exited with %s, killing all', node.proc_type.name, node.returncode)
          self.kill_all(include_self=True)
          return

  def start(self) -> bool:
    for proc in self._procs:
      if not proc.run():
        logging.error('%s failed to start, killing all', proc.proc_type.name)
        self.kill_all(include_self=False)
        return False
    self._thread = threading.Thread(target=self._poll, daemon=True)
    self._thread.start()
    return True

  def kill_all(self, include_self: bool = True):
    with ProcessMgr._lock:
      self._has_stopped.set()
      if not ProcessMgr._is_killed:
        for node in self._procs:
          node.kill()
        ProcessMgr._is_killed = include_self
      if include_self:
        os.kill(os.getpid(), signal.SIGKILL)


class AgentV1(AgentBase):

  def __init__(self, config: AgentConfig, conf_path: str, tfs_log: str,
               tfs_binary: str = TFS_BINARY):
    super().__init__(config)
    self._zk = make_zk_client(config.zk_servers)
    self._replica_mgr = ReplicaManager(self._zk, config)
    self._agent_service = AgentService(self._replica_mgr.watcher, port=config.agent_port)
    self._process_mgr = ProcessMgr()

    def node(proc_type, is_tce_main=False):
      return ProcessNode(config, self._replica_mgr, proc_type, conf_path, tfs_log, tfs_binary,
                         is_tce_main)

    deploy_type = config.deploy_type
    if deploy_type == DeployType.MIXED:
      ps_proc = node(ProcessType.PS)
      if config.dense_alone:
        ps_proc.add_subproc(node(ProcessType.DENSE))
      ps_proc.add_subproc(node(ProcessType.ENTRY, is_tce_main=True))
      self._process_mgr.add_subproc(ps_proc)
    elif deploy_type == DeployType.ENTRY:
      proxy_proc = node(ProcessType.ENTRY)
      self._process_mgr.add_subproc(proxy_proc)
    elif deploy_type == DeployType.PS:
      self._process_mgr.add_subproc(node(ProcessType.PS, is_tce_main=True))
    else:
      self._process_mgr.add_subproc(node(ProcessType.DENSE))

  @property
  def replica_manager(self) -> ReplicaManager:
    return self._replica_mgr

  @property
  def agent_service(self) -> AgentService:
    return self._agent_service

  def start(self):
    self._zk.start()
    logging.info('zk started')
    self._replica_mgr.start()
    logging.info('replica manager started')
    self._agent_service.start()
    logging.info('agent service started on port %d', self._agent_service.port)
    if not self._process_mgr.start():
      raise RuntimeError('model servers failed to start')
    logging.info('process manager started')

  def wait_for_termination(self):
    self._agent_service.wait_for_termination()

  def stop(self):
    self._process_mgr.kill_all(include_self=False)
    self._agent_service.stop()
    self._replica_mgr.stop()
    self._zk.stop()
