import os
from unittest import mock

from absl.testing import absltest

from monolith.native_training import env_utils


class EnvUtilsTest(absltest.TestCase):

  def test_zk_auth_data(self):
    with mock.patch.dict(os.environ, {'ZK_AUTH': 'user:secret'}):
      with self.assertLogs(level='INFO') as logs:
        self.assertEqual(env_utils.get_zk_auth_data(), [('digest', 'user:secret')])
      self.assertNotIn('secret', ''.join(logs.output))  # the secret is never logged
    with mock.patch.dict(os.environ, {'ZK_AUTH': ''}):
      self.assertIsNone(env_utils.get_zk_auth_data())
    with mock.patch.dict(os.environ, clear=True):
      self.assertIsNone(env_utils.get_zk_auth_data())

  def test_setup_host_ip(self):
    with mock.patch.dict(os.environ, {'MY_HOST_IP': '10.1.2.3'}):
      self.assertEqual(env_utils.setup_host_ip(), '10.1.2.3')
    with mock.patch.dict(os.environ, clear=True):
      ip = env_utils.setup_host_ip()
      self.assertTrue(ip)
      self.assertEqual(os.environ['MY_HOST_IP'], ip)

  def test_identity_helpers(self):
    self.assertIsNone(env_utils.setup_hdfs_env())
    self.assertEqual(env_utils.generate_psm_from_uuid('abc'), 'abc')


if __name__ == '__main__':
  absltest.main()
