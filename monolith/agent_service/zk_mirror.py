"""An in-memory mirror of the agent-v2 ZooKeeper tree, kept current by watches.

ZooKeeper layout (all under /{bzid}):
  portal/{model_name}                              ModelMeta JSON     persistent (load requests)
  publish/{shard_id}:{replica_id}:{model_name}     PublishMeta JSON   persistent (scheduler output)
  resource/{shard_id}:{replica_id}                 ResourceSpec JSON  ephemeral
  service/{model_name}/{server_type}:{task}/{replica}  ReplicaMeta JSON  ephemeral
  election/                                        kazoo Election recipe

Watch callbacks run on kazoo's event thread; they only touch `_data` under `_lock` and put
`Event`s on `queue` for the scheduler/agent to consume.
"""

import os
import queue as queue_lib
import threading
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Set, Union

from absl import logging
from kazoo.exceptions import (ConnectionClosedError, NoNodeError, NodeExistsError, NotEmptyError,
                              ZookeeperError)
from kazoo.protocol.states import EventType as ZKEventType

from monolith.agent_service import constants
from monolith.agent_service.data_def import (Event, EventType, ModelMeta, ModelState,
                                             PublishMeta, PublishType, ReplicaMeta, ResourceSpec)
from monolith.agent_service.utils import DeployType, get_local_ip, replica_id_from_pod_name


class _Pending(object):
  _stopped = False


_PENDING = _Pending()  # a watch being installed by another thread


