"""agent_client commands against a live AgentService and a real ZooKeeper."""

import contextlib
import io
import os
import tempfile
import time
import unittest

from absl import flags
from kazoo.client import KazooClient

from monolith.agent_service import agent_client
from monolith.agent_service.agent_service import AgentService
from monolith.agent_service.data_def import ModelMeta, ModelState, ReplicaMeta
from monolith.agent_service.replica_manager import ReplicaWatcher
from monolith.agent_service.utils import AgentConfig, find_free_port
from monolith.agent_service.zk_test_server import ZooKeeperTestServer

FLAGS = flags.FLAGS


class AgentClientTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    FLAGS.mark_as_parsed()
    os.environ['MY_HOST_IP'] = '127.0.0.1'
    for name in ('TCE_INTERNAL_IDC', 'TCE_LOGICAL_CLUSTER'):
      os.environ.pop(name, None)
    cls.zk_server = ZooKeeperTestServer()
    cls.zk_server.start()
    cls.tmp = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))
    cls.conf_path = os.path.join(cls.tmp, 'agent.conf')
    with open(cls.conf_path, 'w') as f:
      f.write(f'bzid bz\nbase_name demo\ndeploy_type ps\nnum_ps 2\n'
              f'zk_servers {cls.zk_server.hosts}\nagent_port {find_free_port()}\n'
              f'platform_config_file {cls.tmp}/platform.cfg\n')
    cls.conf = AgentConfig.from_file(cls.conf_path)
    cls.zk = KazooClient(hosts=cls.zk_server.hosts)
    cls.zk.start()
    for task in range(2):
      cls.zk.create(f'/bz/service/demo/ps:{task}/0',
                    ReplicaMeta(address=f'10.0.0.{task}:9000', archon_address=f'10.0.0.{task}:9001',
                                stat=ModelState.AVAILABLE).serialize(), makepath=True)
    cls.watcher = ReplicaWatcher(cls.zk, cls.conf)
    cls.watcher.watch_data()
    cls.service = AgentService(cls.watcher, port=cls.conf.agent_port, conf=cls.conf)
    cls.service.start()

  @classmethod
  def tearDownClass(cls):
    cls.service.stop(0)
    cls.watcher.stop()
    cls.zk.stop()
    cls.zk_server.close()

  def run_main(self, **flag_values):
    defaults = dict(conf=self.conf_path, port=0, cmd_type='hb', args=None, server_type='ps',
                    task=0, model_name=None, model_dir=None, ckpt=None, num_shard=-1)
    defaults.update(flag_values)
    for name, value in defaults.items():
      setattr(FLAGS, name, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      code = agent_client.main([])
    return code, out.getvalue(), err.getvalue()

  def test_heart_beat_and_get_replicas(self):
    deadline = time.time() + 10
    while True:
      code, out, _ = self.run_main(cmd_type='hb')
      if out.count('\n') == 2 or time.time() > deadline:
        break
      time.sleep(0.1)
    self.assertEqual(code, 0)
    self.assertEqual(out.splitlines(), ["ps:0 1 ['10.0.0.0:9000']", "ps:1 1 ['10.0.0.1:9000']"])
    code, out, _ = self.run_main(cmd_type='gr', task=1)
    self.assertEqual((code, out.strip()), (0, "['10.0.0.1:9000']"))

  def test_addr(self):
    code, out, _ = self.run_main(cmd_type='addr')
    self.assertEqual(code, 0)
    self.assertEqual(out.splitlines(), [
        '/bz/service/demo/ps:0/0 10.0.0.0:9001 10.0.0.0:9000 AVAILABLE',
        '/bz/service/demo/ps:1/0 10.0.0.1:9001 10.0.0.1:9000 AVAILABLE',
    ])
    code, out, _ = self.run_main(cmd_type='addr', model_name='other')
    self.assertEqual(code, 0)  # base_name wins over --model_name, as upstream

  def test_load_get_unload(self):
    code, _, _ = self.run_main(cmd_type='load', model_dir='/models/demo', ckpt='model.ckpt-7',
                               num_shard=2)
    self.assertEqual(code, 0)
    meta = ModelMeta.deserialize(self.zk.get('/bz/portal/demo')[0])
    self.assertEqual((meta.model_name, meta.model_dir, meta.ckpt, meta.num_shard),
                     ('demo', '/models/demo', 'model.ckpt-7', 2))
    code, out, _ = self.run_main(cmd_type='get', args='portal')
    self.assertEqual(code, 0)
    self.assertTrue(out.startswith('demo {'), out)
    self.assertEqual(self.run_main(cmd_type='unload')[0], 0)
    self.assertIsNone(self.zk.exists('/bz/portal/demo'))
    self.assertEqual(self.run_main(cmd_type='unload')[0], 0)  # twice is fine
    code, out, _ = self.run_main(cmd_type='get', args='lock')
    self.assertEqual(out.strip(), 'no lock found !')

  def test_clean(self):
    self.zk.create('/bz/publish/x', b'1', makepath=True)
    self.assertEqual(self.run_main(cmd_type='clean', args='publish')[0], 0)
    self.assertEqual(self.zk.get_children('/bz/publish'), [])

  def test_errors(self):
    code, _, err = self.run_main(conf='')
    self.assertEqual(code, 1)
    self.assertIn('--conf is required', err)
    code, _, err = self.run_main(port=find_free_port())
    self.assertEqual(code, 2)
    self.assertIn('UNAVAILABLE', err)


if __name__ == '__main__':
  unittest.main()
