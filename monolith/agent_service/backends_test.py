"""ZKBackend against the in-memory FakeKazooClient and against a real ZooKeeper server.

Every scenario runs on both clients with the same assertions (real watches fire on kazoo's
thread, so assertions wait for the expected state).
"""

import json
import os
import threading

from absl.testing import absltest
from kazoo.exceptions import KazooException

from monolith.agent_service.backends import (Container, ContainerServiceInfo, SavedModel,
                                             SavedModelDeployConfig, ZKBackend)
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.zk_test_server import RealZooKeeperMixin, wait_for

BZID = 'gip'
MODEL = 'test_ffm_model'
LAYOUT = '/gip/layouts/test_layout/mixed'


class _ZKBackendTests(object):
  """Mixed into a TestCase together with a client fixture (make_backend/expire_session)."""

  def setUp(self):
    super().setUp()
    self.container = Container('default', 'asdf')
    self.service_info = ContainerServiceInfo(grpc='localhost:8888', http='localhost:8889',
                                             archon='localhost:8890', agent='localhost:8891',
                                             idc='LF')
    self.bd = self.make_backend()
    self.bd.start()
    self._records_lock = threading.Lock()
    self.layout_records = []
    self.bd.register_layout_callback(LAYOUT, self._on_layout)
    self.bd.report_service_info(self.container, self.service_info)

  def tearDown(self):
    self.bd.stop()
    super().tearDown()

  def _on_layout(self, saved_models):
    with self._records_lock:
      self.layout_records.append(list(saved_models))

  def last_layout(self):
    with self._records_lock:
      return self.layout_records[-1] if self.layout_records else None

  def deploy_config(self, sub_graph):
    return SavedModelDeployConfig(
        model_base_path=os.path.join(os.environ.get('TEST_TMPDIR', '/tmp'), MODEL, sub_graph),
        version_policy='latest' if sub_graph == 'entry' else 'latest_once')

  def declare(self, sub_graphs, layout=LAYOUT):
    expected = []
    for sub_graph in sub_graphs:
      saved_model = SavedModel(MODEL, sub_graph)
      self.bd.decl_saved_model(saved_model, self.deploy_config(sub_graph))
      self.bd.add_to_layout(layout, saved_model)
      expected.append((saved_model, self.deploy_config(sub_graph)))
    return expected

  def exists(self, path):
    try:
      return self.bd._zk.exists(path) is not None
    except KazooException:  # the session may be expiring under us (fault tests)
      return False

  # ---- ported tests ----
  def test_register_service(self):
    self.assertEqual(self.bd.get_service_info(self.container), self.service_info)
    self.assertIsNone(self.bd.get_service_info(Container('default', 'nobody')))

  def test_layout_callback(self):
    expected = self.declare(['entry', 'ps_0', 'ps_1', 'ps_2'])
    self.assertTrue(wait_for(lambda: self.last_layout() == expected), self.last_layout())
    self.bd.remove_from_layout(LAYOUT, SavedModel(MODEL, 'entry'))
    self.assertTrue(wait_for(lambda: self.last_layout() == expected[1:]), self.last_layout())
    self.bd.remove_from_layout(LAYOUT, SavedModel(MODEL, 'entry'))  # already gone: no error

  def test_sync_available_models(self):
    saved_models = {SavedModel(MODEL, s) for s in ('entry', 'ps_0', 'ps_1')}
    self.bd.sync_available_saved_models(self.container, saved_models)
    for sub_graph in ('entry', 'ps_0', 'ps_1'):
      self.assertTrue(self.exists('/gip/binding/{}/{}:{}'.format(MODEL, sub_graph,
                                                                 self.container)))
    self.bd.sync_available_saved_models(self.container, {SavedModel(MODEL, 'entry')})
    self.assertFalse(self.exists('/gip/binding/{}/ps_0:{}'.format(MODEL, self.container)))
    self.assertTrue(self.exists('/gip/binding/{}/entry:{}'.format(MODEL, self.container)))
    stat = self.bd._zk.exists('/gip/binding/{}/entry:{}'.format(MODEL, self.container))
    self.assertNotEqual(stat.ephemeralOwner, 0)

  def test_service_map(self):
    self.declare(['entry', 'ps_0'])
    self.assertTrue(wait_for(lambda: self.last_layout() is not None and
                             len(self.last_layout()) == 2))
    self.bd.sync_available_saved_models(self.container,
                                        {SavedModel(MODEL, 'entry'), SavedModel(MODEL, 'ps_0')})
    expected = {MODEL: {'ps_0': [self.service_info], 'entry': [self.service_info]}}
    self.assertTrue(wait_for(lambda: self.bd.get_service_map() == expected),
                    self.bd.get_service_map())

  def test_sync_backend(self):
    self.bd.subscribe_model(MODEL)
    self.bd.sync_available_saved_models(self.container,
                                        {SavedModel(MODEL, s) for s in ('ps_0', 'ps_1', 'ps_2')})
    expected = ('{}:ps_1'.format(MODEL), [self.service_info.grpc])
    self.assertTrue(wait_for(lambda: self.bd.get_sync_targets('ps_1') == expected),
                    self.bd.get_sync_targets('ps_1'))
    self.assertEqual(self.bd.get_sync_targets('ps_9'), ('{}:ps_9'.format(MODEL), []))

  def test_list_and_bzid_info(self):
    self.declare(['entry', 'ps_0'])
    self.bd.sync_available_saved_models(self.container, {SavedModel(MODEL, 'entry')})
    self.assertEqual(self.bd.list_saved_models(MODEL),
                     [SavedModel(MODEL, 'entry'), SavedModel(MODEL, 'ps_0')])
    self.assertEqual(self.bd.list_saved_models('no_such_model'), [])
    info = self.bd.bzid_info()
    json.dumps(info)  # JSON-able
    self.assertEqual(info['layout_info'], {'test_layout': [], 'test_layout/mixed': [
        '{}:entry'.format(MODEL), '{}:ps_0'.format(MODEL)]})
    model = info['model_info'][MODEL]
    self.assertEqual(model['sub_graphs_total'], 2)
    self.assertEqual(model['sub_graphs_available'], 1)
    self.assertEqual(model['sub_graphs']['entry']['bindings'], [str(self.container)])
    self.assertEqual(model['sub_graphs']['ps_0']['deploy_config']['version_policy'],
                     'latest_once')
    container = info['container_info'][str(self.container)]
    self.assertEqual(container['service_info']['grpc'], self.service_info.grpc)
    self.assertEqual(container['saved_models'], ['{}:entry'.format(MODEL)])

  def test_serialization(self):
    self.assertEqual(
        self.deploy_config('entry').serialize(),
        json.dumps({'model_base_path': self.deploy_config('entry').model_base_path,
                    'version_policy': 'latest'}).encode())
    self.assertEqual(str(SavedModel(MODEL, 'ps_0')), 'test_ffm_model:ps_0')
    self.assertEqual(str(self.container), 'default:asdf')

  # ---- bad input ----
  def test_layout_child_without_colon(self):
    expected = self.declare(['entry'])
    self.bd._zk.ensure_path(LAYOUT + '/garbage')
    self.assertTrue(wait_for(lambda: self.last_layout() == expected and
                             self.exists(LAYOUT + '/garbage')))
    with self.assertLogs(level='ERROR') as logs:
      self.bd._zk.ensure_path(LAYOUT + '/more_garbage')
      self.assertTrue(wait_for(lambda: any("'more_garbage'" in l for l in logs.output)))
    self.assertEqual(self.last_layout(), expected)

  def test_invalid_json_deploy_config(self):
    expected = self.declare(['entry'])
    bad_path = '/gip/saved_models/{}/ps_0'.format(MODEL)
    self.bd._zk.create(bad_path, b'{not json', makepath=True)
    self.bd.add_to_layout(LAYOUT, SavedModel(MODEL, 'ps_0'))
    self.bd.add_to_layout(LAYOUT, SavedModel(MODEL, 'undeclared'))
    # the broken and the undeclared entries are skipped; the valid one is delivered
    self.assertTrue(wait_for(lambda: self.last_layout() == expected and
                             len(self.layout_records) >= 3), self.layout_records)
    self.assertEqual(self.bd._zk.get(bad_path)[0], b'{not json')  # nothing deleted
    info = self.bd.bzid_info()
    self.assertIn('error', info['model_info'][MODEL]['sub_graphs']['ps_0']['deploy_config'])

  def test_invalid_service_info(self):
    self.bd._zk.create('/gip/container_service/bad:one', b'\xff garbage', makepath=True)
    self.assertIsNone(self.bd.get_service_info(Container('bad', 'one')))
    self.assertIsNone(self.bd.bzid_info()['container_info']['bad:one']['service_info'])

  def test_failing_layout_callback_keeps_watch(self):
    calls = []

    def failing(saved_models):
      calls.append(saved_models)
      raise RuntimeError('callback bug')

    layout = '/gip/layouts/failing'
    self.bd.register_layout_callback(layout, failing)
    self.declare(['entry'], layout=layout)
    self.declare(['ps_0'], layout=layout)
    self.assertTrue(wait_for(lambda: len(calls) >= 3 and len(calls[-1]) == 2), calls)

  # ---- faults ----
  def test_session_lost(self):
    expected = self.declare(['entry', 'ps_0'])
    available = {SavedModel(MODEL, 'entry'), SavedModel(MODEL, 'ps_0')}
    self.bd.sync_available_saved_models(self.container, available)
    binding = '/gip/binding/{}/entry:{}'.format(MODEL, self.container)
    service = '/gip/container_service/{}'.format(self.container)
    self.assertTrue(wait_for(lambda: self.last_layout() == expected))
    with self._records_lock:
      calls_before = len(self.layout_records)

    self.expire_session()
    # ephemeral nodes come back without any call from the agent
    self.assertTrue(wait_for(lambda: self.exists(binding) and self.exists(service)))
    self.assertEqual(self.bd.get_service_info(self.container), self.service_info)
    # the layout callback is replayed with the current layout
    self.assertTrue(wait_for(lambda: len(self.layout_records) > calls_before and
                             self.last_layout() == expected))
    # and the periodic sync keeps working (a LOST state seen by it restarts the client)
    self.bd._is_lost.set()
    self.bd.sync_available_saved_models(self.container, available)
    self.assertTrue(wait_for(lambda: self.bd._zk.connected))
    self.bd.sync_available_saved_models(self.container, available)
    self.assertTrue(wait_for(lambda: self.exists(binding)))
    self.bd.remove_from_layout(LAYOUT, SavedModel(MODEL, 'entry'))
    self.assertTrue(wait_for(lambda: self.last_layout() == expected[1:]))


