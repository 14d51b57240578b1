"""AgentService over loopback gRPC, backed by a ReplicaWatcher on the fake and a real ZooKeeper,
and by an AgentDataProvider (agent v3)."""

import os
import time
import unittest

import grpc
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError

from monolith.agent_service.agent_service import AgentDataProvider, AgentService
from monolith.agent_service.agent_service_pb2 import GetReplicasRequest, GetResourceRequest, \
  HeartBeatRequest, ServerType
from monolith.agent_service.agent_service_pb2_grpc import AgentServiceStub
from monolith.agent_service.data_def import ModelState, ReplicaMeta
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.replica_manager import ReplicaWatcher
from monolith.agent_service.svr_client import SvrClient
from monolith.agent_service.utils import AgentConfig, find_free_port
from monolith.agent_service.zk_mirror import ZKMirror
from monolith.agent_service.zk_test_server import ZooKeeperTestServer

MODEL_NAME = 'iptv_ex_model'
BASE_PATH = f'/iptv/{MODEL_NAME}/saved_models'
NUM_PS_REPLICAS = 2
NUM_PS = 20


def register(zk, agent_conf):
  """Every ps task with NUM_PS_REPLICAS AVAILABLE replicas, plus two entry replicas; one
  extra ps replica is LOADING and must not be served."""
  path_prefix = agent_conf.path_prefix
  expected = {}

  def create(path, meta):
    try:
      zk.retry(zk.create, path, meta.serialize(), ephemeral=True, makepath=True)
    except NodeExistsError:
      zk.retry(zk.set, path, meta.serialize())

  for task_id in range(NUM_PS):
    for replica_id in range(NUM_PS_REPLICAS):
      meta = ReplicaMeta(address=f'192.168.1.{task_id}:{find_free_port()}',
                         stat=ModelState.AVAILABLE)
      create(f'{path_prefix}/ps:{task_id}/{replica_id}', meta)
      expected.setdefault(f'ps:{task_id}', []).append(meta.address)
  create(f'{path_prefix}/ps:0/{NUM_PS_REPLICAS}',
         ReplicaMeta(address='192.168.2.1:1', stat=ModelState.LOADING))
  for replica_id in range(2):
    meta = ReplicaMeta(address=f'192.168.1.{replica_id}:{find_free_port()}',
                       stat=ModelState.AVAILABLE)
    create(f'{path_prefix}/entry:0/{replica_id}', meta)
    expected.setdefault('entry:0', []).append(meta.address)
  return expected


def serve(test: unittest.TestCase, source, conf: AgentConfig) -> AgentServiceStub:
  """Starts an AgentService over `source` for one test and returns a stub talking to it; the
  channel and then the server go away after the test."""
  service = AgentService(source, conf)
  service.start()
  test.addCleanup(service.stop, 0)
  channel = grpc.insecure_channel(f'localhost:{service.port}')
  test.addCleanup(channel.close)
  return AgentServiceStub(channel)


class AgentServiceTest(unittest.TestCase):
  """Upstream's test on the in-memory fake ZooKeeper."""

  @classmethod
  def make_zk(cls):
    return FakeKazooClient()

  @classmethod
  def setUpClass(cls):
    os.environ['TCE_INTERNAL_IDC'] = 'lf'
    os.environ['TCE_LOGICAL_CLUSTER'] = 'default'
    os.environ['MY_HOST_IP'] = '127.0.0.1'
    cls.zk = cls.make_zk()
    cls.zk.start()
    cls.agent_conf = AgentConfig(bzid='test_model', base_name=MODEL_NAME, deploy_type='ps',
                                 base_path=BASE_PATH, num_ps=NUM_PS, dc_aware=True,
                                 platform_config_file='/tmp/agent_service_test/platform.cfg')
    cls.watcher = ReplicaWatcher(cls.zk, cls.agent_conf)
    cls.expected = register(cls.zk, cls.agent_conf)
    cls.watcher.watch_data()
    cls.agent = AgentService(cls.watcher, port=cls.agent_conf.agent_port)
    cls.agent.start()
    cls.client = SvrClient(cls.agent_conf)

  @classmethod
  def tearDownClass(cls):
    cls.agent.stop(0)
    cls.watcher.stop()
    cls.zk.stop()

  def wait_for_watcher(self):
    deadline = time.time() + 15
    while len(self.client.heart_beat(server_type=ServerType.PS).addresses) < NUM_PS:
      if time.time() > deadline:
        self.fail('the watcher did not see every ps task')
      time.sleep(0.1)

  def test_heart_beat(self):
    self.wait_for_watcher()
    resp = self.client.heart_beat(server_type=ServerType.PS)
    self.assertEqual(len(resp.addresses), NUM_PS)
    for task_id in range(NUM_PS):
      key = f'ps:{task_id}'
      self.assertCountEqual(resp.addresses[key].address, self.expected[key])
    entry = self.client.heart_beat(server_type=ServerType.ENTRY)
    self.assertEqual(list(entry.addresses), ['entry:0'])
    self.assertCountEqual(entry.addresses['entry:0'].address, self.expected['entry:0'])

  def test_get_replicas(self):
    self.wait_for_watcher()
    resp = self.client.get_replicas(server_type=ServerType.PS, task=NUM_PS_REPLICAS - 1)
    self.assertEqual(len(resp.address_list.address), NUM_PS_REPLICAS)
    self.assertCountEqual(resp.address_list.address, self.expected[f'ps:{NUM_PS_REPLICAS - 1}'])
    # The LOADING replica of ps:0 is not handed out.
    resp = self.client.get_replicas(server_type=ServerType.PS, task=0)
    self.assertCountEqual(resp.address_list.address, self.expected['ps:0'])
    self.assertEqual(
        list(self.client.get_replicas(server_type=ServerType.PS, task=99).address_list.address),
        [])

  def test_replica_goes_away(self):
    self.wait_for_watcher()
    path = f'{self.agent_conf.path_prefix}/ps:5/1'
    self.zk.delete(path)
    try:
      deadline = time.time() + 15
      while len(self.client.get_replicas(ServerType.PS, 5).address_list.address) != 1:
        self.assertLess(time.time(), deadline, 'the deleted replica is still served')
        time.sleep(0.1)
    finally:
      self.zk.create(path,
                     ReplicaMeta(address=self.expected['ps:5'][1],
                                 stat=ModelState.AVAILABLE).serialize(),
                     ephemeral=True, makepath=True)

  def test_get_resource_is_empty_for_v1(self):
    self.assertEqual(self.client.stub.GetResource(GetResourceRequest()).address, '')


