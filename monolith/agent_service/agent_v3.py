"""Agent v3 (unified): one model server whose models follow a layout published in ZooKeeper.

Publishing `{model}:{sub_graph}` under the layout path rewrites the model config file (which the
model server polls); sub graphs AVAILABLE locally are bound to this container in ZooKeeper, and
the AgentService answers HeartBeat with `{model:sub_graph: [addresses]}` from the bindings.
"""

import ast
import json
import os
import re
import signal
import tempfile
import threading
import time
from typing import Callable, List, Tuple

from absl import logging
from google.protobuf import text_format

from tensorflow_serving.config import model_server_config_pb2

from monolith.agent_service.agent_base import AgentBase, FAKE_ZK_SERVERS, make_zk_client
from monolith.agent_service.agent_service import AgentDataProvider, AgentService
from monolith.agent_service.backends import Container, ContainerServiceInfo, SavedModel, \
  SavedModelDeployConfig, ZKBackend
from monolith.agent_service.tfs_wrapper import State, TFSWrapper
from monolith.agent_service.utils import AgentConfig, DeployType, gen_model_config, \
  get_local_ip, normalize_regex

_REPORT_INTERVAL = 60
_SYNC_INTERVAL = 30


def gen_empty_model_config_file() -> str:
  fd, path = tempfile.mkstemp(suffix='.model_config')
  with os.fdopen(fd, 'w') as f:
    f.write('model_config_list {}')
  return path


def _safe_eval(cond: str, names: dict) -> bool:
  """Evaluates a layout-filter condition such as `i % 3 == 0` over integer captures.

  Upstream used `eval`; a ZooKeeper-borne config must not run arbitrary code, so only
  arithmetic, comparisons, boolean operators, numbers and the captured names are allowed."""
  allowed = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name,
             ast.Load, ast.Constant, ast.And, ast.Or, ast.Not, ast.Add, ast.Sub, ast.Mult,
             ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd, ast.Eq, ast.NotEq,
             ast.Lt, ast.LtE, ast.Gt, ast.GtE)
  tree = ast.parse(cond, mode='eval')
  for node in ast.walk(tree):
    if not isinstance(node, allowed):
      raise ValueError(f'layout filter condition {cond!r} uses unsupported {type(node).__name__}')
    if isinstance(node, ast.Name) and node.id not in names:
      raise ValueError(f'layout filter condition {cond!r} names unknown {node.id!r}')
  return bool(eval(compile(tree, '<layout_filter>', 'eval'), {'__builtins__': {}}, names))  # pylint: disable=eval-used


