"""Agent-v3 control plane in ZooKeeper: saved-model declarations, layouts, bindings, services.

ZooKeeper layout (all under /{bzid}):
  saved_models/{model}/{sub_graph}            SavedModelDeployConfig JSON   persistent
  layouts/{layout...}/{model}:{sub_graph}     empty                         persistent
  binding/{model}/{sub_graph}:{container}     empty                         ephemeral
  container_service/{container}               ContainerServiceInfo JSON     ephemeral
"""

import abc
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, List, Optional, Set, Tuple

from absl import logging
from dataclasses_json import dataclass_json
from kazoo.exceptions import NoNodeError, NodeExistsError
from kazoo.protocol.states import KazooState

from monolith.agent_service.json_serde import JsonSerde
from monolith.native_training.zk_utils import MonolithKazooClient

_RECOVERY_ATTEMPTS = 30
_RECOVERY_BACKOFF_SEC = 1.0


@dataclass(frozen=True)
class SavedModel:
  model_name: str
  sub_graph: str

  def __str__(self):
    return '{}:{}'.format(self.model_name, self.sub_graph)


@dataclass_json
@dataclass(frozen=True)
class SavedModelDeployConfig(JsonSerde):
  model_base_path: Optional[str] = None
  version_policy: Optional[str] = None


@dataclass(frozen=True)
class Container:
  ctx_cluster: str
  ctx_id: str

  def __str__(self):
    return '{}:{}'.format(self.ctx_cluster, self.ctx_id)


@dataclass_json
@dataclass(frozen=True)
class ContainerServiceInfo(JsonSerde):
  grpc: Optional[str] = None
  http: Optional[str] = None
  archon: Optional[str] = None
  agent: Optional[str] = None
  idc: Optional[str] = None
  debug_info: Optional[str] = None


LayoutCallback = Callable[[List[Tuple[SavedModel, SavedModelDeployConfig]]], Optional[bool]]


class _Lifecycle(abc.ABC):
  """Every backend connects on start() and lets go on stop()."""

  @abc.abstractmethod
  def start(self):
    pass

  @abc.abstractmethod
  def stop(self):
    pass


class AgentBackend(_Lifecycle):
  """What a serving agent (v3) needs from the control plane."""

  @abc.abstractmethod
  def register_layout_callback(self, layout_path: str, callback: LayoutCallback):
    pass

  @abc.abstractmethod
  def sync_available_saved_models(self, container: Container, saved_models: Set[SavedModel]):
    pass

  @abc.abstractmethod
  def report_service_info(self, container: Container, service_info: ContainerServiceInfo):
    pass

  @abc.abstractmethod
  def get_service_info(self, container: Container) -> Optional[ContainerServiceInfo]:
    pass

  @abc.abstractmethod
  def get_service_map(self) -> Dict[str, Dict[str, List[ContainerServiceInfo]]]:
    pass


class CtrlBackend(_Lifecycle):
  """What the operator CLI (agent_controller) needs."""

  @abc.abstractmethod
  def list_saved_models(self, model_name: str) -> List[SavedModel]:
    pass

  @abc.abstractmethod
  def decl_saved_model(self, saved_model: SavedModel, deploy_config: SavedModelDeployConfig):
    pass

  @abc.abstractmethod
  def add_to_layout(self, layout: str, saved_model: SavedModel):
    pass

  @abc.abstractmethod
  def remove_from_layout(self, layout: str, saved_model: SavedModel):
    pass

  @abc.abstractmethod
  def bzid_info(self) -> dict:
    pass


class SyncBackend(_Lifecycle):
  """Where parameter sync finds the serving replicas of one model's sub-graphs."""

  @abc.abstractmethod
  def subscribe_model(self, model_name: str):
    pass

  @abc.abstractmethod
  def get_sync_targets(self, sub_graph: str) -> Tuple[str, List[str]]:
    pass


