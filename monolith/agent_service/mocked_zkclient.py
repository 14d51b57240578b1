"""In-memory stand-in for kazoo's KazooClient, used by agent tests.

It raises kazoo's own exceptions and passes kazoo's event/stat types to watchers, so code written
against KazooClient runs unchanged. Watch callbacks run synchronously in the thread that made the
change (kazoo runs them on its event thread), which keeps tests deterministic.
"""

import abc
import threading
import time
from functools import partial
from typing import Callable, Dict, List, Optional

from absl import logging
from kazoo.exceptions import (BadArgumentsError, NoNodeError, NodeExistsError, NotEmptyError)
from kazoo.protocol.states import (EventType, KazooState, KeeperState, WatchedEvent, ZnodeStat)


def _now_ms() -> int:
  return int(time.time() * 1000)


class _Watch(abc.ABC):
  """What kazoo's ChildrenWatch and DataWatch share: given `func` or decorating it, calling it on
  every change until it returns False; a raising `func` is logged and keeps the watch."""

  def __init__(self, catalog: 'Catalog', path: str, func: Callable = None):
    self._catalog = catalog
    self._path = path
    self._func = None
    self._stopped = False
    if func is not None:
      self(func)

  def __call__(self, func):
    """Registers `func` (kazoo's decorator form)."""
    self._func = func
    self._register()
    return func

  @property
  def path(self) -> str:
    return self._path

  @abc.abstractmethod
  def _register(self):
    """Adds this watch to the catalog, which fires it now and on every change."""

  @abc.abstractmethod
  def _call(self, *args):
    """Calls `func` the way this kind of watch does; returns what it returned."""

  def _fire(self, *args):
    if self._stopped or self._func is None:
      return
    try:
      result = self._call(*args)
    except Exception:  # kazoo logs and keeps its event thread alive
      logging.exception('%s callback on %s failed', type(self).__name__, self._path)
      return
    if result is False:
      self._stopped = True


class ChildrenWatch(_Watch):
  """Calls `func(children)` (or `func(children, event)` with send_event) now and on every change.

  Like kazoo: a watch on a missing node stops immediately without calling `func`; returning
  False from `func` stops it; the node's deletion stops it.
  """

  def __init__(self, catalog: 'Catalog', path: str, func: Callable = None,
               allow_session_lost: bool = True, send_event: bool = False):
    self._send_event = send_event  # set first: registering fires `func` at once
    super().__init__(catalog, path, func)

  def _register(self):
    self._catalog.add_children_watch(self)

  def _call(self, children: List[str], event: Optional[WatchedEvent]):
    return self._func(children, event) if self._send_event else self._func(children)


class DataWatch(_Watch):
  """Calls `func(data, stat, event)` (falling back to `func(data, stat)`) now and on every change.

  Like kazoo: a missing node gives `(None, None)`; the watch survives deletion and fires again when
  the node is re-created; returning False from `func` stops it.
  """

  def __init__(self, catalog: 'Catalog', path: str, func: Callable = None, *args, **kwargs):
    # Extra arguments are accepted and ignored, as kazoo does with its deprecated ones.
    super().__init__(catalog, path, func)

  def _register(self):
    self._catalog.add_data_watch(self)

  def _call(self, data, stat, event):
    try:
      return self._func(data, stat, event)
    except TypeError:
      return self._func(data, stat)


class Election(object):
  """Single-process election: `run` holds a lock while `func` runs (only one leader at a time)."""

  def __init__(self, catalog: 'Catalog', path: str, identifier: str = None):
    self._catalog = catalog
    self.path = path
    self.identifier = identifier
    self.lock = threading.Lock()
    self._cancelled = False

  def run(self, func, *args, **kwargs):
    if not callable(func):
      raise ValueError('leader function is not callable')
    with self.lock:
      if self._cancelled:
        return
      func(*args, **kwargs)

  def cancel(self):
    # threading.Lock has no cancel(): a waiting run() returns without leading instead.
    self._cancelled = True

  def contenders(self):
    return [self.identifier] if self.lock.locked() else []


