"""Agent v1 replica registry in ZooKeeper.

Layout: `/{bzid}/service/{base_name}[/{idc}:{cluster}]/{server_type}:{task}/{replica}` holding a
ReplicaMeta JSON. `ReplicaUpdater` registers this agent's replicas (ephemeral nodes) and keeps
their `stat` in line with the local model servers; `ReplicaWatcher` mirrors every replica so the
AgentService can answer HeartBeat/GetReplicas from memory; `ZKListener` re-registers after a
ZooKeeper session is lost.
"""

import os
import random
import socket
import threading
import time
from typing import Dict, List, Optional, Tuple

from absl import logging
import grpc
from kazoo.exceptions import NoNodeError, NodeExistsError, NotEmptyError
from kazoo.protocol.states import EventType, KazooState

from monolith.agent_service.agent_service_pb2 import ServerType
from monolith.agent_service.data_def import ModelState, ReplicaMeta
from monolith.agent_service.tfs_monitor import TFSMonitor
from monolith.agent_service.utils import AgentConfig, DeployType, TFSServerType, ZKPath
from monolith.native_training.net_utils import AddressFamily
from monolith.native_training.zk_utils import is_ipv6_only

_POLL_INTERVAL = 60
_UPDATE_INTERVAL = 1
_CHECK_VERSION_INTERVAL = 60
# Upstream re-registers every 10 s; checking the flag every second keeps the registry gap short
# after a lost session at no cost.
_REREGISTER_CHECK_INTERVAL = 1


def _server_type_name(server_type) -> str:
  """'ps' / 'entry' / 'dense' from a ServerType enum value or a string."""
  if isinstance(server_type, str):
    return server_type.lower()
  return ServerType.Name(server_type).lower()


