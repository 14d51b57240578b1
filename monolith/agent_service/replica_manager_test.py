"""ReplicaManager with FakeTFServing model servers, on the fake and on a real ZooKeeper.

Upstream's test only set things up; these check registration, status updates to AVAILABLE as the
fake servers load, the watcher's maps (dc-aware and not), `is_ps_set_started` and
re-registration after a lost session.
"""

import os
import re
import threading
import time
import unittest

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from monolith.agent_service import constants
from monolith.agent_service.data_def import ModelState, ReplicaMeta
from monolith.agent_service.mocked_tfserving import FakeTFServing
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.replica_manager import ReplicaManager
from monolith.agent_service.utils import AgentConfig, TFSServerType, find_free_port
from monolith.agent_service.zk_test_server import ZooKeeperTestServer

MODEL_NAME = 'iptv_ex_model'
BASE_PATH = f'/iptv/{MODEL_NAME}/saved_models'
NUM_PS, NUM_SHARD, SHARD_ID, REPLICA_ID = 20, 5, 1, 2
OWN_PS_TASKS = [t for t in range(NUM_PS) if t % NUM_SHARD == SHARD_ID]


def wait_until(cond, timeout=15, what='condition'):
  deadline = time.time() + timeout
  while time.time() < deadline:
    try:
      value = cond()
    except KazooException:  # the client is between sessions
      value = None
    if value:
      return value
    time.sleep(0.1)
  raise AssertionError(f'{what} not reached in {timeout} s')


def register(zk, conf: AgentConfig, path_prefix: str):
  """The other shards' replicas: every ps task of another shard, replicas 0..2, AVAILABLE."""
  for task_id in range(NUM_PS):
    if task_id % NUM_SHARD == SHARD_ID:
      continue
    for replica_id in range(3):
      meta = ReplicaMeta(address=f'192.168.1.{task_id}:{find_free_port()}',
                         stat=ModelState.AVAILABLE)
      zk.create(f'{path_prefix}/ps:{task_id}/{replica_id}', meta.serialize(), ephemeral=True,
                makepath=True)