class ZKMirror(object):

  def __init__(self, zk, bzid: str, queue: queue_lib.Queue = None, tce_shard_id: int = -1,
               num_tce_shard: int = None, deploy_type: str = DeployType.MIXED):
    self._zk = zk
    self.bzid = bzid
    self.queue = queue if queue is not None else queue_lib.Queue()
    self._tce_shard_id = tce_shard_id
    self._num_tce_shard = num_tce_shard
    self._deploy_type = DeployType(deploy_type)
    self._local_host = get_local_ip()

    self._lock = threading.RLock()
    self._data: Dict[str, bytes] = {}
    # path -> kazoo watch object; a children watch stops when its node is deleted and is
    # re-installed when the parent's watch sees the node again.
    self._watches: Dict[str, object] = {}
    # portal node -> last ModelMeta bytes, so a deletion event can still say which model left
    self._portal_seen: Dict[str, bytes] = {}

    self.resource_base_path = '/{}/resource'.format(bzid)
    self.portal_base_path = '/{}/portal'.format(bzid)
    self.publish_base_path = '/{}/publish'.format(bzid)
    self.service_base_path = '/{}/service'.format(bzid)
    self.locks_base_path = '/{}/locks'.format(bzid)
    self.election_base_path = '/{}/election'.format(bzid)

  # ---------------------------------------------------------------- identity
  @property
  def tce_shard_id(self) -> int:
    return self._tce_shard_id

  @property
  def num_tce_shard(self) -> int:
    if self._num_tce_shard is not None:
      return self._num_tce_shard
    return int(os.environ.get(constants.HOST_SHARD_ENV, 1))

  @property
  def tce_replica_id(self) -> int:
    if 'REPLICA_ID' in os.environ:
      return int(os.environ['REPLICA_ID'])
    return replica_id_from_pod_name()

  # ---------------------------------------------------------------- CRUD on ZooKeeper
  def create(self, path: str, value: bytes = b'', ephemeral: bool = False,
             makepath: bool = False, sequence: bool = False) -> Optional[str]:
    try:
      return self._zk.create(path, value, ephemeral=ephemeral, makepath=makepath,
                             sequence=sequence)
    except NodeExistsError:
      self._zk.retry(self._zk.set, path, value)
      return path

  def set(self, path: str, value: bytes):
    try:
      self._zk.retry(self._zk.set, path, value)
    except NoNodeError:
      self._zk.create(path, value, makepath=True)

  def exists(self, path: str) -> bool:
    try:
      return bool(self._zk.exists(path))
    except ZookeeperError as e:
      logging.warning('exists(%s) failed (%s), answering from the mirror', path, e)
      with self._lock:
        return path in self._data

  def ensure_path(self, path: str):
    self._zk.ensure_path(path)

  def delete(self, path: str, recursive: bool = False):
    try:
      self._zk.retry(self._zk.delete, path, recursive=recursive)
    except NotEmptyError:
      self._zk.retry(self._zk.delete, path, recursive=True)
    except NoNodeError:
      logging.info('delete %s: no such node', path)

  def get(self, path: str) -> Optional[bytes]:
    with self._lock:
      return self._data.get(path)

  def get_children(self, path: str) -> List[str]:
    """Names of the mirrored nodes directly below `path`."""
    prefix = path.rstrip('/') + '/'
    with self._lock:
      return [p[len(prefix):] for p in self._data if p.startswith(prefix) and
              '/' not in p[len(prefix):]]

  def _cached_under(self, base: str) -> Dict[str, bytes]:
    prefix = base + '/'
    with self._lock:
      return {p: v for p, v in self._data.items() if p.startswith(prefix)}

  @staticmethod
  def _decode(cls, path: str, data: bytes):
    try:
      return cls.deserialize(data)
    except Exception as e:  # one bad node must not hide the others
      logging.error('invalid %s in %s (%r): %s, skipped', cls.__name__, path, data[:200], e)
      return None

  # ---------------------------------------------------------------- resources
  def report_resource(self, resource: ResourceSpec):
    self.create(resource.get_path(self.resource_base_path), resource.serialize(),
                ephemeral=True, makepath=True)

  @property
  def resources(self) -> List[ResourceSpec]:
    specs = []
    for path, data in sorted(self._cached_under(self.resource_base_path).items()):
      spec = self._decode(ResourceSpec, path, data)
      if spec is not None:
        specs.append(spec)
    return specs

  # ---------------------------------------------------------------- publish / loading
  def publish_loadding(self, pms: Union[PublishMeta, List[PublishMeta]]):
    """Writes the scheduler's decisions (the typo is the upstream public name)."""
    if isinstance(pms, PublishMeta):
      pms = [pms]
    for pm in pms:
      path = pm.get_path(self.publish_base_path)
      value = pm.serialize()
      if self.get(path) != value:
        self.create(path, value, makepath=True)

  def _publish_metas(self) -> Dict[str, List[PublishMeta]]:
    by_model: Dict[str, List[PublishMeta]] = defaultdict(list)
    for path, data in sorted(self._cached_under(self.publish_base_path).items()):
      pm = self._decode(PublishMeta, path, data)
      if pm is not None:
        by_model[pm.model_name].append(pm)
    return by_model

  def expected_loading(self) -> Dict[str, PublishMeta]:
    """What this replica should load: model name -> PublishMeta, for fully published models.

    A model counts once all its `total_publish_num` publish nodes are present. This replica takes
    its own node if there is one, else its shard's (unless that one is pinned to a replica by
    `is_spec`), else it serves only the model's `entry` under its own shard and replica ids.
    """
    shard_id, replica_id = self.tce_shard_id, self.tce_replica_id
    expected = {}
    for model_name, pms in self._publish_metas().items():
      pms = [pm for pm in pms if pm.ptype == PublishType.LOAD]
      if not pms or len(pms) != pms[0].total_publish_num:
        continue
      own = [pm for pm in pms if pm.shard_id == shard_id and pm.replica_id == replica_id]
      same_shard = [pm for pm in pms if pm.shard_id == shard_id and not pm.is_spec]
      if own:
        pm = own[0]
      elif same_shard:
        pm = same_shard[0]
        pm.replica_id = replica_id
      else:
        pm = min(pms, key=lambda p: len(p.sub_models or {}))
        pm.shard_id, pm.replica_id = shard_id, replica_id
        pm.sub_models = {k: v for k, v in (pm.sub_models or {}).items() if k == 'entry'}
      expected[model_name] = pm
    return expected

  def get_published_path(self, model_name: str) -> List[str]:
    return sorted(p for p in self._cached_under(self.publish_base_path)
                  if p.endswith(':' + model_name))

  # ---------------------------------------------------------------- service
  def update_service(self, replicas: List[ReplicaMeta]):
    """Makes this replica's service nodes exactly `replicas`."""
    desired = {rm.get_path(self.bzid): rm for rm in replicas}
    for path in self.local_replica_paths - set(desired):
      self.delete(path)
    for path, rm in sorted(desired.items()):
      value = rm.serialize()
      if self.get(path) != value:
        self.create(path, value, ephemeral=True, makepath=True)

  def _replicas(self) -> Dict[str, ReplicaMeta]:
    replicas = {}
    for path, data in self._cached_under(self.service_base_path).items():
      if len(path[len(self.service_base_path):].split('/')) != 4:  # '', model, task, replica
        continue
      rm = self._decode(ReplicaMeta, path, data)
      if rm is not None:
        replicas[path] = rm
    return replicas

  @property
  def local_replica_paths(self) -> Set[str]:
    replica_id = self.tce_replica_id
    paths = set()
    for path, rm in self._replicas().items():
      host = (rm.address or '').rsplit(':', 1)[0]
      if host == self._local_host and rm.replica == replica_id:
        paths.add(path)
    return paths

  def _available(self, predicate: Callable[[ReplicaMeta], bool]) -> Dict[str, List[ReplicaMeta]]:
    grouped: Dict[str, List[ReplicaMeta]] = defaultdict(list)
    for path, rm in sorted(self._replicas().items()):
      if rm.stat == ModelState.AVAILABLE and predicate(rm):
        grouped['{}:{}:{}'.format(rm.model_name, rm.server_type, rm.task)].append(rm)
    return dict(grouped)

  def get_all_replicas(self, server_type: str) -> Dict[str, List[ReplicaMeta]]:
    """'{model}:{server_type}:{task}' -> AVAILABLE replicas."""
    return self._available(lambda rm: rm.server_type == server_type)

  def get_model_replicas(self, model_name: str,
                         server_type: str) -> Dict[str, List[ReplicaMeta]]:
    return self._available(
        lambda rm: rm.model_name == model_name and rm.server_type == server_type)

  def get_task_replicas(self, model_name: str, server_type: str, task: int) -> List[ReplicaMeta]:
    return [
        rm for rms in self._available(lambda rm: rm.model_name == model_name and rm.server_type ==
                                      server_type and rm.task == task).values() for rm in rms
    ]

  def get_replica(self, model_name: str, server_type: str, task: int,
                  replica: int) -> Optional[ReplicaMeta]:
    for rm in self.get_task_replicas(model_name, server_type, task):
      if rm.replica == replica:
        return rm
    return None

  # ---------------------------------------------------------------- watches
  def _claim_watch(self, path: str) -> bool:
    """True if the caller should install a watch on `path` (none is installed or alive)."""
    with self._lock:
      watch = self._watches.get(path)
      if watch is not None and not getattr(watch, '_stopped', False):
        return False
      self._watches[path] = _PENDING
      return True

  def _children_watch(self, path: str, func: Callable[[List[str]], None]):
    # Installed outside `_lock`: kazoo calls `func` right away, and it takes the lock.
    if self._claim_watch(path):
      self._zk.ensure_path(path)
      self._watches[path] = self._zk.ChildrenWatch(path, func)

  def _data_watch(self, path: str, func: Callable):
    # kazoo data watches survive deletion and fire again on re-creation: install once.
    if self._claim_watch(path):
      self._watches[path] = self._zk.DataWatch(path, func)

  def _mirror(self, path: str, data: Optional[bytes]) -> Optional[str]:
    """Updates the cache; returns CREATED/CHANGED/DELETED, or None if nothing changed."""
    with self._lock:
      old = self._data.get(path)
      if data is None:
        if path not in self._data:
          return None
        del self._data[path]
        return ZKEventType.DELETED
      self._data[path] = data
      if old is None:
        return ZKEventType.CREATED
      return ZKEventType.CHANGED if old != data else None

  def _watch_leaves(self, base: str, on_change: Callable[[str, Optional[bytes], str], None] = None):

    def on_children(children):
      for child in children:
        path = '{}/{}'.format(base, child)

        def on_data(data, stat, event=None, path=path):
          change = self._mirror(path, data)
          if change is not None and on_change is not None:
            on_change(path, data, change)

        self._data_watch(path, on_data)

    self._children_watch(base, on_children)

  def watch_portal(self):
    """Emits Event(PORTAL) carrying the ModelMeta (action CREATED/DELETED) for each load request.

    A load request that disappears also withdraws its publish nodes.
    """

    def on_change(path, data, change):
      if change == ZKEventType.CHANGED:
        return
      if change == ZKEventType.DELETED:
        data = self._portal_seen.pop(path, None)
        if data is None:
          return
        self._withdraw_publish(os.path.basename(path))
      else:
        self._portal_seen[path] = data
      mm = self._decode(ModelMeta, path, data)
      if mm is None:
        return
      mm.action = change
      self.queue.put(Event(path=path, data=mm.serialize(), etype=EventType.PORTAL))

    portal_models = set(self._safe_children(self.portal_base_path))
    for child in self._safe_children(self.publish_base_path):
      if child.split(':')[-1] not in portal_models:
        logging.info('publish %s has no portal request, deleted', child)
        self.delete('{}/{}'.format(self.publish_base_path, child))
    self._watch_leaves(self.portal_base_path, on_change)

  def _safe_children(self, path: str) -> List[str]:
    self._zk.ensure_path(path)
    try:
      return self._zk.get_children(path)
    except NoNodeError:
      return []

  def _withdraw_publish(self, model_name: str):
    for child in self._safe_children(self.publish_base_path):
      if child.split(':', 2)[-1] == model_name:
        self.delete('{}/{}'.format(self.publish_base_path, child))

  def watch_publish(self):
    """Mirrors publish nodes; emits Event(PUBLISH) when a model is fully published or gone."""

    def on_change(path, data, change):
      model_name = os.path.basename(path).split(':', 2)[-1]
      pms = self._publish_metas().get(model_name, [])
      if data is None:
        if pms:
          return
      else:
        pm = self._decode(PublishMeta, path, data)
        if pm is None or len(pms) != pm.total_publish_num:
          return
      self.queue.put(Event(path=path, data=data or b'', etype=EventType.PUBLISH))

    self._watch_leaves(self.publish_base_path, on_change)

  def watch_resource(self):
    self._watch_leaves(self.resource_base_path)

  def watch_service(self):
    """Mirrors service/{model}/{server_type}:{task}/{replica}."""

    def on_models(models):
      for model in models:
        model_path = '{}/{}'.format(self.service_base_path, model)

        def on_tasks(tasks, model_path=model_path):
          for task in tasks:
            self._watch_leaves('{}/{}'.format(model_path, task))

        self._children_watch(model_path, on_tasks)

    self._children_watch(self.service_base_path, on_models)

  # ---------------------------------------------------------------- election
  def election(self, leader: Callable, sched, identifier: str = None):
    """Runs `leader(sched)` while this process is the leader; entry servers never lead."""
    if self._deploy_type == DeployType.ENTRY:
      return
    identifier = identifier or os.environ.get('MY_POD_NAME') or self._local_host
    while True:
      election = self._zk.Election(self.election_base_path, identifier)
      try:
        election.run(leader, sched)
        return
      except ConnectionClosedError:
        if self._zk.connected:
          raise
        logging.warning('ZooKeeper connection closed during election, restarting the client')
        with self._lock:
          self._data.clear()
        while not self.queue.empty():
          try:
            self.queue.get_nowait()
          except queue_lib.Empty:
            break
        self._zk.restart()

  # ---------------------------------------------------------------- lifecycle
  def start(self, is_client: bool = False):
    self._zk.start()
    self.watch_service()
    if not is_client:
      self.watch_publish()

  def stop(self):
    self._zk.stop()