class Node(object):
  """One znode. Watch notifications are sent by the Catalog, which knows the registrations."""

  def __init__(self, path: str, value: bytes = b'', ephemeral: bool = False):
    self.path = path
    self.value = value
    self.ephemeral = ephemeral
    self.children: Dict[str, 'Node'] = {}
    # ZooKeeper reports ctime/mtime in milliseconds; consumers (e.g. zk_utils.clear_zk_path)
    # compare them with millisecond clocks.
    self._ctime = _now_ms()
    self._mtime = self._ctime
    self._version = 0
    self._cversion = 0

  @property
  def state(self) -> ZnodeStat:
    return ZnodeStat(czxid=0, mzxid=self._version, ctime=self._ctime, mtime=self._mtime,
                     version=self._version, cversion=self._cversion, aversion=0,
                     ephemeralOwner=1 if self.ephemeral else 0,
                     dataLength=len(self.value or b''), numChildren=len(self.children), pzxid=0)

  def set(self, value: bytes):
    self.value = value
    self._mtime = _now_ms()
    self._version += 1

  def child_path(self, name: str) -> str:
    return '/' + name if self.path == '/' else self.path + '/' + name

  def create_child(self, name: str, value: bytes = b'', ephemeral: bool = False) -> 'Node':
    if name in self.children:
      raise NodeExistsError(self.child_path(name))
    child = Node(self.child_path(name), value, ephemeral)
    self.children[name] = child
    self._cversion += 1
    return child

  def get_child(self, name: str) -> Optional['Node']:
    return self.children.get(name)

  def has_child(self, name: str) -> bool:
    return name in self.children

  def remove_child(self, name: str, recursive: bool = False) -> 'Node':
    child = self.children.get(name)
    if child is None:
      raise NoNodeError(self.child_path(name))
    if child.children and not recursive:
      raise NotEmptyError(child.path)
    del self.children[name]
    self._cversion += 1
    return child

  def walk(self):
    """This node and all descendants, children before parents (deletion order)."""
    for child in list(self.children.values()):
      yield from child.walk()
    yield self


def _split(path: str) -> List[str]:
  if not path or not path.startswith('/'):
    raise BadArgumentsError('path must start with /: {!r}'.format(path))
  return [p for p in path.split('/') if p]


def _normalize(path: str) -> str:
  return '/' + '/'.join(_split(path))


class Catalog(object):
  """The znode tree plus the watches registered on paths (present or not)."""

  def __init__(self):
    self._root = Node('/')
    self._lock = threading.RLock()
    self._data_watches: Dict[str, List[DataWatch]] = {}
    self._children_watches: Dict[str, List[ChildrenWatch]] = {}
    self._sequence_paths: Dict[str, int] = {}

  def find(self, path: str) -> Optional[Node]:
    node = self._root
    for part in _split(path):
      node = node.get_child(part)
      if node is None:
        return None
    return node

  def _get(self, path: str) -> Node:
    node = self.find(path)
    if node is None:
      raise NoNodeError(path)
    return node

  # ---- watches ----
  def add_data_watch(self, watch: DataWatch):
    path = _normalize(watch.path)
    with self._lock:
      self._data_watches.setdefault(path, []).append(watch)
      node = self.find(path)
      if node is None:
        watch._fire(None, None, None)
      else:
        watch._fire(node.value, node.state, None)

  def add_children_watch(self, watch: ChildrenWatch):
    path = _normalize(watch.path)
    with self._lock:
      node = self.find(path)
      if node is None:
        watch._stopped = True
        return
      self._children_watches.setdefault(path, []).append(watch)
      watch._fire(sorted(node.children), None)

  def _notify_data(self, path: str, node: Optional[Node], etype: str):
    event = WatchedEvent(etype, KeeperState.CONNECTED, path)
    for watch in list(self._data_watches.get(path, [])):
      if node is None:
        watch._fire(None, None, event)
      else:
        watch._fire(node.value, node.state, event)
    self._data_watches[path] = [w for w in self._data_watches.get(path, []) if not w._stopped]

  def _notify_children(self, parent: Node):
    event = WatchedEvent(EventType.CHILD, KeeperState.CONNECTED, parent.path)
    for watch in list(self._children_watches.get(parent.path, [])):
      watch._fire(sorted(parent.children), event)
    self._children_watches[parent.path] = [
        w for w in self._children_watches.get(parent.path, []) if not w._stopped
    ]

  def _notify_deleted(self, node: Node):
    for watch in self._children_watches.pop(node.path, []):
      watch._stopped = True  # kazoo stops a children watch when its node goes away
    self._notify_data(node.path, None, EventType.DELETED)

  # ---- CRUD ----
  def ensure_path(self, path: str) -> str:
    with self._lock:
      node = self._root
      for part in _split(path):
        child = node.get_child(part)
        if child is None:
          child = self._create_in(node, part, b'', False)
        node = child
      return node.path

  def _create_in(self, parent: Node, name: str, value: bytes, ephemeral: bool) -> Node:
    child = parent.create_child(name, value, ephemeral)
    self._notify_data(child.path, child, EventType.CREATED)
    self._notify_children(parent)
    return child

  def create(self, path: str, value: bytes = b'', ephemeral: bool = False,
             makepath: bool = False, sequence: bool = False) -> str:
    if value is not None and not isinstance(value, bytes):
      raise TypeError('value must be a byte string')
    parts = _split(path)
    if not parts:
      raise NodeExistsError(path)
    with self._lock:
      parent_path = '/' + '/'.join(parts[:-1])
      name = parts[-1]
      if makepath:
        self.ensure_path(parent_path)
      parent = self._get(parent_path)
      if parent.ephemeral:
        raise NoNodeError('ephemeral node {} cannot have children'.format(parent_path))
      if sequence:
        seq = self._sequence_paths.get(parent.path, 0)
        self._sequence_paths[parent.path] = seq + 1
        name = '{}{:010d}'.format(name, seq)
      return self._create_in(parent, name, value or b'', ephemeral).path

  def delete(self, path: str, recursive: bool = False):
    if not _split(path):
      raise BadArgumentsError('cannot delete the root node')
    with self._lock:
      node = self._get(path)
      if node.children and not recursive:
        raise NotEmptyError(path)
      # Deepest first, one node at a time, with the events kazoo's recursive delete produces.
      for doomed in list(node.walk()):
        self._delete_one(doomed.path)

  def _delete_one(self, path: str):
    parts = _split(path)
    parent = self._get('/' + '/'.join(parts[:-1]))
    self._notify_deleted(parent.remove_child(parts[-1]))
    self._notify_children(parent)

  def set(self, path: str, value: bytes) -> ZnodeStat:
    if not isinstance(value, bytes):
      raise TypeError('value must be a byte string')
    with self._lock:
      node = self._get(path)
      node.set(value)
      self._notify_data(node.path, node, EventType.CHANGED)
      return node.state

  def get(self, path: str):
    with self._lock:
      node = self._get(path)
      return node.value, node.state

  def get_children(self, path: str) -> List[str]:
    with self._lock:
      return sorted(self._get(path).children)

  def exists(self, path: str) -> Optional[ZnodeStat]:
    with self._lock:
      node = self.find(path)
      return None if node is None else node.state

  def drop_ephemerals(self):
    """What the server does when a session ends: its ephemeral nodes vanish (with events)."""
    with self._lock:
      doomed = [n for n in self._root.walk() if n.ephemeral]
      for node in doomed:
        if self.find(node.path) is not None:
          self.delete(node.path, recursive=True)


