"""agent_controller against FakeKazooClient and a real ZooKeeper, plus the CLI end to end."""

import json
import os
import subprocess
import sys

from absl.testing import absltest

from monolith.agent_service.agent_controller import (declare_saved_model, find_model_name,
                                                     map_model_to_layout)
from monolith.agent_service.backends import SavedModel, SavedModelDeployConfig, ZKBackend
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.zk_test_server import RealZooKeeperMixin

BZID = 'gip'
MODEL = 'test_ffm_model'
SUB_GRAPHS = ['entry', 'ps_0', 'ps_1', 'ps_2', 'ps_3', 'ps_4']


def saved_model_dir() -> str:
  return os.path.join(os.environ.get('TEST_SRCDIR', ''), os.environ.get('TEST_WORKSPACE', ''),
                      'monolith/agent_service/testdata/saved_model')


class _AgentControllerTests(object):

  def setUp(self):
    super().setUp()
    self.bd = self.make_backend()
    self.bd.start()

  def tearDown(self):
    self.bd.stop()
    super().tearDown()

  def test_find_model_name(self):
    self.assertEqual(find_model_name(saved_model_dir()), MODEL)

  def test_decl_saved_models(self):
    name = declare_saved_model(self.bd, saved_model_dir(), MODEL, overwrite=True)
    self.assertEqual(name, MODEL)
    self.assertEqual(self.bd.list_saved_models(MODEL), [SavedModel(MODEL, s) for s in SUB_GRAPHS])
    data, _ = self.bd._zk.get('/gip/saved_models/{}/ps_3'.format(MODEL))
    self.assertEqual(SavedModelDeployConfig.deserialize(data), SavedModelDeployConfig(
        model_base_path=os.path.join(saved_model_dir(), 'ps_3'), version_policy='latest_once'))
    data, _ = self.bd._zk.get('/gip/saved_models/{}/entry'.format(MODEL))
    self.assertEqual(SavedModelDeployConfig.deserialize(data).version_policy, 'latest')
    # the name is read from the entry graph when not given
    self.assertEqual(declare_saved_model(self.bd, saved_model_dir(), overwrite=True), MODEL)
    # declaring again without overwrite is refused, and nothing changes
    with self.assertRaisesRegex(AssertionError, 'already declared'):
      declare_saved_model(self.bd, saved_model_dir(), MODEL)
    with self.assertRaisesRegex(AssertionError, 'arch'):
      declare_saved_model(self.bd, saved_model_dir(), MODEL, overwrite=True, arch='dense')

  def test_pub(self):
    declare_saved_model(self.bd, saved_model_dir(), MODEL, overwrite=True)
    layout = '/gip/layouts/test_layout1'

    def layout_info():
      return self.bd.bzid_info()['layout_info']['test_layout1']

    map_model_to_layout(self.bd, '{}:entry'.format(MODEL), layout, 'pub')
    self.assertEqual(layout_info(), ['{}:entry'.format(MODEL)])
    map_model_to_layout(self.bd, '{}:ps_*'.format(MODEL), layout, 'pub')
    self.assertEqual(layout_info(), ['{}:{}'.format(MODEL, s) for s in SUB_GRAPHS])
    map_model_to_layout(self.bd, '{}:ps_*'.format(MODEL), layout, 'unpub')
    self.assertEqual(layout_info(), ['{}:entry'.format(MODEL)])
    map_model_to_layout(self.bd, '{}:entry'.format(MODEL), layout, 'unpub')
    self.assertEqual(layout_info(), [])

  def test_bad_patterns(self):
    declare_saved_model(self.bd, saved_model_dir(), MODEL, overwrite=True)
    layout = '/gip/layouts/bad'
    with self.assertRaisesRegex(ValueError, 'no_colon'):
      map_model_to_layout(self.bd, 'no_colon', layout, 'pub')
    with self.assertRaisesRegex(ValueError, 'publish'):
      map_model_to_layout(self.bd, '{}:entry'.format(MODEL), layout, 'publish')
    with self.assertLogs(level='WARNING') as logs:
      self.assertEqual(map_model_to_layout(self.bd, '{}:dense_*'.format(MODEL), layout, 'pub'),
                       [])
    self.assertIn('dense_*', logs.output[0])
    self.assertEqual(self.bd.bzid_info()['layout_info'].get('bad', []), [])


class FakeAgentControllerTest(_AgentControllerTests, absltest.TestCase):

  def make_backend(self):
    bd = ZKBackend(BZID, zk_servers='127.0.0.1:9999')
    bd._zk = FakeKazooClient()
    return bd


class RealAgentControllerTest(RealZooKeeperMixin, _AgentControllerTests, absltest.TestCase):

  ZK_ROOTS = ('/gip',)

  def make_backend(self):
    return ZKBackend(BZID, zk_servers=self.server.hosts)

  def run_cli(self, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, '-m', 'monolith.agent_service.agent_controller',
         '--zk_servers={}'.format(self.server.hosts), '--bzid=gip'] + list(args),
        env=env, capture_output=True, text=True, timeout=120)

  def test_cli(self):
    decl = self.run_cli('--cmd=decl', '--export_base={}'.format(saved_model_dir()))
    self.assertEqual(decl.returncode, 0, decl.stderr)
    pub = self.run_cli('--cmd=pub', '--layout=cli', '--model_name={}:*'.format(MODEL))
    self.assertEqual(pub.returncode, 0, pub.stderr)
    info = self.run_cli('--cmd=bzid_info')
    self.assertEqual(info.returncode, 0, info.stderr)
    parsed = json.loads(info.stdout)
    self.assertEqual(parsed['layout_info']['cli'], ['{}:{}'.format(MODEL, s) for s in SUB_GRAPHS])
    self.assertEqual(parsed['model_info'][MODEL]['sub_graphs_total'], len(SUB_GRAPHS))
    # declaring twice without --overwrite fails cleanly
    again = self.run_cli('--cmd=decl', '--export_base={}'.format(saved_model_dir()))
    self.assertEqual(again.returncode, 1)
    self.assertIn('already declared', again.stderr)
    usage = self.run_cli('--help')
    self.assertIn('--cmd', usage.stdout)
    bad = self.run_cli('--cmd=frobnicate')
    self.assertEqual(bad.returncode, 2)
    self.assertIn('--cmd must be one of', bad.stderr)


if __name__ == '__main__':
  absltest.main()
