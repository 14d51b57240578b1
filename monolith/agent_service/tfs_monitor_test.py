"""TFSMonitor against two FakeTFServing servers (entry and ps) over loopback gRPC."""

import os
import random
import threading
import time
import unittest

from tensorflow_serving.config import model_server_config_pb2

from monolith.agent_service import constants
from monolith.agent_service.data_def import ModelState, PublishMeta, PublishType
from monolith.agent_service.mocked_tfserving import FakeTFServing
from monolith.agent_service.tfs_monitor import TFSMonitor
from monolith.agent_service.utils import AgentConfig, DEFAULT_MODEL_CONFIG, TFSServerType

PATH = '/tmp/tfs_monitor_test/{}/{}'


def sub_models(num_ps, version=11):
  models = {f'ps_{j}': PATH.format(f'ps_{j}', version) for j in range(num_ps) if j % 3 == 0}
  models['entry'] = PATH.format('entry', version)
  return models


class TFSMonitorTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    os.environ[constants.HOST_SHARD_ENV] = '10'
    os.environ['SHARD_ID'] = '1'
    os.environ['REPLICA_ID'] = '2'
    cls.conf = AgentConfig(bzid='bzid', deploy_type='mixed',
                           platform_config_file='/tmp/tfs_monitor_test/platform.cfg')
    cls.servers, cls.threads = [], []
    for port in (cls.conf.tfs_entry_port, cls.conf.tfs_ps_port):
      server = FakeTFServing(num_versions=2, port=port,
                             model_config_file=model_server_config_pb2.ModelServerConfig())
      thread = threading.Thread(target=server.start, daemon=True)
      thread.start()
      assert server.wait_until_started()
      cls.servers.append(server)
      cls.threads.append(thread)
    cls.monitor = TFSMonitor(cls.conf)
    cls.monitor.connect()

  @classmethod
  def tearDownClass(cls):
    cls.monitor.stop()
    for server, thread in zip(cls.servers, cls.threads):
      server.stop()
      thread.join()

  def publish(self, name, num_ps, ptype=PublishType.LOAD):
    return PublishMeta(model_name=name, num_ps=num_ps, shard_id=self.conf.shard_id,
                       replica_id=self.conf.replica_id, sub_models=sub_models(num_ps),
                       ptype=ptype)

  def reload(self, pms):
    configs = self.monitor.gen_model_config(pms)
    for service_type, config in configs.items():
      status = self.monitor.handle_reload_config_request(service_type, config)
      self.assertEqual(status.error_code, 0)
    return configs

  def wait_status(self, pm, want_version, want_state=None, timeout=10):
    # The fake reports a new version while it is still loading it: wait for the state as well.
    deadline = time.time() + timeout
    while True:
      status = self.monitor.get_model_status(pm)
      if all(s.version == want_version(name) and want_state in (None, s.state)
             for name, (_, s) in status.items()):
        return status
      if time.time() > deadline:
        self.fail(f'{pm.model_name}: {status}')
      time.sleep(0.05)

  def test_gen_model_config(self):
    pms = [self.publish('gen_a', 7), self.publish('gen_b', 4, PublishType.UNLOAD)]
    configs = self.monitor.gen_model_config(pms)
    self.assertEqual(set(configs), {TFSServerType.ENTRY, TFSServerType.PS})
    entry = configs[TFSServerType.ENTRY].model_config_list.config
    self.assertEqual([c.name for c in entry], ['gen_a:entry'])
    self.assertEqual(entry[0].base_path, os.path.dirname(PATH.format('entry', 11)))
    # The dense node (entry, as dense_alone is off) follows the latest version.
    self.assertEqual(entry[0].model_version_policy.latest.num_versions, 1)
    ps = configs[TFSServerType.PS].model_config_list.config
    self.assertEqual([c.name for c in ps], ['gen_a:ps_0', 'gen_a:ps_3', 'gen_a:ps_6'])
    self.assertEqual(list(ps[0].model_version_policy.specific.versions), [11])

  def test_reload_config(self):
    pms = [self.publish(f'test_{i}', random.randint(5, 20)) for i in range(5)]
    before = {pm.model_name: self.monitor.get_model_status(pm) for pm in pms}
    for status in before.values():
      for _, s in status.values():
        self.assertEqual((s.version, s.status.error_code), (-1, 5))
    configs = self.reload(pms)
    self.assertIn(DEFAULT_MODEL_CONFIG.name,
                  [c.name for c in configs[TFSServerType.ENTRY].model_config_list.config])
    for pm in pms:
      # Entry follows `latest` (the fake's first version is 1); ps its published version.
      after = self.wait_status(pm, lambda name: 1 if name.endswith(':entry') else 11,
                               want_state=ModelState.AVAILABLE)
      self.assertEqual(set(after), set(before[pm.model_name]))
      for name, (path, s) in after.items():
        self.assertEqual(path, pm.sub_models[name.split(':')[1]])
        self.assertEqual(s.state, ModelState.AVAILABLE)

  def test_remove_config(self):
    pms = [self.publish(f'remove_{i}', 6) for i in range(2)]
    self.reload(pms)
    for pm in pms:
      self.wait_status(pm, lambda name: 1 if name.endswith(':entry') else 11)
    self.reload([])  # nothing published: every model is unloaded
    for pm in pms:
      after = self.wait_status(pm, lambda name: -1)
      for _, s in after.values():
        self.assertEqual(s.status.error_code, 5)

  def test_unknown_service_type_is_skipped(self):
    pm = PublishMeta(model_name='x', sub_models={'dense_0': PATH.format('dense_0', 1)})
    self.assertEqual(self.monitor.get_model_status(pm), {})
    self.assertIsNone(self.monitor.get_addr('dense_0'))
    self.assertTrue(self.monitor.get_addr('ps_3').endswith(f':{self.conf.tfs_ps_port}'))


if __name__ == '__main__':
  unittest.main()