class ReplicaMgrTest(unittest.TestCase):
  dc_aware = True

  @classmethod
  def make_zk(cls):
    return FakeKazooClient()

  @classmethod
  def expire_session(cls, zk):
    zk.expire_session()

  @classmethod
  def setUpClass(cls):
    os.environ.update({
        constants.HOST_SHARD_ENV: str(NUM_SHARD),
        'SHARD_ID': str(SHARD_ID),
        'REPLICA_ID': str(REPLICA_ID),
        'TCE_INTERNAL_IDC': 'lf',
        'TCE_LOGICAL_CLUSTER': 'default',
        'MY_HOST_IP': '127.0.0.1',
    })
    os.environ.pop('MY_POD_NAME', None)
    cls.conf = AgentConfig(bzid='bzid', base_name=MODEL_NAME, deploy_type='mixed',
                           base_path=BASE_PATH, num_ps=NUM_PS, num_shard=NUM_SHARD,
                           dc_aware=cls.dc_aware,
                           platform_config_file='/tmp/replica_manager_test/platform.cfg')
    cls.servers, cls.threads = [], []
    for server_type, port in ((TFSServerType.ENTRY, cls.conf.tfs_entry_port),
                              (TFSServerType.PS, cls.conf.tfs_ps_port)):
      cmd = cls.conf.get_cmd('tensorflow_model_server', server_type=server_type)
      config_file = re.search(r'--model_config_file=(\S+)', cmd).group(1)
      server = FakeTFServing(port=port, model_config_file=config_file)
      thread = threading.Thread(target=server.start, daemon=True)
      thread.start()
      assert server.wait_until_started()
      cls.servers.append(server)
      cls.threads.append(thread)

  @classmethod
  def tearDownClass(cls):
    for server, thread in zip(cls.servers, cls.threads):
      server.stop()
      thread.join()

  def setUp(self):
    self.zk = self.make_zk()
    self.zk.start()
    self.mgr = ReplicaManager(self.zk, self.conf)
    self.prefix = self.conf.path_prefix
    self.mgr.start()

  def tearDown(self):
    self.mgr.stop()
    self.zk.stop()

  def own_paths(self):
    paths = [f'{self.prefix}/ps:{t}/{self.conf.replica_id}' for t in OWN_PS_TASKS]
    entries = self.zk.get_children(f'{self.prefix}/entry:0')
    self.assertEqual(len(entries), 1)
    return paths + [f'{self.prefix}/entry:0/{entries[0]}']

  def stats(self):
    return [ReplicaMeta.deserialize(self.zk.get(p)[0]).stat for p in self.own_paths()]

  def test_registration_and_status_updates(self):
    # v1 agents take their replica id from the pod name; none here, so the entry node is
    # sequential and its number becomes the replica id.
    self.assertEqual(len(self.own_paths()), len(OWN_PS_TASKS) + 1)
    meta = ReplicaMeta.deserialize(self.zk.get(self.own_paths()[0])[0])
    self.assertEqual(meta.address, f'127.0.0.1:{self.conf.tfs_ps_port}')
    self.assertEqual(meta.archon_address, f'127.0.0.1:{self.conf.tfs_ps_archon_port}')
    wait_until(lambda: self.stats() == [ModelState.AVAILABLE] * (len(OWN_PS_TASKS) + 1),
               what='all own replicas AVAILABLE')

  def test_watcher_maps_and_ps_set(self):
    wait_until(lambda: self.stats() == [ModelState.AVAILABLE] * (len(OWN_PS_TASKS) + 1))
    self.assertFalse(self.mgr.is_ps_set_started())
    register(self.zk, self.conf, self.prefix)
    wait_until(self.mgr.is_ps_set_started, what='ps set started')
    watcher = self.mgr.watcher
    all_ps = wait_until(lambda: (lambda m: m if len(m) == NUM_PS else None)(
        watcher.get_all_replicas(TFSServerType.PS, self.conf.idc, self.conf.cluster)))
    location = 'lf:default/' if self.dc_aware else ''
    self.assertEqual(set(all_ps), {f'{location}ps:{t}' for t in range(NUM_PS)})
    own = f'127.0.0.1:{self.conf.tfs_ps_port}'
    self.assertEqual(all_ps[f'{location}ps:{OWN_PS_TASKS[0]}'], [own])
    self.assertEqual(len(all_ps[f'{location}ps:0']), 3)
    self.assertEqual(self.mgr.get_replicas(TFSServerType.PS, OWN_PS_TASKS[1]), [own])
    entry = watcher.get_all_replicas(TFSServerType.ENTRY, self.conf.idc, self.conf.cluster)
    self.assertEqual(list(entry.values()), [[f'127.0.0.1:{self.conf.tfs_entry_port}']])
    if self.dc_aware:  # another data center's replicas are not ours
      self.assertEqual(watcher.get_all_replicas(TFSServerType.PS, 'hl', 'default'), {})
    # Parameter-sync view: ps_<i> -> {address: TargetExtraInfo(idc, cluster, replica_id)}.
    sync = watcher.to_sync_wrapper()
    sub_graph, targets = sync.get_sync_targets(f'ps_{OWN_PS_TASKS[0]}')
    self.assertEqual(sub_graph, f'ps_{OWN_PS_TASKS[0]}')
    self.assertEqual(list(targets), [own])
    self.assertEqual(targets[own].idc, 'lf' if self.dc_aware else '')
    self.assertEqual(targets[own].cluster, 'default' if self.dc_aware else '')
    self.assertEqual(targets[own].replica_id, self.conf.replica_id)
    self.assertEqual({info.replica_id for info in sync.get_sync_targets('ps_0')[1].values()},
                     {0, 1, 2})
    with self.assertRaisesRegex(ValueError, 'ps_<i>'):
      sync.get_sync_targets('entry_0')
    # A replica that stops being AVAILABLE is no longer handed out.
    path = f'{self.prefix}/ps:0/1'
    meta = ReplicaMeta.deserialize(self.zk.get(path)[0])
    meta.stat = ModelState.UNLOADING
    self.zk.set(path, meta.serialize())
    wait_until(lambda: len(self.mgr.get_replicas(TFSServerType.PS, 0)) == 2)
    self.assertFalse(meta.address in self.mgr.get_replicas(TFSServerType.PS, 0))

  def test_reregistration_after_lost_session(self):
    wait_until(lambda: self.stats() == [ModelState.AVAILABLE] * (len(OWN_PS_TASKS) + 1))
    own = self.own_paths()
    self.expire_session(self.zk)
    start = time.time()
    wait_until(lambda: all(self.zk.exists(p) for p in own), timeout=20,
               what='re-registration')
    self.assertLess(time.time() - start, 15)
    wait_until(lambda: self.stats() == [ModelState.AVAILABLE] * (len(OWN_PS_TASKS) + 1),
               what='AVAILABLE again')


class ReplicaMgrNotDcAwareTest(ReplicaMgrTest):
  dc_aware = False


class ReplicaMgrRealZKTest(ReplicaMgrTest):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.zk_server = ZooKeeperTestServer()
    cls.zk_server.start()

  @classmethod
  def tearDownClass(cls):
    cls.zk_server.close()
    super().tearDownClass()

  @classmethod
  def make_zk(cls):
    return KazooClient(hosts=cls.zk_server.hosts)

  @classmethod
  def expire_session(cls, zk):
    cls.zk_server.expire_session(zk)

  def tearDown(self):
    super().tearDown()
    # Each test starts from an empty tree.
    zk = KazooClient(hosts=self.zk_server.hosts)
    zk.start()
    zk.delete('/bzid', recursive=True)
    zk.stop()

  def test_zookeeper_restart(self):
    wait_until(lambda: self.stats() == [ModelState.AVAILABLE] * (len(OWN_PS_TASKS) + 1))
    own = self.own_paths()
    self.zk_server.restart()
    wait_until(lambda: self.zk.connected and all(self.zk.exists(p) for p in own), timeout=15,
               what='replicas registered after the ZooKeeper restart')


if __name__ == '__main__':
  unittest.main()
