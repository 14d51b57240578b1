import copy
import enum

from absl.testing import absltest

from monolith.core import hyperparams


class TestEnum(enum.Enum):
  A = 1
  B = 2


class _Layer:
  """Layer-style class: `__init__(self, params)` plus a `params` attribute."""

  params = None

  def __init__(self, params):
    self.got = params


class _KwargsClass:

  def __init__(self, units, activation='relu', **kwargs):
    self.units = units
    self.activation = activation
    self.kwargs = kwargs


class ParamsTest(absltest.TestCase):

  def test_define_get_set(self):
    p = hyperparams.Params()
    p.define('foo', 1, 'a number')
    p.define('bar', None, 'nothing yet')
    self.assertEqual(p.foo, 1)
    self.assertIsNone(p.bar)
    p.foo = 2
    p['bar'] = 'x'
    self.assertEqual(p['foo'], 2)
    self.assertEqual(p.bar, 'x')
    self.assertIn('foo', p)
    self.assertTrue(p.contain('bar'))
    self.assertNotIn('baz', p)
    self.assertLen(p, 2)
    self.assertEqual(dir(p), ['bar', 'foo'])
    self.assertEqual(list(p.iter_params()), [('foo', 2), ('bar', 'x')])

  def test_invalid_names(self):
    p = hyperparams.Params()
    for name in (None, '', '_foo', 'Foo', '1foo', 'foo$', '_immutable'):
      with self.assertRaises(AssertionError, msg=repr(name)):
        p.define(name, 1, '')
    p.define('foo', 1, '')
    with self.assertRaisesRegex(AttributeError, 'Parameter foo is already defined'):
      p.define('foo', 2, '')

  def test_unknown_name_suggestions(self):
    p = hyperparams.Params()
    for name in ('activation', 'activations', 'cheesecake', 'tofu'):
      p.define(name, None, '')
    with self.assertRaises(AttributeError) as e:
      p.actuvation = 1
    self.assertIn('actuvation (did you mean: [activation,activations])', str(e.exception))
    with self.assertRaises(AttributeError) as e:
      _ = p.tof
    self.assertEqual(str(e.exception), 'tof')  # Too short for suggestions.
    with self.assertRaisesRegex(AttributeError, 'cheesecakes'):
      p.get('cheesecakes')

  def test_nested_get_set_delete(self):
    p = hyperparams.Params()
    p.define('train', hyperparams.Params(), '')
    p.train.define('steps', 10, '')
    p.define('items', [hyperparams.Params()], '')
    p.items[0].define('lr', 0.1, '')
    p.define('leaf', 3, '')
    self.assertEqual(p.get('train.steps'), 10)
    self.assertIs(p.set(**{'train.steps': 20, 'items[0].lr': 0.5}), p)
    self.assertEqual(p.train.steps, 20)
    self.assertEqual(p.get('items[0].lr'), 0.5)
    with self.assertRaisesRegex(AttributeError, '^eval$'):
      p.get('eval.steps')
    with self.assertRaisesRegex(AssertionError, "Cannot introspect <class 'int'> for leaf"):
      p.get('leaf.x')
    with self.assertRaisesRegex(AttributeError, 'train.nope'):
      p.set(**{'train.nope': 1})
    p.delete('train.steps', 'leaf')
    self.assertNotIn('steps', p.train)
    self.assertNotIn('leaf', p)
    with self.assertRaises(AttributeError):
      p.delete('leaf')

  def test_freeze(self):
    p = hyperparams.Params()
    p.define('a', 1, '')
    p.define('sub', hyperparams.Params(), '')
    p.freeze()
    self.assertTrue(p.is_immutable())
    with self.assertRaisesRegex(TypeError, '^This Params instance is immutable.$'):
      p.a = 2
    with self.assertRaisesRegex(TypeError, '^This Params instance is immutable.$'):
      p.define('b', 1, '')
    with self.assertRaisesRegex(TypeError, 'This Params instance is immutable: {'):
      p.set(a=3)
    with self.assertRaisesRegex(TypeError, '^This Params instance is immutable.$'):
      p.delete('a')
    # Not recursive.
    p.sub.define('x', 1, '')
    # Quirk kept from upstream: freezing twice raises.
    with self.assertRaises(TypeError):
      p.freeze()
    # Copies keep the flag.
    self.assertTrue(p.copy().is_immutable())

  def test_copy_equality(self):
    p = hyperparams.Params()
    p.define('values', [1, 2], '')
    p.define('sub', hyperparams.Params(), '')
    p.sub.define('x', {'k': 1}, '')
    q = p.copy()
    self.assertEqual(p, q)
    q.values.append(3)
    q.sub.x['k'] = 2
    self.assertEqual(p.values, [1, 2])
    self.assertEqual(p.sub.x, {'k': 1})
    self.assertNotEqual(p, q)
    self.assertEqual(copy.deepcopy(p), p)
    self.assertNotEqual(p, {'values': [1, 2]})
    # Descriptions do not matter.
    a, b = hyperparams.Params(), hyperparams.Params()
    a.define('x', 1, 'one')
    b.define('x', 1, 'two')
    self.assertEqual(a, b)

  def test_copy_shares_tensors(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.Graph().as_default():
      t = tf.constant(1)
      p = hyperparams.Params()
      p.define('t', t, '')
      self.assertIs(p.copy().t, t)

  def test_str(self):
    opt = hyperparams.Params()
    opt.define('lr', 2, '')
    p = hyperparams.Params()
    p.define('rate', 0.5, '')
    p.define('tag', 'x', '')
    p.define('opt', opt, '')
    p.define('sizes', [1, opt], '')
    p.define('extra', {'k': opt, 'a': 'b'}, '')
    p.define('none_val', None, '')
    p.define('mode', TestEnum.B, '')
    self.assertEqual(
        str(p), '{\n'
        "  extra: {'a': 'b', 'k': {'lr': 2}}\n"
        '  mode: TestEnum.B\n'
        '  none_val: None\n'
        '  opt: {\n'
        '    lr: 2\n'
        '  }\n'
        '  rate: 0.5\n'
        "  sizes: [1, {'lr': 2}]\n"
        '  tag: "x"\n'
        '}')

  def test_copy_params_to_and_update_params(self):
    src = hyperparams.Params()
    src.define('a', 1, '')
    src.define('b', 2, '')
    src.define('sub', hyperparams.Params(), '')
    src.sub.define('c', 3, '')
    dst = hyperparams.Params()
    dst.define('a', 0, '')
    dst.define('sub', None, '')
    hyperparams.copy_params_to(src, dst, skip=['b'])
    self.assertEqual(dst.a, 1)
    self.assertEqual(dst.sub, src.sub)
    self.assertIsNot(dst.sub, src.sub)
    with self.assertRaisesRegex(AttributeError, '^b$'):
      hyperparams.copy_params_to(src, dst)

    args = {'c': 30, 'a': 10, 'other': 5}
    hyperparams.update_params(src, args)
    self.assertEqual((src.a, src.sub.c), (10, 30))
    self.assertEqual(args, {'other': 5})

  def test_allowed_kwargs(self):
    self.assertEqual(
        hyperparams.allowed_kwargs, {
            'input_dim', 'input_shape', 'batch_input_shape', 'weights', 'activity_regularizer',
            'autocast', 'implementation', 'name'
        })


class InstantiableParamsTest(absltest.TestCase):

  def test_layer_style(self):
    p = hyperparams.InstantiableParams(_Layer)
    layer = p.instantiate()
    self.assertIsInstance(layer, _Layer)
    self.assertIs(layer.got, p)

  def test_kwargs_style(self):
    p = hyperparams.InstantiableParams(_KwargsClass)
    p.define('nested', hyperparams.Params(), '')
    p.nested.define('units', 8, '')
    p.define('name', 'dense', '')
    p.define('input_dim', None, '')
    p.define('unused', 1, '')
    obj = p.instantiate()
    self.assertEqual(obj.units, 8)
    self.assertEqual(obj.activation, 'relu')
    # `name` is an allowed kwarg; `input_dim` is None so not passed; `unused` is not accepted.
    self.assertEqual(obj.kwargs, {'name': 'dense'})

  def test_missing_cls(self):
    with self.assertRaisesRegex(AssertionError, 'cls is not set'):
      hyperparams.InstantiableParams().instantiate()

  def test_copy_keeps_cls(self):
    p = hyperparams.InstantiableParams(_Layer)
    p.define('x', [1], '')
    q = p.copy()
    self.assertIsInstance(q, hyperparams.InstantiableParams)
    self.assertIs(q.cls, _Layer)
    self.assertEqual(q, p)


if __name__ == '__main__':
  absltest.main()
