"""A real, throw-away ZooKeeper server for tests (Debian's `zookeeper` package, run with java).

  with ZooKeeperTestServer() as server:
    zk = KazooClient(hosts=server.hosts)
    ...
    server.restart()            # same port and data: persistent nodes survive
    server.expire_session(zk)   # the server ends zk's session (zk sees LOST, then reconnects)

The server listens on a free loopback port, keeps its data in a temporary directory and is killed
when the context exits (or at interpreter exit, should a test forget to stop it).

Tests that run the same scenarios on the in-memory fake and on a real server mix
`RealZooKeeperMixin` into the real variant, and wait with `wait_for` for state that real watches
deliver on kazoo's thread.
"""

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Callable, List, Optional, Tuple

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

_JAR_DIRS = ('/usr/share/java', '/usr/share/zookeeper', '/usr/share/zookeeper/lib')
# zookeeper.jar's runtime dependencies as packaged by Debian (netty for the client port).
_JARS = ('zookeeper', 'zookeeper-jute', 'slf4j-api', 'slf4j-simple', 'netty-handler',
         'netty-transport', 'netty-common', 'netty-buffer', 'netty-codec', 'netty-resolver',
         'netty-transport-native-epoll', 'netty-transport-native-unix-common', 'metrics-core',
         'commons-io', 'snappy-java')
_MAIN_CLASS = 'org.apache.zookeeper.server.ZooKeeperServerMain'


class ZooKeeperUnavailable(RuntimeError):
  pass


def _find_jar(name: str) -> Optional[str]:
  for jar_dir in _JAR_DIRS:
    path = os.path.join(jar_dir, name + '.jar')
    if os.path.exists(path):
      return path
    versioned = sorted(glob.glob(os.path.join(jar_dir, name + '-[0-9]*.jar')))
    if versioned:
      return versioned[-1]
  return None


def classpath() -> str:
  jars: List[str] = []
  for name in _JARS:
    jar = _find_jar(name)
    if jar is None:
      if name in ('zookeeper', 'zookeeper-jute', 'slf4j-api'):
        raise ZooKeeperUnavailable('{}.jar not found in {} (install the Debian zookeeper '
                                   'package)'.format(name, ', '.join(_JAR_DIRS)))
      continue
    jars.append(jar)
  return ':'.join(jars)


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


class ZooKeeperTestServer(object):

  def __init__(self, tick_time_ms: int = 500, java: str = None):
    self._java = java or shutil.which('java') or '/usr/bin/java'
    self._tick_time_ms = tick_time_ms
    self._root = tempfile.mkdtemp(prefix='zk_test_server_',
                                  dir=os.environ.get('TEST_TMPDIR'))
    self._data_dir = os.path.join(self._root, 'data')
    os.makedirs(self._data_dir)
    self.port = _free_port()
    self._proc: Optional[subprocess.Popen] = None
    self._started_once = False
    self._log_path = os.path.join(self._root, 'zookeeper.log')
    atexit.register(self._cleanup)

  @property
  def hosts(self) -> str:
    return '127.0.0.1:{}'.format(self.port)

  @property
  def running(self) -> bool:
    return self._proc is not None and self._proc.poll() is None

  def _write_config(self) -> str:
    cfg = os.path.join(self._root, 'zoo.cfg')
    with open(cfg, 'w') as fp:
      fp.write('tickTime={}\n'.format(self._tick_time_ms))
      fp.write('dataDir={}\n'.format(self._data_dir))
      fp.write('clientPort={}\n'.format(self.port))
      fp.write('clientPortAddress=127.0.0.1\n')
      fp.write('maxClientCnxns=0\n')
      fp.write('admin.enableServer=false\n')
      fp.write('4lw.commands.whitelist=ruok,srvr\n')
    return cfg

  def start(self, timeout: float = 60):
    if self.running:
      return
    # The free port is only reserved once java binds it; on a first start, a port taken in the
    # meantime (by a test running in parallel) is retried with a new one. Restarts keep the port.
    for attempt in range(3):
      try:
        return self._start_once(timeout)
      except ZooKeeperUnavailable as e:
        if self._started_once or 'Address already in use' not in str(e) or attempt == 2:
          raise
        self.port = _free_port()

  def _start_once(self, timeout: float):
    cfg = self._write_config()
    cmd = [self._java, '-Xmx256m', '-XX:+UseSerialGC', '-cp', classpath(), _MAIN_CLASS, cfg]
    log = open(self._log_path, 'ab')
    self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
      if self._proc.poll() is not None:
        raise ZooKeeperUnavailable('zookeeper exited with {}:\n{}'.format(
            self._proc.returncode, self.log_tail()))
      if self._ruok():
        self._started_once = True
        return
      time.sleep(0.2)
    self.stop()
    raise ZooKeeperUnavailable('zookeeper did not answer on {} within {}s:\n{}'.format(
        self.hosts, timeout, self.log_tail()))

  def _ruok(self) -> bool:
    try:
      with socket.create_connection(('127.0.0.1', self.port), timeout=1) as sock:
        sock.sendall(b'ruok')
        return sock.recv(4) == b'imok'
    except OSError:
      return False

  def stop(self):
    if self._proc is None:
      return
    if self._proc.poll() is None:
      self._proc.kill()  # like a crash: no clean shutdown, sessions are not closed
      self._proc.wait(timeout=30)
    self._proc = None

  def restart(self, timeout: float = 60):
    self.stop()
    self.start(timeout)

  def expire_session(self, client: KazooClient, timeout: float = 10):
    """Ends `client`'s session on the server, the standard way: a second connection with the same
    session id and password closes it."""
    session_id, password = client.client_id
    killer = KazooClient(hosts=self.hosts, client_id=(session_id, password))
    killer.start(timeout=timeout)
    killer.stop()
    killer.close()

  def log_tail(self, n: int = 40) -> str:
    try:
      with open(self._log_path, errors='replace') as fp:
        return ''.join(fp.readlines()[-n:])
    except OSError:
      return ''

  def _cleanup(self):
    self.stop()
    shutil.rmtree(self._root, ignore_errors=True)

  def close(self):
    self._cleanup()
    atexit.unregister(self._cleanup)

  def __enter__(self) -> 'ZooKeeperTestServer':
    self.start()
    return self

  def __exit__(self, *exc):
    self.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
  """Polls `predicate` until it holds (True) or `timeout` seconds pass (False); it is asked once
  more after the deadline, so a slow last poll does not fail the wait."""
  deadline = time.time() + timeout
  while True:
    if predicate():
      return True
    if time.time() > deadline:
      return False
    time.sleep(0.05)


class RealZooKeeperMixin(object):
  """Put before the scenario class and the TestCase: one server (`self.server`) for the class,
  and the trees under `ZK_ROOTS` deleted after every test so the tests do not see each other.

    class RealFooTest(RealZooKeeperMixin, _FooTests, absltest.TestCase):
      ZK_ROOTS = ('/bzid',)
  """

  ZK_ROOTS: Tuple[str, ...] = ()

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.server = ZooKeeperTestServer()
    cls.server.start()

  @classmethod
  def tearDownClass(cls):
    cls.server.close()
    super().tearDownClass()

  def tearDown(self):
    # The scenario's tearDown stops its clients first: their watches would re-create the paths.
    super().tearDown()
    cleaner = KazooClient(hosts=self.server.hosts)
    cleaner.start()
    try:
      for root in self.ZK_ROOTS:
        try:
          cleaner.delete(root, recursive=True)
        except NoNodeError:
          pass
    finally:
      cleaner.stop()
      cleaner.close()