class FakeKazooClient(object):
  """The subset of KazooClient used by Monolith, backed by a Catalog."""

  def __init__(self, zk_server: str = None, *args, **kwargs):
    self.hosts = zk_server
    self._catalog: Optional[Catalog] = None
    self._listeners = []
    self.state = KazooState.LOST
    self.DataWatch = None
    self.ChildrenWatch = None
    self.Election = None

  def _bind(self):
    self.DataWatch = partial(DataWatch, self._catalog)
    self.ChildrenWatch = partial(ChildrenWatch, self._catalog)
    self.Election = partial(Election, self._catalog)

  def _set_state(self, state: str):
    self.state = state
    for listener in list(self._listeners):
      if listener(state) is True:  # kazoo drops listeners that return True
        self._listeners.remove(listener)

  @property
  def connected(self) -> bool:
    return self.state == KazooState.CONNECTED

  def add_listener(self, listener):
    if listener not in self._listeners:
      self._listeners.append(listener)

  def remove_listener(self, listener):
    if listener in self._listeners:
      self._listeners.remove(listener)

  def start(self, timeout: float = 15):
    if self._catalog is None:
      self._catalog = Catalog()
      self._bind()
    self._set_state(KazooState.CONNECTED)

  def stop(self):
    self._catalog = None
    self._set_state(KazooState.LOST)

  def close(self):
    pass

  def restart(self):
    """kazoo's restart (stop + start) gives a new session: the old ephemeral nodes are gone."""
    self.expire_session()

  def expire_session(self):
    """Test hook: what a client sees when the server expires its session and it reconnects."""
    self._set_state(KazooState.LOST)
    if self._catalog is not None:
      self._catalog.drop_ephemerals()
    self.start()

  def _checked(self) -> Catalog:
    if self._catalog is None:
      from kazoo.exceptions import ConnectionClosedError
      raise ConnectionClosedError('Connection has been closed')
    return self._catalog

  def create(self, path: str, value: bytes = b'', acl=None, ephemeral: bool = False,
             sequence: bool = False, makepath: bool = False, include_data: bool = False):
    catalog = self._checked()
    real_path = catalog.create(path, value, ephemeral=ephemeral, makepath=makepath,
                               sequence=sequence)
    if include_data:
      return real_path, catalog.exists(real_path)
    return real_path

  def delete(self, path: str, version: int = -1, recursive: bool = True):
    self._checked().delete(path, recursive=recursive)
    return True

  def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
    return self._checked().set(path, value)

  def get(self, path: str, watch=None):
    return self._checked().get(path)

  def exists(self, path: str, watch=None) -> Optional[ZnodeStat]:
    return self._checked().exists(path)

  def get_children(self, path: str, watch=None, include_data: bool = False):
    catalog = self._checked()
    children = catalog.get_children(path)
    if include_data:
      return children, catalog.exists(path)
    return children

  def ensure_path(self, path: str, acl=None) -> str:
    return self._checked().ensure_path(path)

  def retry(self, func, *args, **kwargs):
    return func(*args, **kwargs)
