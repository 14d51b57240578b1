import threading

import tensorflow as tf
from tensorflow.python.training import monitored_session

from monolith.native_training import barrier_ops
from monolith.native_training.test_utils import wait_for


class BarrierOpsTest(tf.test.TestCase):

  def test_basic(self):
    op = barrier_ops.BarrierOp(2, False)
    with self.session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.compat.v1.local_variables_initializer())
      self.assertTrue(op.is_barrier_removed(sess))
      op.place_barrier(sess)
      self.assertTrue(op.is_barrier_placed(sess))
      self.assertEqual(op.get_blocked_indices(sess), [0])
      self.assertEqual(op.get_unblocked_indices(sess), [1])
      with self.assertRaises(barrier_ops.BarrierAlreadyPlacedError):
        op.place_barrier(sess)
      op.remove_barrier(sess)
      self.assertTrue(op.is_barrier_removed(sess))
      self.assertTrue(op.is_none_blocked(sess))

  def test_bad_index(self):
    op = barrier_ops.BarrierOp(2)
    with self.session() as sess:
      sess.run(tf.compat.v1.local_variables_initializer())
      for index in (0, 2, -1):
        with self.assertRaisesRegex(
            ValueError, r"Index \[{}\] must be non-negative and less than capacity \[2\]".format(
                index)):
          op.wait_until_barrier_removed(sess, index)

  def _run_worker(self, sess, op, steps):
    global_step = tf.compat.v1.train.get_or_create_global_step()
    train_op = global_step.assign_add(1)
    hooked = monitored_session._HookedSession(sess, [barrier_ops.BarrierHook(1, op)])

    def work():
      for _ in range(steps):
        hooked.run(train_op)

    return threading.Thread(target=work), global_step

  def test_barrier_hook_not_blocked(self):
    op = barrier_ops.BarrierOp(2, wait_seconds=0.05)
    with self.session() as sess:
      thread, global_step = self._run_worker(sess, op, 5)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.compat.v1.local_variables_initializer())
      thread.start()
      thread.join()
      self.assertEqual(sess.run(global_step), 5)

  def test_barrier_hook_blocked(self):
    actions = []
    op = barrier_ops.BarrierOp(2,
                               wait_seconds=0.05,
                               barrier_callbacks=[lambda action, sess: actions.append(action)])
    with self.session() as sess:
      thread, global_step = self._run_worker(sess, op, 5)
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(tf.compat.v1.local_variables_initializer())
      op.place_barrier(sess, action="test_action")
      thread.start()
      wait_for(lambda: op.is_all_blocked(sess))
      self.assertEqual(sess.run(global_step), 1)
      # Once by the chief when placing, once by the worker when it blocks.
      self.assertEqual(actions, ["test_action", "test_action"])
      op.remove_barrier(sess)
      thread.join()
      self.assertTrue(op.is_none_blocked(sess))
      self.assertEqual(sess.run(global_step), 5)


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
