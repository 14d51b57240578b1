"""ZKMirror against the in-memory FakeKazooClient and against a real ZooKeeper server.

Both run the same scenarios; real watches fire on kazoo's thread, so assertions wait.
"""

import os
import queue
import random

from absl.testing import absltest
from kazoo.client import KazooClient

from monolith.agent_service import constants
from monolith.agent_service.data_def import (Event, EventType, ModelMeta, ModelState,
                                             PublishMeta, PublishType, ReplicaMeta, ResourceSpec)
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.utils import get_local_ip
from monolith.agent_service.zk_mirror import ZKMirror
from monolith.agent_service.zk_test_server import RealZooKeeperMixin, wait_for

MODEL_NAME = 'iptv_ctr'
SHARD_ID = 2
REPLICA_ID = 2
NUM_SHARD = 10


class _ZKMirrorTests(object):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    os.environ['MY_HOST_IP'] = '127.0.0.1'
    os.environ[constants.HOST_SHARD_ENV] = str(NUM_SHARD)
    os.environ['SHARD_ID'] = str(SHARD_ID)
    os.environ['REPLICA_ID'] = str(REPLICA_ID)
    cls.local_ip = get_local_ip()

  def setUp(self):
    super().setUp()
    self.queue = queue.Queue()
    self.mirror = ZKMirror(zk=self.make_client(), bzid='bzid', queue=self.queue,
                           tce_shard_id=SHARD_ID, num_tce_shard=NUM_SHARD)
    self.mirror.start()

  def tearDown(self):
    self.mirror.stop()
    super().tearDown()

  def next_event(self) -> Event:
    return self.queue.get(timeout=20)

  def test_crud(self):
    mirror = self.mirror
    mirror.ensure_path('/model/crud')
    self.assertTrue(mirror.exists('/model/crud'))
    mirror.create('/model/crud/data', b'test', makepath=True)
    self.assertEqual(mirror._zk.get('/model/crud/data')[0], b'test')
    mirror.create('/model/crud/data', b'again')  # exists: overwritten, not an error
    self.assertEqual(mirror._zk.get('/model/crud/data')[0], b'again')
    mirror.set('/model/crud/data', b'test2')
    self.assertEqual(mirror._zk.get('/model/crud/data')[0], b'test2')
    mirror.set('/model/crud/new/leaf', b'made')  # missing: created with its parents
    self.assertEqual(mirror._zk.get('/model/crud/new/leaf')[0], b'made')
    mirror.delete('/model/crud', recursive=False)  # not empty: deleted recursively
    self.assertFalse(mirror.exists('/model/crud'))
    mirror.delete('/model/crud')  # gone: logged, no error
    self.assertEqual(mirror.num_tce_shard, NUM_SHARD)
    self.assertEqual(mirror.tce_replica_id, REPLICA_ID)
    self.assertEqual(mirror.tce_shard_id, SHARD_ID)

  def test_zk_mirror(self):
    mirror = self.mirror
    # step 0: a load request arrives at the portal
    mirror.watch_portal()
    mirror.watch_resource()
    mm = ModelMeta(model_name=MODEL_NAME, model_dir='/tmp/{}/saved_models'.format(MODEL_NAME),
                   num_shard=5)
    portal_path = mm.get_path(mirror.portal_base_path)
    mirror.create(portal_path, mm.serialize(), makepath=True)

    # step 1: the scheduler sees it
    event = self.next_event()
    self.assertEqual(event.etype, EventType.PORTAL)
    self.assertEqual(event.path, portal_path)
    got = ModelMeta.deserialize(event.data)
    self.assertEqual(got.model_name, MODEL_NAME)
    self.assertEqual(got.num_shard, 5)
    self.assertEqual(got.action, 'CREATED')

    # ... and publishes: shard i serves ps_k (k % 5 == i) plus entry, 3 replicas each
    version, num_ps, num_replicas = 123456, 10, 3
    other_shards = [s for s in range(NUM_SHARD) if s != SHARD_ID]
    random.Random(0).shuffle(other_shards)
    pms = []
    for i in range(mm.num_shard):
      sub_models = {
          'ps_{}'.format(k): '{}/ps_{}/{}'.format(mm.model_dir, k, version)
          for k in range(num_ps) if k % mm.num_shard == i
      }
      sub_models['entry'] = '{}/entry/{}'.format(mm.model_dir, version)
      shard_id = SHARD_ID if i == 0 else other_shards.pop()
      for replica_id in range(num_replicas):
        pms.append(PublishMeta(shard_id=shard_id, replica_id=replica_id, model_name=MODEL_NAME,
                               num_ps=num_ps, sub_models=sub_models))
    for pm in pms:
      pm.total_publish_num = len(pms)
    mirror.publish_loadding(pms)

    # step 2: this replica's share
    event = self.next_event()
    self.assertEqual(event.etype, EventType.PUBLISH)
    self.assertTrue(wait_for(lambda: MODEL_NAME in mirror.expected_loading()))
    expected = mirror.expected_loading()[MODEL_NAME]
    self.assertEqual(expected.shard_id, SHARD_ID)
    self.assertEqual(expected.replica_id, REPLICA_ID)
    self.assertEqual(sorted(expected.sub_models), ['entry', 'ps_0', 'ps_5'])
    self.assertEqual(len(mirror.get_published_path(MODEL_NAME)), len(pms))

    # step 3: it serves them
    replicas = []
    for sub_model in expected.sub_models:
      server_type, _, task = sub_model.partition('_')
      replicas.append(ReplicaMeta(address='{}:8080'.format(self.local_ip),
                                  model_name=MODEL_NAME, server_type=server_type,
                                  task=int(task or 0), replica=REPLICA_ID,
                                  stat=ModelState.AVAILABLE))
    mirror.update_service(replicas)

    # step 4: and every agent can find them
    def replica(server_type, task):
      return ReplicaMeta(address='{}:8080'.format(self.local_ip), model_name=MODEL_NAME,
                         server_type=server_type, task=task, replica=REPLICA_ID, stat=30)

    entry_replica, ps0_replica, ps5_replica = replica('entry', 0), replica('ps', 0), replica('ps', 5)
    self.assertTrue(wait_for(lambda: len(mirror.local_replica_paths) == 3))
    self.assertEqual(mirror.get_all_replicas('ps'), {
        '{}:ps:0'.format(MODEL_NAME): [ps0_replica],
        '{}:ps:5'.format(MODEL_NAME): [ps5_replica]
    })
    self.assertEqual(mirror.get_model_replicas(MODEL_NAME, 'entry'),
                     {'{}:entry:0'.format(MODEL_NAME): [entry_replica]})
    self.assertEqual(mirror.get_task_replicas(MODEL_NAME, 'ps', 0), [ps0_replica])
    self.assertEqual(mirror.get_replica(MODEL_NAME, 'ps', 5, REPLICA_ID), ps5_replica)
    self.assertIsNone(mirror.get_replica(MODEL_NAME, 'ps', 5, REPLICA_ID + 1))
    self.assertEqual(mirror.local_replica_paths, {
        '/bzid/service/{}/entry:0/{}'.format(MODEL_NAME, REPLICA_ID),
        '/bzid/service/{}/ps:0/{}'.format(MODEL_NAME, REPLICA_ID),
        '/bzid/service/{}/ps:5/{}'.format(MODEL_NAME, REPLICA_ID),
    })

    # a replica that is not AVAILABLE is not offered; one that goes away is withdrawn
    mirror.update_service([entry_replica, ps0_replica])
    self.assertTrue(wait_for(lambda: len(mirror.local_replica_paths) == 2))
    self.assertIsNone(mirror.get_replica(MODEL_NAME, 'ps', 5, REPLICA_ID))
    loading = ReplicaMeta(address='{}:8080'.format(self.local_ip), model_name=MODEL_NAME,
                          server_type='ps', task=0, replica=REPLICA_ID,
                          stat=ModelState.LOADING)
    mirror.update_service([entry_replica, loading])
    self.assertTrue(wait_for(lambda: mirror.get_task_replicas(MODEL_NAME, 'ps', 0) == []))

    # step 5/6: resources
    resource = ResourceSpec(address='{}:1234'.format(self.local_ip), shard_id=SHARD_ID,
                            replica_id=REPLICA_ID, memory=12345, cpu=5.6, network=3.2,
                            work_load=0.7)
    mirror.report_resource(resource)
    self.assertTrue(wait_for(lambda: mirror.resources == [resource]), mirror.resources)

    # unload: the portal node goes, the scheduler hears it and the publish nodes are withdrawn
    mirror.delete(portal_path)
    event = self.next_event()
    while event.etype != EventType.PORTAL:
      event = self.next_event()
    self.assertEqual(ModelMeta.deserialize(event.data).action, 'DELETED')
    self.assertTrue(wait_for(lambda: mirror.expected_loading() == {}))
    self.assertTrue(wait_for(lambda: mirror.get_published_path(MODEL_NAME) == []))

  def test_expected_loading_fallbacks(self):
    mirror = self.mirror
    subs = {'entry': '/m/entry/1', 'ps_0': '/m/ps_0/1'}
    # the same shard, another replica: take it over under our replica id
    same_shard = PublishMeta(shard_id=SHARD_ID, replica_id=0, model_name='a', num_ps=1,
                             sub_models=dict(subs))
    # a shard nobody here serves: entry only, under our ids
    other = PublishMeta(shard_id=SHARD_ID + 1, replica_id=0, model_name='b', num_ps=1,
                        sub_models=dict(subs))
    # unload requests and incomplete publications are ignored
    unload = PublishMeta(shard_id=SHARD_ID, replica_id=REPLICA_ID, model_name='c', num_ps=1,
                         sub_models=dict(subs), ptype=PublishType.UNLOAD)
    partial = PublishMeta(shard_id=SHARD_ID, replica_id=REPLICA_ID, model_name='d', num_ps=1,
                          sub_models=dict(subs), total_publish_num=2)
    mirror.publish_loadding([same_shard, other, unload, partial])
    self.assertTrue(wait_for(lambda: len(mirror.get_children(mirror.publish_base_path)) == 4))
    expected = mirror.expected_loading()
    self.assertEqual(sorted(expected), ['a', 'b'])
    self.assertEqual((expected['a'].shard_id, expected['a'].replica_id), (SHARD_ID, REPLICA_ID))
    self.assertEqual(expected['a'].sub_models, subs)
    self.assertEqual((expected['b'].shard_id, expected['b'].replica_id), (SHARD_ID, REPLICA_ID))
    self.assertEqual(expected['b'].sub_models, {'entry': '/m/entry/1'})

  def test_invalid_json_is_skipped(self):
    mirror = self.mirror
    mirror.watch_resource()
    good = ResourceSpec(address='h:1', shard_id=0, replica_id=0, memory=1)
    mirror.report_resource(good)
    mirror.create(mirror.resource_base_path + '/9:9', b'{broken', makepath=True)
    mirror.create('/bzid/service/m/ps:0/1', b'not json', makepath=True)
    self.assertTrue(wait_for(lambda: mirror.get(mirror.resource_base_path + '/9:9') is not None))
    with self.assertLogs(level='ERROR') as logs:
      self.assertEqual(mirror.resources, [good])
    self.assertTrue(any('9:9' in line for line in logs.output), logs.output)
    self.assertTrue(wait_for(lambda: mirror.get('/bzid/service/m/ps:0/1') is not None))
    self.assertEqual(mirror.get_all_replicas('ps'), {})
    # the watches are alive: a later good node is still mirrored
    good2 = ResourceSpec(address='h:2', shard_id=1, replica_id=0, memory=2)
    mirror.report_resource(good2)
    self.assertTrue(wait_for(lambda: len(mirror.get_children(mirror.resource_base_path)) == 3))
    self.assertEqual(mirror._zk.get(mirror.resource_base_path + '/9:9')[0], b'{broken')

  def test_portal_cleans_orphan_publish(self):
    mirror = self.mirror
    orphan = PublishMeta(shard_id=0, replica_id=0, model_name='gone', num_ps=1, sub_models={})
    kept = PublishMeta(shard_id=0, replica_id=0, model_name='kept', num_ps=1, sub_models={})
    mirror.publish_loadding([orphan, kept])
    mirror.create(ModelMeta(model_name='kept').get_path(mirror.portal_base_path),
                  ModelMeta(model_name='kept').serialize(), makepath=True)
    mirror.watch_portal()
    self.assertFalse(mirror.exists(orphan.get_path(mirror.publish_base_path)))
    self.assertTrue(mirror.exists(kept.get_path(mirror.publish_base_path)))


  def test_election(self):
    calls = []
    self.mirror.election(lambda sched: calls.append(sched), 'the scheduler', identifier='me')
    self.assertEqual(calls, ['the scheduler'])
    entry = ZKMirror(zk=self.mirror._zk, bzid='bzid', deploy_type='entry')
    entry.election(lambda sched: calls.append(sched), 'never')  # entry servers never lead
    self.assertEqual(calls, ['the scheduler'])

  def test_session_expiry(self):
    mirror = self.mirror
    mirror.watch_resource()
    rm = ReplicaMeta(address='{}:8080'.format(self.local_ip), model_name=MODEL_NAME,
                     server_type='ps', task=0, replica=REPLICA_ID, stat=ModelState.AVAILABLE)
    mirror.update_service([rm])
    self.assertTrue(wait_for(lambda: mirror.get_task_replicas(MODEL_NAME, 'ps', 0) == [rm]))

    self.expire_session()
    # the ephemeral service node died with the session and the mirror noticed ...
    self.assertTrue(wait_for(lambda: mirror.local_replica_paths == set()))
    # ... so the agent's next periodic update re-creates it, and the watches still work
    mirror.update_service([rm])
    self.assertTrue(wait_for(lambda: mirror.get_task_replicas(MODEL_NAME, 'ps', 0) == [rm]))
    resource = ResourceSpec(address='h:1', shard_id=SHARD_ID, replica_id=REPLICA_ID, memory=1)
    mirror.report_resource(resource)
    self.assertTrue(wait_for(lambda: mirror.resources == [resource]))


class FakeZKMirrorTest(_ZKMirrorTests, absltest.TestCase):

  def make_client(self):
    return FakeKazooClient()

  def expire_session(self):
    self.mirror._zk.expire_session()


class RealZKMirrorTest(RealZooKeeperMixin, _ZKMirrorTests, absltest.TestCase):

  ZK_ROOTS = ('/bzid', '/model')

  def make_client(self):
    return KazooClient(hosts=self.server.hosts)

  def expire_session(self):
    self.server.expire_session(self.mirror._zk)


if __name__ == '__main__':
  absltest.main()
