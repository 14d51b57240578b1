import time

from absl.testing import flagsaver
import tensorflow as tf

from monolith.native_training import logging_ops
from monolith.native_training.runtime.ops import logging_ops_pb2


class LoggingOpsTest(tf.test.TestCase):

  def test_tensors_timestamp(self):
    x = tf.constant([1, 2])
    (x1,), ts1 = logging_ops.tensors_timestamp([x])
    with tf.control_dependencies([ts1]):
      y = tf.identity(x1)
    (x2,), ts2 = logging_ops.tensors_timestamp([y])
    before = int(time.time() * 1e6)
    with self.session() as sess:
      v1, v2, t1, t2 = sess.run([x1, x2, ts1, ts2])
    after = int(time.time() * 1e6)
    self.assertAllEqual(v1, [1, 2])
    self.assertAllEqual(v2, [1, 2])
    self.assertGreaterEqual(t2, t1)
    # Microseconds since the epoch, taken while the session ran.
    self.assertBetween(t1, before, after)

  def test_emit_timer(self):
    op = logging_ops.emit_timer("test", 0.0, tags={"a": "b", "c": "d"})
    self.assertEqual(op.get_attr("tags"), b"a=b|c=d")
    self.assertEqual(op.get_attr("key"), b"test")
    with self.session() as sess:
      sess.run(op)
      sess.run(logging_ops.emit_timer("no_tags", tf.constant(1.5)))

  def test_emit_timer_rejects_non_scalar(self):
    with self.session() as sess:
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "value must be a scalar"):
        sess.run(logging_ops.emit_timer("test", tf.constant([1.0, 2.0])))

  def test_machine_health(self):
    info = logging_ops.machine_info(mem_limit=1 << 62)
    with self.session() as sess:
      self.assertEqual(sess.run(logging_ops.check_machine_health(info)), b"")

  def test_machine_health_default_limit_is_healthy(self):
    with self.session() as sess:
      health = logging_ops.check_machine_health(logging_ops.machine_info())
      self.assertEqual(sess.run(health), b"")

  def test_machine_health_oom(self):
    info = logging_ops.machine_info(mem_limit=0)
    with self.session() as sess:
      serialized = sess.run(logging_ops.check_machine_health(info))
    result = logging_ops_pb2.MachineHealthResult()
    result.ParseFromString(serialized)
    self.assertEqual(result.status, logging_ops_pb2.MachineHealthResult.OUT_OF_MEMORY)
    self.assertRegex(result.message, r"^Memory limit exceeded. Current: \d+, Limit: 0$")

  def test_machine_health_oom_from_flag(self):
    with flagsaver.flagsaver(monolith_default_machine_info_mem_limit=0):
      info = logging_ops.machine_info()
    with self.session() as sess:
      result = logging_ops_pb2.MachineHealthResult.FromString(
          sess.run(logging_ops.check_machine_health(info)))
    self.assertEqual(result.status, logging_ops_pb2.MachineHealthResult.OUT_OF_MEMORY)

  def test_first_machine_info_wins(self):
    # Same shared name: the resource created first keeps its limit (0, i.e. always OOM).
    first = logging_ops.machine_info(mem_limit=0, shared_name="shared_info")
    second = logging_ops.machine_info(mem_limit=1 << 62, shared_name="shared_info")
    with self.session() as sess:
      sess.run(first)
      self.assertNotEqual(sess.run(logging_ops.check_machine_health(second)), b"")


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