class ReplicaWatcher:
  """In-memory mirror of every replica of `base_name`, kept current by ZooKeeper watches."""

  def __init__(self,
               zk,
               config: AgentConfig,
               use_archon: bool = False,
               zk_watch_address_family: str = AddressFamily.IPV4,
               poll_interval: float = _POLL_INTERVAL):
    self._zk = zk
    self._conf = config
    self._use_archon = use_archon
    if zk_watch_address_family == AddressFamily.IPV4 and is_ipv6_only():
      zk_watch_address_family = AddressFamily.IPV6
    self._zk_watch_address_family = zk_watch_address_family
    self.path_prefix = f'/{config.bzid}/service/{config.base_name}'
    self.replicas: Dict[str, Dict[str, ReplicaMeta]] = {}
    self._lock = threading.RLock()
    self._watched = set()
    self._version = 0  # bumped on every change; keys the lookup cache
    self._cache: Dict[tuple, Dict[str, List[str]]] = {}
    self._should_poll = True
    self._poll_interval = poll_interval
    self._has_stopped = threading.Event()
    self._thread: Optional[threading.Thread] = None

  # ---- watches -------------------------------------------------------------------------------

  def watch_data(self):
    self._zk.ensure_path(self.path_prefix)
    self._ensure_watches()
    self._has_stopped.clear()
    self._thread = threading.Thread(target=self._poll, daemon=True)
    self._thread.start()

  def stop(self):
    self._has_stopped.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None

  def _watch_once(self, kind, path, func):
    with self._lock:
      if path in self._watched:
        return
      self._watched.add(path)
    getattr(self._zk, kind)(path, func)

  def _ensure_watches(self):
    if self._conf.dc_aware:
      self._watch_once('ChildrenWatch', self.path_prefix, self._on_locations)
    else:
      self._watch_once('ChildrenWatch', self.path_prefix,
                       lambda children: self._on_tasks(None, children))

  def _forget(self, path: str):
    with self._lock:
      self._watched = {p for p in self._watched if p != path and not p.startswith(path + '/')}

  def _on_locations(self, locations):
    if self._has_stopped.is_set():
      return False
    for location in locations:
      path = f'{self.path_prefix}/{location}'
      self._watch_once('ChildrenWatch', path,
                       lambda children, loc=location: self._on_tasks(loc, children))

  def _on_tasks(self, location: Optional[str], tasks):
    if self._has_stopped.is_set():
      return False
    base = self.path_prefix if location is None else f'{self.path_prefix}/{location}'
    with self._lock:
      for path in [p for p in self._watched if os.path.dirname(p) == base]:
        if os.path.basename(path) not in tasks:
          self._forget(path)
    for task in tasks:
      key = task if location is None else f'{location}/{task}'
      self._watch_once('ChildrenWatch', f'{base}/{task}',
                       lambda replicas, key=key: self._on_replicas(key, replicas))

  def _on_replicas(self, key: str, replicas):
    if self._has_stopped.is_set():
      return False
    for replica in replicas:
      path = f'{self.path_prefix}/{key}/{replica}'
      self._watch_once(
          'DataWatch', path,
          lambda data, stat, event=None, r=replica, p=path: self._on_data(key, r, p, data, event))

  def _on_data(self, key: str, replica: str, path: str, data, event):
    if self._has_stopped.is_set():
      return False
    name = str(int(replica))
    with self._lock:
      metas = self.replicas.get(key, {})
      if event is not None and event.type == EventType.DELETED:
        metas.pop(name, None)
        if not metas:
          self.replicas.pop(key, None)
          self._delete_if_empty(f'{self.path_prefix}/{key}')
        self._forget(path)
        self._changed()
        return False
      if not data:
        if name in metas:
          metas[name].stat = ModelState.UNKNOWN
          self._changed()
        return None
      self.replicas.setdefault(key, {})[name] = ReplicaMeta.deserialize(data)
      self._changed()
    return None

  def _delete_if_empty(self, task_path: str):
    try:
      self._zk.delete(task_path, recursive=False)
    except (NoNodeError, NotEmptyError):
      pass
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('cannot delete empty %s: %s', task_path, e)

  def _changed(self):
    self._version += 1
    self._cache = {}

  @property
  def version(self) -> int:
    """Bumped on every change of the replica map; equal versions mean equal lookups."""
    return self._version

  # ---- periodic reconciliation ---------------------------------------------------------------

  def _scan(self) -> Dict[str, Dict[str, ReplicaMeta]]:
    found = {}
    locations = self._zk.get_children(self.path_prefix) if self._conf.dc_aware else [None]
    for location in locations:
      base = self.path_prefix if location is None else f'{self.path_prefix}/{location}'
      for task in self._zk.get_children(base):
        key = task if location is None else f'{location}/{task}'
        for replica in self._zk.get_children(f'{base}/{task}'):
          data, _ = self._zk.get(f'{base}/{task}/{replica}')
          if data:
            found.setdefault(key, {})[str(int(replica))] = ReplicaMeta.deserialize(data)
    return found

  def _own_replica_keys(self) -> Dict[str, int]:
    """Replica keys this agent serves on PS/DENSE deploys -> their gRPC port."""
    conf = self._conf
    loc = f'{conf.location}/' if conf.dc_aware and conf.location else ''
    own = {}
    if conf.deploy_type in (DeployType.PS, DeployType.MIXED):
      for task in conf.get_server_schedule_iter(TFSServerType.PS):
        if task is not None:
          own[f'{loc}ps:{task}'] = conf.tfs_ps_port
    if conf.dense_alone and conf.deploy_type in (DeployType.DENSE, DeployType.MIXED):
      own[f'{loc}dense:0'] = conf.tfs_dense_port
    return own

  def _reregister_missing(self, old, new):
    """Re-creates this agent's PS/DENSE nodes that vanished while it still serves them."""
    if self._conf.deploy_type not in (DeployType.PS, DeployType.DENSE):
      return
    replica = str(self._conf.replica_id)
    for key in self._own_replica_keys():
      meta = old.get(key, {}).get(replica)
      if meta is None or replica in new.get(key, {}):
        continue
      path = f'{self.path_prefix}/{key}/{replica}'
      try:
        self._zk.create(path, meta.serialize(), ephemeral=True, makepath=True)
        new.setdefault(key, {})[replica] = meta
        logging.info('re-registered missing replica %s', path)
      except NodeExistsError:
        pass

  def poll_once(self):
    try:
      replicas_tmp = self._scan()
    except NoNodeError:
      replicas_tmp = {}
      self._zk.ensure_path(self.path_prefix)
    with self._lock:
      self._reregister_missing(self.replicas, replicas_tmp)
      self.replicas = replicas_tmp
      self._changed()
    self._ensure_watches()

  def _poll(self):
    while not self._has_stopped.wait(self._poll_interval):
      if not self._should_poll:
        continue
      try:
        self.poll_once()
      except Exception:  # pylint: disable=broad-except
        logging.exception('replica watcher poll failed')

  def reset_watches(self):
    """Forgets all watches (a new ZooKeeper session has none) and rebuilds them."""
    with self._lock:
      self._watched = set()
    self.poll_once()

  # ---- lookups -------------------------------------------------------------------------------

  def _matching(self, server_type, idc: Optional[str], cluster: Optional[str]):
    """(key, task, replica name, meta) of AVAILABLE replicas of `server_type` in idc/cluster."""
    st = _server_type_name(server_type)
    with self._lock:
      items = [(k, dict(v)) for k, v in self.replicas.items()]
    for key, metas in items:
      zk_path = ZKPath(f'{self.path_prefix}/{key}')
      # Paths without a location match any idc/cluster: a non-dc-aware deploy on a host whose
      # TCE_INTERNAL_IDC is set must still find its replicas (else entry waits for ps forever).
      if zk_path.server_type != st or (self._conf.dc_aware and not zk_path.ship_in(idc, cluster)):
        continue
      for name, meta in metas.items():
        if meta.stat == ModelState.AVAILABLE:
          yield key, zk_path, name, meta

  def _address(self, meta: ReplicaMeta) -> Optional[str]:
    return meta.get_address(use_archon=self._use_archon,
                            address_family=self._zk_watch_address_family)

  def get_all_replicas(self,
                       server_type,
                       idc: Optional[str] = None,
                       cluster: Optional[str] = None) -> Dict[str, List[str]]:
    cache_key = (self._version, _server_type_name(server_type), idc, cluster)
    cached = self._cache.get(cache_key)
    if cached is not None:
      return cached
    result: Dict[str, List[str]] = {}
    for key, _, _, meta in self._matching(server_type, idc, cluster):
      addr = self._address(meta)
      if addr:
        result.setdefault(key, []).append(addr)
    self._cache[cache_key] = result
    return result

  def get_replicas(self,
                   server_type,
                   task: int,
                   idc: Optional[str] = None,
                   cluster: Optional[str] = None) -> List[str]:
    addrs = []
    for _, zk_path, _, meta in self._matching(server_type, idc, cluster):
      if zk_path.index is not None and int(zk_path.index) == int(task):
        addr = self._address(meta)
        if addr:
          addrs.append(addr)
    return addrs

  def get_replica(self,
                  server_type,
                  task: int,
                  idc: Optional[str] = None,
                  cluster: Optional[str] = None) -> Optional[str]:
    addrs = self.get_replicas(server_type, task, idc, cluster)
    return random.choice(addrs) if addrs else None

  def get_replicas_with_extra_info(self,
                                   server_type,
                                   task: int,
                                   idc: Optional[str] = None,
                                   cluster: Optional[str] = None) -> dict:
    """{address: ClientConfig.TargetExtraInfo(idc, cluster, replica_id)} (a dict, as upstream)."""
    from monolith.native_training.runtime.parameter_sync import parameter_sync_pb2
    result = {}
    for _, zk_path, name, meta in self._matching(server_type, idc, cluster):
      if zk_path.index is not None and int(zk_path.index) == int(task):
        addr = self._address(meta)
        if addr:
          result[addr] = parameter_sync_pb2.ClientConfig.TargetExtraInfo(
              idc=zk_path.idc or '', cluster=zk_path.cluster or '', replica_id=int(name))
    return result

  def to_sync_wrapper(self) -> 'SyncBackendWrapper':
    return SyncBackendWrapper(self)


