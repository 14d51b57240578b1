import socket

from absl.testing import absltest

from monolith.native_training import net_utils


class NetUtilsTest(absltest.TestCase):

  def test_ipv6(self):
    self.assertTrue(net_utils.is_ipv6_address('::1'))
    self.assertFalse(net_utils.is_ipv6_address('127.0.0.1'))
    self.assertFalse(net_utils.is_ipv6_address('not an ip'))
    self.assertEqual(net_utils.concat_ip_and_port('::1', 80), '[::1]:80')
    self.assertEqual(net_utils.concat_ip_and_port('10.0.0.1', 80), '10.0.0.1:80')

  def test_node_alive_checker(self):
    with socket.socket() as listening, socket.socket() as closed:
      listening.bind(('127.0.0.1', 0))
      listening.listen()
      closed.bind(('127.0.0.1', 0))  # bound but not listening: connection refused
      alive = '127.0.0.1:{}'.format(listening.getsockname()[1])
      dead = '127.0.0.1:{}'.format(closed.getsockname()[1])
      checker = net_utils.NodeAliveChecker([alive, dead], timeout=1, num_thread=2)
    self.assertFalse(checker.all_nodes_alive())
    self.assertEqual(checker.get_alive_nodes(), [alive])
    self.assertEqual(checker.get_dead_nodes(), [dead])
    self.assertEqual(checker.get_addrs(), [alive, dead])


if __name__ == '__main__':
  absltest.main()
