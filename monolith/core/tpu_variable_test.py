import tensorflow as tf

from monolith.core.tpu_variable import ReplicatedVariable

tf.compat.v1.disable_eager_execution()


class ReplicatedVariableTest(tf.test.TestCase):

  def test_outside_tpu_uses_primary(self):
    with tf.Graph().as_default():
      replicas = [
          tf.compat.v1.get_variable('v_%d' % i, initializer=tf.constant([1.0, 2.0]),
                                    use_resource=True) for i in range(2)
      ]
      var = ReplicatedVariable('v', replicas)
      self.assertEqual(var.name, 'v')
      self.assertEqual(var.dtype, tf.float32)
      self.assertEqual(var.shape.as_list(), [2])
      self.assertEqual(var.get_shape().as_list(), [2])
      self.assertIs(var.get(), replicas[0])
      self.assertIs(var.graph, replicas[0].graph)
      self.assertIsNone(var.constraint)
      doubled = tf.convert_to_tensor(var) * 2
      add = var.assign_add([1.0, 1.0])
      sub = var.assign_sub([0.5, 0.5], read_value=False)
      assign = var.assign([7.0, 8.0])
      with self.session() as sess:
        sess.run(var.initializer)
        self.assertAllClose(sess.run(doubled), [2.0, 4.0])
        self.assertAllClose(sess.run(add), [2.0, 3.0])
        sess.run(sub)
        self.assertAllClose(sess.run(var.read_value()), [1.5, 2.5])
        sess.run(assign)
        self.assertAllClose(sess.run(replicas[0]), [7.0, 8.0])
        # Outside a TPU computation only the primary is touched.
        self.assertAllClose(sess.run(replicas[1]), [1.0, 2.0])

  def test_needs_variables(self):
    with self.assertRaisesRegex(AssertionError, 'needs at least one variable'):
      ReplicatedVariable('v', [])


if __name__ == '__main__':
  tf.test.main()