class SyncBackendWrapper:
  """Parameter-sync backend view of a ReplicaWatcher: sub graph `ps_i` -> its PS replicas."""

  def __init__(self, watcher: ReplicaWatcher):
    self._watcher = watcher
    self._model_names = set()

  def subscribe_model(self, model_name: str):
    self._model_names.add(model_name)

  def get_sync_targets(self, sub_graph: str) -> Tuple[str, dict]:
    kind, _, index = sub_graph.partition('_')
    if kind != TFSServerType.PS or not index.isdigit():
      raise ValueError(f'sync targets exist only for ps_<i> sub graphs, got {sub_graph!r}')
    return sub_graph, self._watcher.get_replicas_with_extra_info(TFSServerType.PS, int(index))


def _host_ipv4() -> str:
  if os.environ.get('MY_HOST_IP'):
    return os.environ['MY_HOST_IP']
  try:
    return socket.gethostbyname(socket.gethostname())
  except OSError:
    return '0.0.0.0'


def _host_ipv6() -> str:
  if os.environ.get('MY_HOST_IPV6'):
    return os.environ['MY_HOST_IPV6']
  try:
    return socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET6)[0][4][0]
  except (OSError, IndexError):
    return '::'


class ReplicaUpdater:
  """Registers this agent's replicas and mirrors the local model servers' states into them."""

  def __init__(self, zk, config: AgentConfig, update_interval: float = _UPDATE_INTERVAL):
    self._zk = zk
    self._conf = config
    self._tfs_monitor = TFSMonitor(config)
    self.meta: Dict[str, ReplicaMeta] = {}  # replica path -> what this agent last wrote
    self._paths: Dict[str, str] = {}  # model name (entry / ps_3 / dense_0) -> replica path
    self._lock = threading.RLock()
    self._update_interval = update_interval
    self._should_update = True
    self._should_reregister = False
    self._has_stopped = threading.Event()
    self._threads: List[threading.Thread] = []
    self._latest_versions: Dict[str, Tuple[int, float]] = {}

  @property
  def model_names(self) -> List[str]:
    conf = self._conf
    names = []
    if conf.deploy_type in (DeployType.MIXED, DeployType.PS):
      names += [f'ps_{task}' for task in conf.get_server_schedule_iter(TFSServerType.PS)
                if task is not None]
    if conf.deploy_type in (DeployType.MIXED, DeployType.ENTRY):
      names.append(TFSServerType.ENTRY)
    if conf.dense_alone and conf.deploy_type in (DeployType.MIXED, DeployType.DENSE):
      names.append('dense_0')
    return names

  def _do_register(self, replica_path: str, grpc_port: int, archon_port: int) -> str:
    known = self.meta.get(replica_path)
    if known is None:
      host, host6 = _host_ipv4(), _host_ipv6()
      known = ReplicaMeta(address=f'{host}:{grpc_port}',
                          address_ipv6=f'[{host6}]:{grpc_port}',
                          stat=ModelState.UNKNOWN,
                          archon_address=f'{host}:{archon_port}',
                          archon_address_ipv6=f'[{host6}]:{archon_port}')
    value = known.serialize()
    sequential = replica_path.endswith('/entry:0/0') and self._conf.replica_id == -1
    try:
      created = self._zk.create(replica_path,
                                value,
                                ephemeral=True,
                                sequence=sequential,
                                makepath=True)
      if sequential:
        self._conf.replica_id = int(os.path.basename(created))
        replica_path = created
    except NodeExistsError:
      current, _ = self._zk.get(replica_path)
      if current != value:
        self._zk.set(replica_path, value)
    self.meta[replica_path] = known
    logging.info('registered %s: %s', replica_path, value)
    return replica_path

  def register(self):
    conf = self._conf
    prefix = conf.path_prefix
    with self._lock:
      if conf.deploy_type in (DeployType.MIXED, DeployType.ENTRY):
        old = self._paths.get(TFSServerType.ENTRY)
        if old is not None:
          path = old
        elif conf.replica_id == -1:
          path = f'{prefix}/entry:0/0'
        else:
          path = f'{prefix}/entry:0/{conf.replica_id:011d}'
        self._paths[TFSServerType.ENTRY] = self._do_register(path, conf.tfs_entry_port,
                                                             conf.tfs_entry_archon_port)
      if conf.deploy_type in (DeployType.MIXED, DeployType.PS):
        for task in conf.get_server_schedule_iter(TFSServerType.PS):
          if task is None:
            continue
          path = f'{prefix}/ps:{task}/{conf.replica_id}'
          self._paths[f'ps_{task}'] = self._do_register(path, conf.tfs_ps_port,
                                                        conf.tfs_ps_archon_port)
      if conf.dense_alone and conf.deploy_type in (DeployType.MIXED, DeployType.DENSE):
        path = f'{prefix}/dense:0/{conf.replica_id}'
        self._paths['dense_0'] = self._do_register(path, conf.tfs_dense_port,
                                                   conf.tfs_dense_archon_port)

  def _write(self, path: str, meta: ReplicaMeta):
    value = meta.serialize()
    try:
      self._zk.set(path, value)
    except NoNodeError:
      self._zk.create(path, value, ephemeral=True, makepath=True)

  def _do_update(self, name: str):
    path = self._paths.get(name)
    if path is None:
      return
    meta = self.meta[path]
    try:
      statuses = self._tfs_monitor.get_model_status(name)
    except grpc.RpcError as e:
      logging.warning('cannot read the status of %s: %s', name, e.details())
      if meta.stat != ModelState.UNKNOWN:
        meta.stat = ModelState.UNKNOWN
        self._write(path, meta)
      return
    if not statuses:
      return
    ordered = sorted(statuses, key=lambda s: s.version, reverse=True)
    chosen = next((s for s in ordered if s.state == ModelState.AVAILABLE), ordered[0])
    if chosen.status.error_code != 0:
      raise RuntimeError(f'model {name} has error status {chosen.status.error_code}: '
                         f'{chosen.status.error_message}')
    if chosen.state == ModelState.AVAILABLE:
      self._latest_versions[name] = (chosen.version, time.time())
    if chosen.state != meta.stat:
      logging.info('%s: %s -> %s', path, ModelState.Name(meta.stat),
                   ModelState.Name(chosen.state))
      meta.stat = chosen.state
      self._write(path, meta)

  def _updater(self):
    while not self._has_stopped.wait(self._update_interval):
      if not self._should_update:
        continue
      for name in self.model_names:
        try:
          with self._lock:
            self._do_update(name)
        except Exception:  # pylint: disable=broad-except
          logging.exception('updating the status of %s failed', name)

  def _check_version(self):
    from monolith.native_training.metric import cli
    conf = self._conf
    metrics = cli.get_cli(os.environ.get('MONOLITH_METRIC_PREFIX', 'data.monolith_serving'))
    global_metrics = cli.get_cli('data.monolith_serving.global')
    now = time.time()
    for name, (version, update_ts) in list(self._latest_versions.items()):
      tags = {
          'model_name': name,
          'idc': conf.idc or '',
          'cluster': conf.cluster or '',
          'replica_id': str(conf.replica_id),
          'shard_id': str(conf.shard_id),
          'base_name': conf.base_name or '',
      }
      metrics.emit_store('serving_model.latest_version', version, tags)
      global_metrics.emit_store('serving_model.since_last_update', now - version, tags)
      metrics.emit_store('serving_model.update_ts', update_ts, tags)
    metrics.flush()
    global_metrics.flush()

  def _watch_update(self):
    while not self._has_stopped.wait(_CHECK_VERSION_INTERVAL):
      try:
        self._check_version()
      except Exception:  # pylint: disable=broad-except
        logging.exception('emitting version metrics failed')

  def _reregister(self):
    while not self._has_stopped.wait(_REREGISTER_CHECK_INTERVAL):
      if not self._should_reregister:
        continue
      try:
        self.register()
        self._should_reregister = False
        self._should_update = True
      except Exception:  # pylint: disable=broad-except
        logging.exception('re-registration failed, retrying')

  def start(self):
    self._tfs_monitor.start()
    self._has_stopped.clear()
    self._threads = [
        threading.Thread(target=fn, daemon=True)
        for fn in (self._updater, self._watch_update, self._reregister)
    ]
    for t in self._threads:
      t.start()

  def stop(self):
    self._has_stopped.set()
    for t in self._threads:
      t.join()
    self._threads = []
    self._tfs_monitor.stop()
    self.meta.clear()
    self._paths.clear()


