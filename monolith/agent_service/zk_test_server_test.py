from absl.testing import absltest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from monolith.agent_service.zk_test_server import ZooKeeperTestServer, wait_for


class ZooKeeperTestServerTest(absltest.TestCase):

  def test_lifecycle(self):
    server = ZooKeeperTestServer()
    server.start()
    try:
      self.assertTrue(server.running)
      self.assertTrue(server.hosts.startswith('127.0.0.1:'))
      states = []
      zk = KazooClient(hosts=server.hosts, timeout=3)
      zk.add_listener(states.append)
      zk.start()
      zk.create('/persistent/node', b'p', makepath=True)
      zk.create('/ephemeral', b'e', ephemeral=True)

      server.restart()  # same data dir: persistent data and the live session survive
      self.assertTrue(wait_for(lambda: zk.connected))
      self.assertEqual(zk.get('/persistent/node')[0], b'p')

      server.expire_session(zk)
      self.assertTrue(wait_for(lambda: KazooState.LOST in states and zk.connected))
      self.assertIsNone(zk.exists('/ephemeral'))
      self.assertEqual(zk.get('/persistent/node')[0], b'p')
      zk.stop()
      zk.close()
    finally:
      server.close()
    self.assertFalse(server.running)


if __name__ == '__main__':
  absltest.main()