class FakeZKBackendTest(_ZKBackendTests, absltest.TestCase):

  def make_backend(self):
    bd = ZKBackend(BZID, zk_servers='127.0.0.1:9999')
    bd._zk = FakeKazooClient()
    return bd

  def expire_session(self):
    self.bd._zk.expire_session()


class RealZKBackendTest(RealZooKeeperMixin, _ZKBackendTests, absltest.TestCase):

  ZK_ROOTS = ('/gip',)

  def make_backend(self):
    return ZKBackend(BZID, zk_servers=self.server.hosts)

  def expire_session(self):
    self.server.expire_session(self.bd._zk)

  def test_server_restart(self):
    expected = self.declare(['entry', 'ps_0'])
    available = {SavedModel(MODEL, 'entry'), SavedModel(MODEL, 'ps_0')}
    self.bd.sync_available_saved_models(self.container, available)
    self.assertTrue(wait_for(lambda: self.last_layout() == expected))

    self.server.stop()
    # calls while the server is down log and return; nothing raises into the agent
    self.bd.sync_available_saved_models(self.container, {SavedModel(MODEL, 'entry')})
    self.bd.report_service_info(self.container, self.service_info)
    self.server.start()

    self.assertTrue(wait_for(lambda: self.bd._zk.connected))
    self.bd.sync_available_saved_models(self.container, available)
    self.bd.report_service_info(self.container, self.service_info)
    for sub_graph in ('entry', 'ps_0'):
      self.assertTrue(wait_for(lambda: self.exists('/gip/binding/{}/{}:{}'.format(
          MODEL, sub_graph, self.container))))
    self.assertEqual(self.bd.get_service_info(self.container), self.service_info)
    # watches still work after the reconnect
    self.bd.remove_from_layout(LAYOUT, SavedModel(MODEL, 'ps_0'))
    self.assertTrue(wait_for(lambda: self.last_layout() == expected[:1]), self.last_layout())


if __name__ == '__main__':
  absltest.main()