class ZKBackend(AgentBackend, CtrlBackend, SyncBackend):

  def __init__(self, bzid: str, zk_servers: str = None):
    self._bzid = bzid
    self._zk = MonolithKazooClient(hosts=zk_servers)
    self._is_lost = threading.Event()
    self._needs_recovery = False
    self._recover_lock = threading.Lock()
    self._stopped = False
    self._zk.add_listener(self._zk_listener)
    self._lock = threading.RLock()
    self._available_saved_model: Set[SavedModel] = set()
    self._available_container: Optional[Container] = None
    self._service_info_map: Dict[str, Dict[str, List[ContainerServiceInfo]]] = {}
    self._reported_service_info: Dict[Container, ContainerServiceInfo] = {}
    self._children_watcher_map = {}
    self._layout_callbacks: Dict[str, Callable[[List[str]], Optional[bool]]] = {}
    self._sync_model_name: Optional[str] = None

  # ---- session handling ----
  def _zk_listener(self, state):
    if state == KazooState.LOST:
      self._is_lost.set()
      self._needs_recovery = True
    else:
      self._is_lost.clear()
      if state == KazooState.CONNECTED and self._needs_recovery:
        self._needs_recovery = False
        # Listeners run on kazoo's connection thread, which must not block on ZooKeeper calls.
        threading.Thread(target=self._recover, name='zk_backend_recover', daemon=True).start()

  def _recover(self):
    """After a lost session: re-create our ephemeral nodes and replay layouts.

    Upstream only cleared its binding cache on the next periodic sync; the service-info node
    stayed missing until the next report and unchanged layouts were never replayed. The session
    may flap while we recover, so retry for a while; the periodic sync/report is the backstop.
    """
    with self._recover_lock:
      for attempt in range(1, _RECOVERY_ATTEMPTS + 1):
        if self._stopped:
          return
        try:
          self._recover_once()
          return
        except Exception as e:
          logging.warning('recovery after ZooKeeper session loss failed (attempt %d/%d): %r',
                          attempt, _RECOVERY_ATTEMPTS, e)
          time.sleep(_RECOVERY_BACKOFF_SEC)
      logging.error('recovery after ZooKeeper session loss gave up, the periodic sync retries')

  def _recover_once(self):
    with self._lock:
      for container, info in self._reported_service_info.items():
        self._write_znode(self._container_path(container), info.serialize(), ephemeral=True)
      if self._available_container is not None:
        for saved_model in self._available_saved_model:
          self._write_znode(self._binding_path(saved_model, self._available_container), b'',
                            ephemeral=True)
      callbacks = list(self._layout_callbacks.items())
    for layout_path, callback_wrap in callbacks:
      self._zk.ensure_path(layout_path)
      self._children_watch(layout_path, callback_wrap)
      callback_wrap(self._zk.get_children(layout_path))
    for model_name in list(self._service_info_map):
      self._watch_binding(model_name)

  def _restart_after_lost(self) -> bool:
    """Starts a new session; True if the caller can go on using it."""
    with self._lock:
      self._available_saved_model = set()
    try:
      self._zk.restart()
    except Exception:
      logging.exception('restarting the ZooKeeper client failed, will retry on the next call')
      return False
    # kazoo reports `connected` before it tells the listener, so clear the flag here too.
    self._is_lost.clear()
    return self._zk.connected

  # ---- paths ----
  def _saved_model_path(self, saved_model: SavedModel) -> str:
    return '/{}/saved_models/{}/{}'.format(self._bzid, saved_model.model_name,
                                           saved_model.sub_graph)

  def _binding_path(self, saved_model: SavedModel, container: Container) -> str:
    return '/{}/binding/{}/{}:{}'.format(self._bzid, saved_model.model_name,
                                         saved_model.sub_graph, container)

  def _container_path(self, container: Container) -> str:
    return '/{}/container_service/{}'.format(self._bzid, container)

  # ---- AgentBackend ----
  def sync_available_saved_models(self, container: Container, saved_models: Set[SavedModel]):
    # Upstream returned right after the restart; going on writes the bindings one period sooner.
    if self._is_lost.is_set() and not self._restart_after_lost():
      return
    if not self._zk.connected:
      # kazoo would block until the server is back; the next periodic sync does the work.
      logging.warning('ZooKeeper is not connected, skipping the binding sync')
      return
    with self._lock:
      saved_models = set(saved_models)
      if self._available_container is not None and self._available_container != container:
        self._available_saved_model = set()
      self._available_container = container
      to_add = saved_models - self._available_saved_model
      to_remove = self._available_saved_model - saved_models
      for saved_model in sorted(to_add, key=str):
        self.create_znode(self._binding_path(saved_model, container), ephemeral=True)
      for saved_model in sorted(to_remove, key=str):
        self.delete_znode(self._binding_path(saved_model, container))
      self._available_saved_model = saved_models

  def register_layout_callback(self, layout_path: str, callback: LayoutCallback):

    def callback_wrap(children: List[str]):
      saved_models = []
      model_names = set()
      for child in sorted(children):
        parts = child.split(':')
        if len(parts) < 2:
          logging.error('layout %s: child %r is not "model_name:sub_graph", skipped', layout_path,
                        child)
          continue
        saved_model = SavedModel(parts[0], parts[1])
        config_path = self._saved_model_path(saved_model)
        data = self.get_znode(config_path)
        if data is None:
          logging.error('layout %s: %s is not declared (no %s), skipped', layout_path,
                        saved_model, config_path)
          continue
        try:
          deploy_config = SavedModelDeployConfig.deserialize(data)
        except Exception as e:
          logging.error('layout %s: invalid deploy config in %s (%r): %s, skipped', layout_path,
                        config_path, data[:200], e)
          continue
        saved_models.append((saved_model, deploy_config))
        model_names.add(saved_model.model_name)
      with self._lock:
        keep = set(model_names)
        if self._sync_model_name is not None:
          keep.add(self._sync_model_name)
        self._service_info_map = {m: self._service_info_map.get(m, {}) for m in keep}
      for model_name in sorted(model_names):
        self._watch_binding(model_name)
      try:
        return callback(saved_models)
      except Exception:  # a failing callback must not kill the watch
        logging.exception('layout callback for %s failed', layout_path)
        return None

    with self._lock:
      self._layout_callbacks[layout_path] = callback_wrap
    self._zk.ensure_path(layout_path)
    self._children_watch(layout_path, callback_wrap)

  def _watch_binding(self, model_name: str):
    self._children_watch('/{}/binding/{}'.format(self._bzid, model_name),
                         partial(self._bind_callback, model_name))

  def _bind_callback(self, model_name: str, children: List[str]):
    with self._lock:
      if model_name not in self._service_info_map:
        return False  # no layout uses this model any more: stop watching
    sub_graph_map: Dict[str, List[ContainerServiceInfo]] = {}
    for child in sorted(children):
      parts = child.split(':')
      if len(parts) < 3:
        logging.error('binding %s/%s is not "sub_graph:ctx_cluster:ctx_id", skipped', model_name,
                      child)
        continue
      sub_graph, ctx_cluster, ctx_id = parts[:3]
      service_info = self.get_service_info(Container(ctx_cluster, ctx_id))
      if service_info is not None:
        sub_graph_map.setdefault(sub_graph, []).append(service_info)
    with self._lock:
      if model_name in self._service_info_map:
        self._service_info_map[model_name] = sub_graph_map
    return None

  def report_service_info(self, container: Container, service_info: ContainerServiceInfo):
    with self._lock:
      self._reported_service_info[container] = service_info
    if not self._zk.connected:
      # kazoo would block until the server is back; recovery or the next report writes it.
      logging.warning('ZooKeeper is not connected, service info of %s not written', container)
      return
    self.create_znode(self._container_path(container), service_info.serialize(), ephemeral=True)

  def get_service_info(self, container: Container) -> Optional[ContainerServiceInfo]:
    path = self._container_path(container)
    data = self.get_znode(path)
    if data is None:
      return None
    try:
      return ContainerServiceInfo.deserialize(data)
    except Exception as e:
      logging.error('invalid service info in %s (%r): %s', path, data[:200], e)
      return None

  def get_service_map(self) -> Dict[str, Dict[str, List[ContainerServiceInfo]]]:
    with self._lock:
      return {m: {s: list(v) for s, v in sub.items()} for m, sub in self._service_info_map.items()}

  def _children_watch(self, path: str, callback: Callable[[List[str]], Optional[bool]]):
    watcher = self._children_watcher_map.get(path)
    if watcher is not None and not watcher._stopped:
      logging.info('children watch on %s already exists', path)
      return
    self._zk.ensure_path(path)
    self._children_watcher_map[path] = self._zk.ChildrenWatch(path, callback)

  # ---- CtrlBackend ----
  def list_saved_models(self, model_name: str) -> List[SavedModel]:
    try:
      children = self._zk.get_children('/{}/saved_models/{}'.format(self._bzid, model_name))
    except NoNodeError:
      return []
    return [SavedModel(model_name, sub_graph) for sub_graph in sorted(children)]

  def decl_saved_model(self, saved_model: SavedModel, deploy_config: SavedModelDeployConfig):
    self.create_znode(self._saved_model_path(saved_model), deploy_config.serialize())

  def add_to_layout(self, layout: str, saved_model: SavedModel):
    self._zk.ensure_path('{}/{}'.format(layout, saved_model))

  def remove_from_layout(self, layout: str, saved_model: SavedModel):
    try:
      self._zk.delete('{}/{}'.format(layout, saved_model))
    except NoNodeError:
      pass

  def _get_children(self, path: str) -> List[str]:
    try:
      return sorted(self._zk.get_children(path))
    except NoNodeError:
      return []

  def _layouts(self, path: str, prefix: str, out: Dict[str, List[str]]):
    for child in self._get_children(path):
      if ':' in child:
        out.setdefault(prefix, []).append(child)
      else:
        name = '{}/{}'.format(prefix, child) if prefix else child
        out.setdefault(name, [])
        self._layouts('{}/{}'.format(path, child), name, out)

  def bzid_info(self) -> dict:
    """Everything under /{bzid} as one JSON-able dict with sorted keys and lists."""
    model_info = {}
    container_saved_models: Dict[str, List[str]] = {}
    for model_name in self._get_children('/{}/saved_models'.format(self._bzid)):
      bindings: Dict[str, List[str]] = {}
      for binding in self._get_children('/{}/binding/{}'.format(self._bzid, model_name)):
        parts = binding.split(':')
        if len(parts) < 3:
          continue
        container = '{}:{}'.format(parts[1], parts[2])
        bindings.setdefault(parts[0], []).append(container)
        container_saved_models.setdefault(container, []).append('{}:{}'.format(
            model_name, parts[0]))
      sub_graphs = {}
      available = 0
      for sub_graph in self._get_children('/{}/saved_models/{}'.format(self._bzid, model_name)):
        data = self.get_znode(self._saved_model_path(SavedModel(model_name, sub_graph)))
        try:
          deploy_config = SavedModelDeployConfig.deserialize(data).to_dict() if data else None
        except Exception as e:
          deploy_config = {'error': 'invalid deploy config: {}'.format(e)}
        containers = sorted(bindings.get(sub_graph, []))
        if containers:
          available += 1
        sub_graphs[sub_graph] = {'deploy_config': deploy_config, 'bindings': containers}
      model_info[model_name] = {
          'sub_graphs_total': len(sub_graphs),
          'sub_graphs_available': available,
          'sub_graphs': sub_graphs,
      }
    container_info = {}
    for container in self._get_children('/{}/container_service'.format(self._bzid)):
      ctx_cluster, _, ctx_id = container.partition(':')
      service_info = self.get_service_info(Container(ctx_cluster, ctx_id))
      container_info[container] = {
          'service_info': service_info.to_dict() if service_info else None,
          'saved_models': sorted(container_saved_models.get(container, [])),
      }
    layout_info: Dict[str, List[str]] = {}
    self._layouts('/{}/layouts'.format(self._bzid), '', layout_info)
    return {
        'model_info': dict(sorted(model_info.items())),
        'container_info': dict(sorted(container_info.items())),
        'layout_info': {k: sorted(v) for k, v in sorted(layout_info.items())},
    }

  # ---- SyncBackend ----
  def subscribe_model(self, model_name: str):
    assert self._sync_model_name is None or self._sync_model_name == model_name, \
        'already subscribed to {}'.format(self._sync_model_name)
    self._sync_model_name = model_name
    with self._lock:
      self._service_info_map.setdefault(model_name, {})
    self._watch_binding(model_name)

  def get_sync_targets(self, sub_graph: str) -> Tuple[str, List[str]]:
    if self._is_lost.is_set():
      self._restart_after_lost()
    model_name = self._sync_model_name
    with self._lock:
      infos = self._service_info_map.get(model_name, {}).get(sub_graph, [])
      return '{}:{}'.format(model_name, sub_graph), [info.grpc for info in infos]

  # ---- ZooKeeper helpers ----
  def _write_znode(self, path: str, value: bytes, ephemeral: bool = False,
                   makepath: bool = True):
    try:
      self._zk.create(path, value, ephemeral=ephemeral, makepath=makepath)
    except NodeExistsError:
      self._zk.retry(self._zk.set, path=path, value=value)

  def create_znode(self, path: str, value: bytes = b'', ephemeral: bool = False,
                   makepath: bool = True):
    try:
      self._write_znode(path, value, ephemeral=ephemeral, makepath=makepath)
    except Exception:
      logging.exception('cannot create %s', path)

  def delete_znode(self, path: str):
    try:
      self._zk.delete(path)
    except NoNodeError:
      logging.info('%s is already gone', path)
    except Exception:
      logging.exception('cannot delete %s', path)

  def get_znode(self, path: str) -> Optional[bytes]:
    try:
      value, _ = self._zk.get(path)
      return value
    except NoNodeError:
      return None

  def start(self):
    self._stopped = False
    # Also here: tests swap `_zk` for a FakeKazooClient after construction.
    self._zk.add_listener(self._zk_listener)
    self._zk.start()

  def stop(self):
    self._stopped = True
    self._zk.stop()
