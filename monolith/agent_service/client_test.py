"""ServingClient against FakeKazooClient and a real ZooKeeper, plus the CLI end to end."""

import os
import subprocess
import sys

from absl.testing import absltest

from monolith.agent_service.client import LoadSate, ServingClient
from monolith.agent_service.data_def import ModelMeta, ModelState, PublishMeta, ReplicaMeta
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.zk_test_server import RealZooKeeperMixin

BZID = 'bzid'
MODEL = 'iptv_ctr'


class _ServingClientTests(object):

  def setUp(self):
    super().setUp()
    os.environ.setdefault('MY_HOST_IP', '127.0.0.1')
    self.client = ServingClient(self.zk_servers(), BZID, zk=self.make_client())
    self.zk = self.client._zk

  def tearDown(self):
    self.client.stop()
    super().tearDown()

  def test_load_unload(self):
    self.client.load(MODEL, '/tmp/exported', ckpt='model.ckpt-10', num_shard=3)
    data, _ = self.zk.get('/bzid/portal/{}'.format(MODEL))
    self.assertEqual(ModelMeta.deserialize(data), ModelMeta(
        model_name=MODEL, model_dir='/tmp/exported', ckpt='model.ckpt-10', num_shard=3))
    with self.assertRaisesRegex(RuntimeError, '{} has exists'.format(MODEL)):
      self.client.load(MODEL, '/tmp/other')
    self.assertEqual(ModelMeta.deserialize(self.zk.get('/bzid/portal/' + MODEL)[0]).model_dir,
                     '/tmp/exported')  # the refused load changed nothing
    self.client.unload(MODEL)
    self.assertIsNone(self.zk.exists('/bzid/portal/{}'.format(MODEL)))
    with self.assertLogs(level='WARNING'):
      self.client.unload(MODEL)  # not loaded: a warning, no error

  def test_get_status(self):
    self.assertEqual(self.client.get_status(MODEL), LoadSate(False, False, {}))
    self.client.load(MODEL, '/tmp/exported')
    pm = PublishMeta(shard_id=0, replica_id=1, model_name=MODEL, num_ps=2, sub_models={})
    self.zk.create(pm.get_path('/bzid/publish'), pm.serialize(), makepath=True)
    other = PublishMeta(shard_id=0, replica_id=1, model_name=MODEL + '_v2', num_ps=2)
    self.zk.create(other.get_path('/bzid/publish'), other.serialize(), makepath=True)
    for task, replica, stat in (('entry:0', 0, ModelState.AVAILABLE), ('ps:1', 2,
                                                                       ModelState.LOADING)):
      rm = ReplicaMeta(address='127.0.0.1:1', model_name=MODEL, server_type=task.split(':')[0],
                       task=int(task.split(':')[1]), replica=replica, stat=stat)
      self.zk.create(rm.get_path(BZID), rm.serialize(), makepath=True)
    self.zk.create('/bzid/service/{}/ps:2/0'.format(MODEL), b'garbage', makepath=True)
    status = self.client.get_status(MODEL)
    self.assertEqual(status, LoadSate(portal=True, publish=True, service={
        'entry:0:0': ModelState.AVAILABLE, 'ps:1:2': ModelState.LOADING}))
    self.assertEqual(self.client.get_status(MODEL + '_v3'), LoadSate(False, False, {}))


class FakeServingClientTest(_ServingClientTests, absltest.TestCase):

  def zk_servers(self):
    return '127.0.0.1:9999'

  def make_client(self):
    return FakeKazooClient()


class RealServingClientTest(RealZooKeeperMixin, _ServingClientTests, absltest.TestCase):

  ZK_ROOTS = ('/bzid',)

  def zk_servers(self):
    return self.server.hosts

  def make_client(self):
    return None  # ServingClient makes its own MonolithKazooClient

  def run_cli(self, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, '-m', 'monolith.agent_service.client'] + list(args),
                          env=env, capture_output=True, text=True, timeout=120)

  def test_cli(self):
    usage = self.run_cli('--help')
    self.assertEqual(usage.returncode, 1)  # absl's --help prints usage and exits 1
    self.assertIn('--cmd_type', usage.stdout)
    common = ['--zk_servers={}'.format(self.server.hosts), '--bzid=bzid',
              '--model_name={}'.format(MODEL)]
    self.assertEqual(self.run_cli('--cmd_type=load', *common).returncode, 2)  # no --model_dir
    self.assertEqual(self.run_cli('--cmd_type=status').returncode, 2)  # no --zk_servers
    load = self.run_cli('--cmd_type=load', '--model_dir=/tmp/exported', *common)
    self.assertEqual(load.returncode, 0, load.stderr)
    again = self.run_cli('--cmd_type=load', '--model_dir=/tmp/exported', *common)
    self.assertEqual(again.returncode, 1)
    self.assertIn('has exists', again.stderr)
    status = self.run_cli('--cmd_type=status', *common)
    self.assertEqual(status.returncode, 0, status.stderr)
    self.assertIn('portal=True', status.stdout)
    self.assertEqual(self.run_cli('--cmd_type=unload', *common).returncode, 0)
    self.assertIn('portal=False', self.run_cli('--cmd_type=status', *common).stdout)


if __name__ == '__main__':
  absltest.main()