class AgentV3(AgentBase):

  def __init__(self, config: AgentConfig, conf_path: str, tfs_log: str):
    super().__init__(config)
    assert config.deploy_type == DeployType.UNIFIED, \
        f'agent v3 needs deploy_type unified, got {config.deploy_type}'
    assert config.agent_version == 3, f'AgentV3 needs agent_version 3, got {config.agent_version}'
    self._exit_event = threading.Event()
    self._conf_path = conf_path
    self._model_config_path = gen_empty_model_config_file()
    self._tfs_wrapper = TFSWrapper(config.tfs_port_archon,
                                   config.tfs_port_grpc,
                                   config.tfs_port_http,
                                   self._model_config_path,
                                   config,
                                   log_file=tfs_log)
    self._layout_filters: List[Tuple[str, str]] = []
    for layout_filter in config.layout_filters or []:
      layout_filter = layout_filter.replace('${shard_id}', str(config.shard_id)).replace(
          '${shard_num}', str(config.num_shard))
      match, _, cond = layout_filter.partition(';')
      self._layout_filters.append((normalize_regex(match.strip()), cond.strip() or 'True'))
    ip = get_local_ip()
    self._container = Container(config.container_cluster, config.container_id)
    self._service_info = ContainerServiceInfo(
        grpc=f'{ip}:{config.tfs_port_grpc}',
        http=f'{ip}:{config.tfs_port_http}',
        archon=f'{ip}:{config.tfs_port_archon}',
        agent=f'{ip}:{config.agent_port}',
        idc=config.idc,
        debug_info=json.dumps({
            'layout_path': config.layout_path,
            'layout_filters': [f'{m};{c}' for m, c in self._layout_filters],
        }))
    self._backend = ZKBackend(config.bzid, config.zk_servers)
    if config.zk_servers == FAKE_ZK_SERVERS:
      self._backend._zk = make_zk_client(config.zk_servers)
      self._backend._zk.add_listener(self._backend._zk_listener)
    self._agent_service = AgentService(AgentDataProvider(self._gen_addrs_map), config)
    self._threads: List[threading.Thread] = []
    signal.signal(signal.SIGTERM, self._on_signal)
    signal.signal(signal.SIGINT, self._on_signal)

  def _on_signal(self, signum, frame):
    del frame
    logging.info('signal %d received, exiting', signum)
    self._exit_event.set()

  def _gen_addrs_map(self):
    addrs = {}
    for model_name, sub_graphs in self._backend.get_service_map().items():
      for sub_graph, infos in sub_graphs.items():
        addrs[f'{model_name}:{sub_graph}'] = [
            info.grpc if self._tfs_wrapper.is_grpc_remote_op else info.archon for info in infos
        ]
    return addrs

  def sync_available_saved_models(self):
    statuses = self._tfs_wrapper.list_saved_models_status()
    available = set()
    for name, status in statuses.items():
      if status.state == State.AVAILABLE:
        model_name, sub_graph = name.split(':', 1)
        available.add(SavedModel(model_name, sub_graph))
    self._backend.sync_available_saved_models(self._container, available)

  def _accepts(self, sub_graph: str) -> bool:
    if not self._layout_filters:
      return True
    for match, cond in self._layout_filters:
      m = re.match(match, sub_graph)
      if m and _safe_eval(cond, {k: int(v) for k, v in m.groupdict().items()}):
        return True
    return False

  def layout_update_callback(self, saved_models: List[Tuple[SavedModel, SavedModelDeployConfig]]):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    for saved_model, deploy_config in saved_models:
      if not self._accepts(saved_model.sub_graph):
        continue
      config.model_config_list.config.append(
          gen_model_config(str(saved_model), deploy_config.model_base_path,
                           deploy_config.version_policy))
    # Write then rename: the model server polls this file and must never read half of it.
    tmp = f'{self._model_config_path}.tmp'
    with open(tmp, 'w') as f:
      f.write(text_format.MessageToString(config))
    os.replace(tmp, self._model_config_path)
    logging.info('model config now serves %s',
                 [c.name for c in config.model_config_list.config])

  def start_bg_thread(self, fn: Callable[[], None], interval: float):

    def loop():
      while not self._exit_event.is_set():
        try:
          fn()
        except Exception:  # pylint: disable=broad-except
          logging.exception('%s failed', getattr(fn, '__name__', fn))
        self._exit_event.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    self._threads.append(thread)

  def start(self):
    self._tfs_wrapper.start()
    self._backend.start()
    self._agent_service.start()
    self.start_bg_thread(
        lambda: self._backend.report_service_info(self._container, self._service_info),
        _REPORT_INTERVAL)
    self.start_bg_thread(self.sync_available_saved_models, _SYNC_INTERVAL)
    self._backend.register_layout_callback(self.config.layout_path, self.layout_update_callback)

  def stop(self):
    self._exit_event.set()
    for thread in self._threads:
      thread.join()
    for name, stop in (('agent service', self._agent_service.stop),
                       ('backend', self._backend.stop), ('model server', self._tfs_wrapper.stop)):
      try:
        stop()
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('stopping the %s failed: %s', name, e)

  def wait_for_termination(self):
    while not self._exit_event.is_set():
      if self._tfs_wrapper.poll() is not None:
        logging.error('model server exited with %s', self._tfs_wrapper.poll())
        break
      self._exit_event.wait(1)
    self._exit_event.set()
    self.stop()
    time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)