class ZKListener:
  """kazoo state listener: pauses on a lost session and re-registers when connected again."""

  def __init__(self, watcher: ReplicaWatcher, updater: ReplicaUpdater, resume_delay: float = 5):
    self._watcher = watcher
    self._updater = updater
    self._has_lost = False
    self._resume_delay = resume_delay

  def __call__(self, state):
    if state == KazooState.LOST:
      logging.warning('ZooKeeper session lost, pausing replica updates')
      self._has_lost = True
      self._watcher._should_poll = False
      self._updater._should_update = False
    elif state == KazooState.CONNECTED and self._has_lost:
      logging.info('ZooKeeper reconnected after a lost session, re-registering')
      self._has_lost = False
      self._updater._should_reregister = True
      # kazoo calls listeners on its connection thread, which must not block or touch ZK.
      threading.Thread(target=self._resume, daemon=True).start()
    return False

  def _resume(self):
    time.sleep(self._resume_delay)
    try:
      self._watcher.reset_watches()
    except Exception:  # pylint: disable=broad-except
      logging.exception('rebuilding replica watches failed; the next poll retries')
    self._watcher._should_poll = True


class ReplicaManager:

  def __init__(self, zk, config: AgentConfig, **kwargs):
    self._zk = zk
    self._conf = config
    self._watcher = ReplicaWatcher(zk, config, **kwargs)
    self._updater = ReplicaUpdater(zk, config)
    zk.add_listener(ZKListener(self._watcher, self._updater))

  @property
  def watcher(self) -> ReplicaWatcher:
    return self._watcher

  @property
  def updater(self) -> ReplicaUpdater:
    return self._updater

  def start(self):
    self._updater.register()
    self._watcher.watch_data()
    self._updater.start()

  def stop(self):
    self._updater.stop()
    self._watcher.stop()

  def get_replicas(self, server_type, task: int) -> List[str]:
    return self._watcher.get_replicas(server_type, task, self._conf.idc, self._conf.cluster)

  def is_ps_set_started(self) -> bool:
    return all(
        self.get_replicas(TFSServerType.PS, task) for task in range(self._conf.num_ps))

  def is_dense_set_started(self) -> bool:
    if not self._conf.dense_alone:
      return True
    return bool(self.get_replicas(TFSServerType.DENSE, 0))
