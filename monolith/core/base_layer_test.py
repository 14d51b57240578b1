import tensorflow as tf

from monolith.core import base_layer


class _Dense(base_layer.BaseLayer):

  def __init__(self, params):
    super().__init__(params)
    self.p = params

  def fprop(self, x):
    return x * 2

  @property
  def broken(self):
    raise AttributeError('broken property')


class BaseLayerTest(tf.test.TestCase):

  def test_create_child(self):
    layer_p = base_layer.BaseLayer.params()
    layer_p.name = 'test'
    layer = layer_p.instantiate()
    layer._disable_create_child = False
    layer.p = layer_p
    layer.create_child('a', layer_p.copy())
    self.assertIn('a', layer.children)
    self.assertIsInstance(layer.a, base_layer.BaseLayer)

  def test_create_children(self):
    layer_p = base_layer.BaseLayer.params()
    layer_p.name = 'test'
    layer = layer_p.instantiate()
    layer._disable_create_child = False
    child_a, child_b = base_layer.BaseLayer.params(), base_layer.BaseLayer.params()
    child_a.name = ''
    child_b.name = 'named'
    layer.create_children('a', [child_a, child_b])
    self.assertLen(layer.a, 2)
    self.assertEqual(child_a.name, 'a_0')
    self.assertEqual(child_b.name, 'named')

  def test_child_inherits_parent_name(self):
    p = _Dense.params()
    p.name = 'parent'
    layer = p.instantiate()
    child_p = _Dense.params()
    child_p.name = ''
    layer.create_child('inner', child_p)
    self.assertEqual(layer.inner.p.name, 'parent')
    self.assertEqual(layer.inner(3), 6)

  def test_default_name_and_missing_name(self):
    self.assertEqual(_Dense.params().name, '_Dense')
    p = _Dense.params()
    p.name = ''
    with self.assertRaisesRegex(AssertionError, 'must have a "name"'):
      p.instantiate()

  def test_getattr_errors(self):
    p = base_layer.BaseLayer.params()
    layer = p.instantiate()
    with self.assertRaisesRegex(AttributeError, 'nope is not a sub-layer of'):
      _ = layer.nope
    with self.assertRaisesRegex(NotImplementedError, 'Abstract method of'):
      layer()
    dense_p = _Dense.params()
    dense = dense_p.instantiate()
    with self.assertRaisesRegex(AttributeError, 'broken property'):
      _ = dense.broken

  def test_layer_loss_per_graph(self):
    g1, g2 = tf.Graph(), tf.Graph()
    with g1.as_default():
      loss = tf.constant(1.0)
      base_layer.add_layer_loss('dense', loss)
      self.assertIs(base_layer.get_layer_loss()['dense'], loss)
    with g2.as_default():
      self.assertEqual(base_layer.get_layer_loss(), {})

  def test_get_uname(self):
    self.assertEqual(base_layer.get_uname('Layer'), 'Layer')
    self.assertEqual(base_layer.get_uname('Layer'), 'Layer')


if __name__ == '__main__':
  tf.test.main()
