"""AgentV3 (unified deploy): layouts in ZooKeeper drive the model server's config.

`AgentV3Test` is upstream's test (fake model server wrapper, in-memory ZooKeeper);
`AgentV3EndToEndTest` runs the built-in model server process against a real ZooKeeper."""

import json
import os
import tempfile
import time
import unittest

from kazoo.client import KazooClient

from monolith.agent_service import agent_v3
from monolith.agent_service import gen_saved_model
from monolith.agent_service.agent_v3 import AgentV3
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.tfs_wrapper import FakeTFSWrapper, State, TFSWrapper
from monolith.agent_service.utils import AgentConfig
from monolith.agent_service.zk_test_server import ZooKeeperTestServer

MODEL = 'test_ffm_model'


def wait_until(cond, timeout=10, what='condition'):
  deadline = time.time() + timeout
  while time.time() < deadline:
    value = cond()
    if value:
      return value
    time.sleep(0.1)
  raise AssertionError(f'{what} not reached in {timeout} s')


def tmp_root() -> str:
  return os.environ.get('TEST_TMPDIR') or tempfile.mkdtemp()


def declare(zk, bzid, base_path, sub_graphs):
  for sub_graph in sub_graphs:
    config = {'model_base_path': os.path.join(base_path, sub_graph), 'version_policy': 'latest'}
    zk.create(f'/{bzid}/saved_models/{MODEL}/{sub_graph}', json.dumps(config).encode(),
              makepath=True)


