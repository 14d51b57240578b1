import os
from unittest import mock

from absl.testing import absltest

from monolith.agent_service.zk_test_server import ZooKeeperTestServer
from monolith.native_training import zk_utils


class ZkUtilsTest(absltest.TestCase):

  def test_is_ipv6_only(self):
    with mock.patch.dict(os.environ, {'MY_HOST_IP': '10.0.0.1'}):
      self.assertFalse(zk_utils.is_ipv6_only())
    with mock.patch.dict(os.environ, {'MY_HOST_IP': ''}):
      self.assertTrue(zk_utils.is_ipv6_only())  # an empty address counts as none
    with mock.patch.dict(os.environ, {'MY_HOST_IPV6': '::1'}, clear=True):
      self.assertTrue(zk_utils.is_ipv6_only())
    with mock.patch.dict(os.environ, {'MY_POD_IP': '10.0.0.2'}, clear=True):
      self.assertFalse(zk_utils.is_ipv6_only())

  def test_default_zk_servers(self):
    with mock.patch.dict(os.environ, {'MY_HOST_IP': '10.0.0.1'}):
      self.assertEqual(zk_utils.default_zk_servers(), '')
      with mock.patch.object(zk_utils, '_HOSTS', ['1.1.1.1', '2.2.2.2']), \
          mock.patch.object(zk_utils, '_HOSTS_IPV6', ['fe80::1']):
        self.assertEqual(zk_utils.default_zk_servers(), '1.1.1.1:2181,2.2.2.2:2181')
        self.assertEqual(zk_utils.default_zk_servers(use_ipv6=True), '[fe80::1]:2181')

  def test_auth_data(self):
    with mock.patch.dict(os.environ, {'ZK_AUTH': 'user:pass'}):
      client = zk_utils.MonolithKazooClient(hosts='127.0.0.1:1')
      self.assertEqual(client.auth_data, {('digest', 'user:pass')})
      client = zk_utils.MonolithKazooClient(hosts='127.0.0.1:1', auth_data=[])
      self.assertEqual(client.auth_data, set())
    with mock.patch.dict(os.environ, {}, clear=True):
      self.assertEqual(zk_utils.MonolithKazooClient(hosts='127.0.0.1:1').auth_data, set())

  def test_clear_zk_path(self):
    with ZooKeeperTestServer() as server:
      zk = zk_utils.MonolithKazooClient(hosts=server.hosts)
      zk.start()
      zk.create('/monolith/job/ps.0', b'127.0.0.1:1', makepath=True)
      zk.create('/monolith/other', b'', makepath=True)
      with self.assertRaisesRegex(ValueError, r'there are \[ps.0\] in monolith zk path'):
        zk_utils.clear_zk_path(server.hosts, 'job', False)
      zk_utils.clear_zk_path(server.hosts, 'job', True)
      self.assertIsNone(zk.exists('/monolith/job'))
      self.assertIsNotNone(zk.exists('/monolith/other'))  # fresh: not older than 9 weeks
      zk.stop()


if __name__ == '__main__':
  absltest.main()
