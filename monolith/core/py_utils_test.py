import copy

from absl.testing import absltest

from monolith.core.py_utils import NestedMap


class NestedMapTest(absltest.TestCase):

  def test_attribute_access(self):
    m = NestedMap(a=1)
    m.b = 2
    self.assertEqual(m['b'], 2)
    self.assertEqual(m.a, 1)
    del m.a
    self.assertNotIn('a', m)
    with self.assertRaisesRegex(AttributeError, r"'a'; available attributes: \['b'\]"):
      _ = m.a
    with self.assertRaisesRegex(AttributeError, 'available attributes'):
      del m.a

  def test_key_checks(self):
    with self.assertRaisesRegex(AssertionError, 'must be a string'):
      NestedMap({1: 2})
    with self.assertRaisesRegex(ValueError, "Invalid NestedMap key '1a'"):
      NestedMap()['1a'] = 1
    with self.assertRaisesRegex(AssertionError, 'keys is a reserved key'):
      NestedMap(keys=1)
    with self.assertRaisesRegex(AssertionError, 'update is a reserved key'):
      NestedMap().update = 1
    # Upstream only validates the first character.
    m = NestedMap()
    m['a-b'] = 1
    self.assertEqual(m['a-b'], 1)

  def test_copies(self):
    leaf = {'plain': 1}  # Plain dicts are leaves; lists are structure.
    m = NestedMap(x=NestedMap(y=leaf), z=[NestedMap(w=2)])
    shallow = m.copy()
    self.assertIsInstance(shallow, NestedMap)
    self.assertIs(shallow.x, m.x)
    deep = copy.deepcopy(m)
    self.assertIsNot(deep.x, m.x)
    self.assertIsNot(deep.z[0], m.z[0])
    self.assertIs(deep.x.y, leaf)  # Leaves are shared.
    self.assertEqual(deep, m)

  def test_nested_access(self):
    m = NestedMap.FromNestedDict({'a': {'b': [{'c': 1}]}, 't': ({'u': 2},)})
    self.assertIsInstance(m.a, NestedMap)
    self.assertIsInstance(m.a.b[0], NestedMap)
    self.assertIsInstance(m.t[0], NestedMap)
    self.assertEqual(m.GetItem('a.b'), [{'c': 1}])
    with self.assertRaises(KeyError):
      m.GetItem('a.x')
    self.assertEqual(m.Get('a.x', 7), 7)
    m.Set('p.q.r', 3)
    self.assertEqual(m.p.q.r, 3)
    m.leaf = 5
    with self.assertRaisesRegex(ValueError, 'Sub key "leaf" is of type <class \'int\'>'):
      m.Set('leaf.x', 1)

  def test_flatten_pack_transform(self):
    m = NestedMap(b=[1, NestedMap(c=2)], a=NestedMap(d=3), e={'plain': 4})
    self.assertEqual(m.Flatten(), [3, 1, 2, {'plain': 4}])
    self.assertEqual(m.FlattenItems(), [('a.d', 3), ('b[0]', 1), ('b[1].c', 2),
                                        ('e', {'plain': 4})])
    packed = m.Pack(['A', 'B', 'C', 'D'])
    self.assertEqual(packed, NestedMap(a=NestedMap(d='A'), b=['B', NestedMap(c='C')], e='D'))
    with self.assertRaisesRegex(AssertionError, 'Pack expects 4 leaves, got 1'):
      m.Pack([1])
    doubled = NestedMap(x=1, y=[2]).Transform(lambda v: v * 2)
    self.assertEqual(doubled, NestedMap(x=2, y=[4]))
    self.assertTrue(m.IsCompatible(packed))
    self.assertFalse(m.IsCompatible(NestedMap(a=1)))

  def test_filter(self):
    m = NestedMap(a=1, b=NestedMap(c=2, d=3), e=[4, 5], f=NestedMap(g=6))
    odd = m.Filter(lambda v: v % 2 == 1)
    # `f` becomes empty through filtering and is dropped.
    self.assertEqual(odd, NestedMap(a=1, b=NestedMap(d=3), e=[5]))
    by_key = m.FilterKeyVal(lambda k, _: k.startswith('b'))
    self.assertEqual(by_key, NestedMap(b=NestedMap(c=2, d=3)))

  def test_debug_string(self):
    m = NestedMap(long_name=1, b=NestedMap(c=2))
    self.assertEqual(m.DebugString(), 'b.c       2\nlong_name 1')


if __name__ == '__main__':
  absltest.main()