class AgentV3Test(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.bzid = 'gip'
    os.environ['MY_HOST_IP'] = '127.0.0.1'
    cls.base_path = tmp_root()
    cls.conf = AgentConfig(bzid=cls.bzid, deploy_type='unified', agent_version=3,
                           layout_pattern='/gip/layout', zk_servers='127.0.0.1:8888',
                           platform_config_file=os.path.join(cls.base_path, 'platform.cfg'))
    cls.agent = AgentV3(cls.conf, os.path.join(cls.base_path, '/monolith_serving/conf'),
                        os.path.join(cls.base_path, 'monolith_serving/logs/log.log'))
    cls.agent._tfs_wrapper = FakeTFSWrapper(cls.agent._model_config_path)
    cls.zk = FakeKazooClient()
    cls.agent._backend._zk = cls.zk
    cls.agent.start()
    declare(cls.zk, cls.bzid, os.path.join(cls.base_path, MODEL, 'exported_models'),
            ['entry', 'ps_0', 'ps_1', 'ps_2'])

  @classmethod
  def tearDownClass(cls):
    cls.agent.stop()

  def test_service_info(self):
    wait_until(lambda: self.agent._backend.get_service_info(self.agent._container) ==
               self.agent._service_info, what='service info reported')

  def test_publish_models(self):
    tfs = self.agent._tfs_wrapper
    backend = self.agent._backend
    self.assertEqual(tfs.list_saved_models(), [])
    self.zk.ensure_path(f'/gip/layout/{MODEL}:entry')
    self.zk.ensure_path(f'/gip/layout/{MODEL}:ps_0')
    wait_until(lambda: tfs.list_saved_models() == [f'{MODEL}:entry', f'{MODEL}:ps_0'])
    self.agent.sync_available_saved_models()
    info = self.agent._service_info
    wait_until(lambda: backend.get_service_map() == {MODEL: {'entry': [info], 'ps_0': [info]}})
    self.zk.delete(f'/gip/layout/{MODEL}:ps_0')
    wait_until(lambda: tfs.list_saved_models() == [f'{MODEL}:entry'])
    self.agent.sync_available_saved_models()
    wait_until(lambda: backend.get_service_map() == {MODEL: {'entry': [info]}})
    self.zk.delete(f'/gip/layout/{MODEL}:entry')
    wait_until(lambda: tfs.list_saved_models() == [])


class LayoutFilterTest(unittest.TestCase):

  def test_safe_eval(self):
    self.assertTrue(agent_v3._safe_eval('i % 3 == 0', {'i': 6}))
    self.assertFalse(agent_v3._safe_eval('i % 3 == 0 and i > 6', {'i': 6}))
    with self.assertRaisesRegex(ValueError, 'unsupported Call'):
      agent_v3._safe_eval('__import__("os").system("true")', {})
    with self.assertRaisesRegex(ValueError, "unknown 'j'"):
      agent_v3._safe_eval('j == 1', {'i': 1})


class AgentV3EndToEndTest(unittest.TestCase):
  """Real ZooKeeper, built-in model server process, real SavedModels."""

  @classmethod
  def setUpClass(cls):
    os.environ['MY_HOST_IP'] = '127.0.0.1'
    cls.zk_server = ZooKeeperTestServer()
    cls.zk_server.start()
    cls.tmp = tempfile.mkdtemp()
    cls.models = gen_saved_model.export_demo_models(os.path.join(cls.tmp, 'exported'),
                                                    ('entry', 'ps_0'))
    cls.conf = AgentConfig(bzid='e2e', deploy_type='unified', agent_version=3,
                           layout_pattern='/e2e/layout', zk_servers=cls.zk_server.hosts,
                           layout_filters=['ps_{i};i % 2 == 0', 'entry'],
                           platform_config_file=os.path.join(cls.tmp, 'platform.cfg'))
    cls.agent = AgentV3(cls.conf, cls.tmp, os.path.join(cls.tmp, 'logs', 'tfs.log'))
    # Upstream polls the model config every 60 s; a second keeps the test short.
    cls.agent._tfs_wrapper = TFSWrapper(cls.conf.tfs_port_archon, cls.conf.tfs_port_grpc,
                                        cls.conf.tfs_port_http, cls.agent._model_config_path,
                                        cls.conf, log_file=os.path.join(cls.tmp, 'tfs.log'),
                                        model_config_file_poll_wait_seconds=1)
    cls.agent.start()
    cls.zk = KazooClient(hosts=cls.zk_server.hosts)
    cls.zk.start()
    declare(cls.zk, 'e2e', cls.models, ['entry', 'ps_0', 'ps_1'])

  @classmethod
  def tearDownClass(cls):
    cls.zk.stop()
    cls.agent.stop()
    cls.zk_server.close()

  def states(self):
    return {n: s.state for n, s in self.agent._tfs_wrapper.list_saved_models_status().items()}

  def test_publish_and_unpublish(self):
    tfs = self.agent._tfs_wrapper
    for sub_graph in ('entry', 'ps_0', 'ps_1'):
      self.zk.ensure_path(f'/e2e/layout/{MODEL}:{sub_graph}')
    # ps_1 is filtered out by `ps_{i};i % 2 == 0`.
    wait_until(lambda: tfs.list_saved_models() == [f'{MODEL}:entry', f'{MODEL}:ps_0'])
    wait_until(lambda: self.states() == {
        f'{MODEL}:entry': State.AVAILABLE,
        f'{MODEL}:ps_0': State.AVAILABLE
    }, timeout=90, what='models AVAILABLE')
    self.agent.sync_available_saved_models()
    wait_until(lambda: set(self.zk.get_children(f'/e2e/binding/{MODEL}')) ==
               {f'entry:{self.agent._container}', f'ps_0:{self.agent._container}'}
               if self.zk.exists(f'/e2e/binding/{MODEL}') else False,
               what='bindings in ZooKeeper')
    addrs = wait_until(lambda: (lambda m: m if len(m) == 2 else None)(self.agent._gen_addrs_map()),
                       what='service map')
    self.assertEqual(addrs, {
        f'{MODEL}:entry': [f'127.0.0.1:{self.conf.tfs_port_grpc}'],
        f'{MODEL}:ps_0': [f'127.0.0.1:{self.conf.tfs_port_grpc}']
    })

    self.zk.delete(f'/e2e/layout/{MODEL}:ps_0')
    wait_until(lambda: tfs.list_saved_models() == [f'{MODEL}:entry'])
    # Unloaded: the server no longer has the model (NOT_FOUND) or reports it END.
    wait_until(lambda: f'{MODEL}:ps_0' not in self.states(), what='ps_0 gone from config')
    status = wait_until(lambda: self._ps0_status_gone(), timeout=30, what='ps_0 unloaded')
    self.assertTrue(status)

  def _ps0_status_gone(self):
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = f'{MODEL}:ps_0'
    try:
      reply = self.agent._tfs_wrapper._stub.GetModelStatus(request, timeout=5)
    except grpc.RpcError as e:
      return e.code() == grpc.StatusCode.NOT_FOUND
    return all(s.state == State.END for s in reply.model_version_status)


if __name__ == '__main__':
  unittest.main()
