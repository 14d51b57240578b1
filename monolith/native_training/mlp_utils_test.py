import os
from unittest import mock

from absl.testing import absltest

from monolith.native_training import mlp_utils


class MLPEnvTest(absltest.TestCase):

  def _env(self, **env):
    patcher = mock.patch.dict(os.environ, env, clear=True)
    patcher.start()
    self.addCleanup(patcher.stop)
    return mlp_utils.MLPEnv()

  def test_roles_index_and_quoted_values(self):
    env = self._env(MLP_ROLE='worker', MLP_ROLE_INDEX=' "3" ', MLP_WORKER_NUM='4', MLP_PS_NUM='2',
                    MLP_PORT='9000', MLP_CPU='8', MPI_OTHER='x', MLP_WORKER_0_NUM='7',
                    YARN_INET_ADDR='10.0.0.5')
    self.assertEqual(env.role, 'WORKER')
    self.assertEqual(env.index, 3)
    self.assertEqual(env.port, 9000)
    # MLP_WORKER_0_NUM has four parts and is not a role count.
    self.assertEqual(env.all_roles, {'WORKER': 4, 'PS': 2})
    self.assertEqual(env.cpu, '8')
    self.assertEqual(env.host, '10.0.0.5')
    self.assertTrue(env.avaiable)
    self.assertFalse(env.enable_mpi)
    self.assertEqual(env.num_replicas('ps'), 2)

  def test_mpi_worker_takes_rank(self):
    env = self._env(MLP_ROLE='WORKER', MLP_PORT='100', OMPI_COMM_WORLD_RANK='2',
                    OMPI_COMM_WORLD_SIZE='8', CLOUDNATIVE_INET_ADDR='1.1.1.1,2.2.2.2')
    self.assertTrue(env.enable_mpi)
    self.assertEqual(env.index, 2)
    self.assertEqual(env.port, 102)
    self.assertEqual(env.all_roles['WORKER'], 8)
    self.assertEqual(env.host, '1.1.1.1')

  def test_empty_environment(self):
    env = self._env(YARN_INET_ADDR='h')
    self.assertEqual((env.role, env.index, env.port), ('', 0, 0))
    self.assertFalse(env.avaiable)

  def test_peer_addresses(self):
    env = self._env(MLP_ROLE='PS', MLP_PS_NUM='2', YARN_INET_ADDR='h',
                    MLP_PS_ALL_PRIMARY_ADDRS='a:1,b:2', MLP_PS_1_PRIMARY_HOST='b',
                    MLP_PS_1_PORT='2')
    self.assertEqual(env.get_all_addrs(), ['a:1', 'b:2'])
    self.assertEqual(env.get_all_host(), ['a', 'b'])
    self.assertEqual(env.get_addr(index=1), 'b:2')
    self.assertIsNone(env.get_addr(index=0))
    self.assertEqual(env.get_port(index=0), 2222)


if __name__ == '__main__':
  absltest.main()