class AgentServiceRealZKTest(AgentServiceTest):
  """The same on a real ZooKeeper server."""

  @classmethod
  def make_zk(cls):
    cls.zk_server = ZooKeeperTestServer()
    cls.zk_server.start()
    return KazooClient(hosts=cls.zk_server.hosts)

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    cls.zk_server.close()


class AgentServiceV2Test(unittest.TestCase):
  """agent_version 2: replicas come from a ZKMirror of /bzid/service."""

  def setUp(self):
    self.conf = AgentConfig(bzid='test_model', base_name=MODEL_NAME, deploy_type='mixed',
                            agent_version=2, agent_port=find_free_port(),
                            platform_config_file='/tmp/agent_service_test/platform.cfg')
    self.mirror = ZKMirror(FakeKazooClient(), 'test_model')
    self.mirror.start(is_client=True)
    self.addCleanup(self.mirror.stop)
    self.replicas = [
        ReplicaMeta(address=f'10.0.0.{r}:{9000 + t}', model_name=MODEL_NAME, server_type='ps',
                    task=t, replica=r, stat=ModelState.AVAILABLE) for t in range(2)
        for r in range(2)
    ]
    self.replicas.append(
        ReplicaMeta(address='10.0.0.9:9000', model_name=MODEL_NAME, server_type='ps', task=0,
                    replica=9, stat=ModelState.LOADING))
    for rm in self.replicas:
      self.mirror.create(rm.get_path('test_model'), rm.serialize(), ephemeral=True,
                         makepath=True)
    self.stub = serve(self, self.mirror, self.conf)

  def test_heart_beat_and_get_replicas(self):
    deadline = time.time() + 10
    while len(self.stub.HeartBeat(HeartBeatRequest(server_type=ServerType.PS)).addresses) < 2:
      self.assertLess(time.time(), deadline, 'the mirror did not see the replicas')
      time.sleep(0.05)
    resp = self.stub.HeartBeat(HeartBeatRequest(server_type=ServerType.PS))
    self.assertEqual({k: sorted(v.address) for k, v in resp.addresses.items()}, {
        f'{MODEL_NAME}:ps:0': ['10.0.0.0:9000', '10.0.0.1:9000'],
        f'{MODEL_NAME}:ps:1': ['10.0.0.0:9001', '10.0.0.1:9001'],
    })
    resp = self.stub.GetReplicas(
        GetReplicasRequest(server_type=ServerType.PS, task=1, model_name=MODEL_NAME))
    self.assertEqual(sorted(resp.address_list.address), ['10.0.0.0:9001', '10.0.0.1:9001'])


class AgentServiceV3Test(unittest.TestCase):

  def setUp(self):
    self.conf = AgentConfig(bzid='test_model', base_name=MODEL_NAME, deploy_type='unified',
                            agent_version=3, agent_port=find_free_port(),
                            platform_config_file='/tmp/agent_service_test/platform.cfg')
    self.addrs = {'m1:ps_0': ['10.0.0.1:1'], 'm1:entry': ['10.0.0.1:2', '10.0.0.2:2']}
    self.stub = serve(self, AgentDataProvider(lambda: self.addrs), self.conf)

  def test_heart_beat_serves_the_provider_map(self):
    resp = self.stub.HeartBeat(HeartBeatRequest(server_type=ServerType.ENTRY))
    self.assertEqual({k: list(v.address) for k, v in resp.addresses.items()}, self.addrs)
    self.addrs = {}
    self.assertEqual(len(self.stub.HeartBeat(HeartBeatRequest()).addresses), 0)

  def test_get_replicas_is_unimplemented(self):
    with self.assertRaises(grpc.RpcError) as ctx:
      self.stub.GetReplicas(GetReplicasRequest(server_type=ServerType.PS, task=0))
    self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

  def test_get_resource(self):
    resp = self.stub.GetResource(GetResourceRequest())
    self.assertTrue(resp.address.endswith(f':{self.conf.agent_port}'))
    self.assertGreater(resp.memory, 0)

  def test_unknown_source_is_rejected(self):
    with self.assertRaises(TypeError):
      AgentService(object(), self.conf)


if __name__ == '__main__':
  unittest.main()
