from absl.testing import absltest
from kazoo.exceptions import BadArgumentsError, NoNodeError, NodeExistsError, NotEmptyError
from kazoo.protocol.states import EventType, KazooState

from monolith.agent_service.mocked_zkclient import FakeKazooClient


class MockedZKClientTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.client = FakeKazooClient()
    cls.client.start()

  @classmethod
  def tearDownClass(cls):
    cls.client.stop()

  def tearDown(self):
    if self.client.exists('/monolith'):
      self.client.delete('/monolith', recursive=True)

  def test_create(self):
    path = '/monolith/zk/data'
    self.assertEqual(self.client.create(path, makepath=True), path)
    with self.assertRaises(NodeExistsError):
      self.client.create(path, makepath=True)
    with self.assertRaises(NoNodeError):
      self.client.create('/monolith/missing/child')  # parent missing and no makepath
    self.assertEqual(self.client.get_children('/monolith/zk'), ['data'])

  def test_create_sequence_and_ephemeral(self):
    self.client.ensure_path('/monolith/seq')
    first = self.client.create('/monolith/seq/n', b'a', sequence=True)
    second = self.client.create('/monolith/seq/n', b'b', sequence=True)
    self.assertEqual(first, '/monolith/seq/n0000000000')
    self.assertEqual(second, '/monolith/seq/n0000000001')
    self.client.create('/monolith/seq/eph', b'e', ephemeral=True)
    self.assertEqual(self.client.exists('/monolith/seq/eph').ephemeralOwner, 1)
    with self.assertRaises(NoNodeError):
      self.client.create('/monolith/seq/eph/child')  # ephemeral nodes have no children

  def test_set_get(self):
    path = '/monolith/zk/data'
    real_path, stat = self.client.create(path, b'v0', makepath=True, include_data=True)
    self.assertEqual(real_path, path)
    self.assertEqual(stat.version, 0)
    self.assertEqual(stat.dataLength, 2)
    with self.assertRaises(NoNodeError):
      self.client.set(path + '/missing', b'x')
    with self.assertRaises(NoNodeError):
      self.client.get(path + '/missing')
    value, stat = self.client.get(path)
    self.assertEqual(value, b'v0')
    stat = self.client.set(path, b'value1')
    self.assertEqual(stat.version, 1)
    self.assertEqual(self.client.get(path), (b'value1', stat))
    with self.assertRaises(TypeError):
      self.client.set(path, 'not bytes')

  def test_delete(self):
    path = '/monolith/zk/data'
    self.client.create(path, makepath=True)
    with self.assertRaises(NotEmptyError):
      self.client.delete('/monolith', recursive=False)
    self.client.delete(path)
    self.assertIsNone(self.client.exists(path))
    self.client.delete('/monolith')
    self.assertIsNone(self.client.exists('/monolith'))
    with self.assertRaises(NoNodeError):
      self.client.delete('/monolith')

  def test_bad_path(self):
    with self.assertRaises(BadArgumentsError):
      self.client.create('relative/path')

  def test_data_watch(self):
    path = '/monolith/zk/data'
    self.client.create(path, b'v0', makepath=True)
    calls = []

    def func(data, state, event):
      calls.append((data, state.version if state else None, event.type if event else None))

    self.client.DataWatch(path, func)
    self.client.set(path, b'v1')
    self.client.delete(path)
    self.client.create(path, b'v2')
    self.assertEqual(calls, [(b'v0', 0, None), (b'v1', 1, EventType.CHANGED),
                             (None, None, EventType.DELETED), (b'v2', 0, EventType.CREATED)])

  def test_data_watch_two_args_and_missing_node(self):
    calls = []
    self.client.DataWatch('/monolith/later', lambda data, stat: calls.append((data, stat)))
    self.assertEqual(calls, [(None, None)])
    self.client.create('/monolith/later', b'x', makepath=True)
    self.assertEqual(calls[-1][0], b'x')

  def test_data_watch_stops_on_false(self):
    path = '/monolith/stop'
    self.client.create(path, b'0', makepath=True)
    calls = []

    def func(data, stat):
      calls.append(data)
      return False

    self.client.DataWatch(path, func)
    self.client.set(path, b'1')
    self.assertEqual(calls, [b'0'])

  def test_children_watch(self):
    self.client.ensure_path('/monolith/zk')
    calls = []
    self.client.ChildrenWatch('/monolith/zk',
                              lambda children, event: calls.append((children, event)),
                              send_event=True)
    self.client.create('/monolith/zk/data', makepath=True)
    data_calls = []
    self.client.DataWatch('/monolith/zk/data',
                          lambda data, state, event: data_calls.append((data, event)))
    self.client.create('/monolith/zk/test')
    self.client.set('/monolith/zk/data', b'x')
    self.client.delete('/monolith/zk/data')

    self.assertEqual([c for c, _ in calls], [[], ['data'], ['data', 'test'], ['test']])
    self.assertIsNone(calls[0][1])
    for _, event in calls[1:]:
      self.assertEqual(event.type, EventType.CHILD)
      self.assertEqual(event.path, '/monolith/zk')
    self.assertEqual([(d, e.type if e else None) for d, e in data_calls],
                     [(b'', None), (b'x', EventType.CHANGED), (None, EventType.DELETED)])

  def test_children_watch_missing_node_and_decorator(self):
    calls = []
    watch = self.client.ChildrenWatch('/monolith/none', calls.append)
    self.assertTrue(watch._stopped)  # kazoo stops a children watch on a missing node
    self.assertEqual(calls, [])

    self.client.ensure_path('/monolith/dec')

    @self.client.ChildrenWatch('/monolith/dec')
    def on_children(children):
      calls.append(children)

    self.client.create('/monolith/dec/a')
    self.client.delete('/monolith/dec', recursive=True)
    self.client.create('/monolith/dec/b', makepath=True)  # watch ended with the node
    self.assertEqual(calls, [[], ['a'], []])

  def test_callback_exception_does_not_break_watch(self):
    self.client.ensure_path('/monolith/err')
    seen = []

    def func(children):
      seen.append(children)
      raise RuntimeError('boom')

    self.client.ChildrenWatch('/monolith/err', func)
    self.client.create('/monolith/err/a')  # must not raise into the writer
    self.assertEqual(seen, [[], ['a']])

  def test_listeners_and_session_expiry(self):
    client = FakeKazooClient()
    states = []
    client.add_listener(states.append)
    client.start()
    client.create('/p', b'p')
    client.create('/e', b'e', ephemeral=True)
    client.expire_session()
    self.assertEqual(states, [KazooState.CONNECTED, KazooState.LOST, KazooState.CONNECTED])
    self.assertIsNotNone(client.exists('/p'))
    self.assertIsNone(client.exists('/e'))
    client.stop()

  def test_election(self):
    election = self.client.Election('/monolith/election', 'me')
    ran = []
    election.run(ran.append, 1)
    self.assertEqual(ran, [1])
    election.cancel()
    election.run(ran.append, 2)
    self.assertEqual(ran, [1])


if __name__ == '__main__':
  absltest.main()
