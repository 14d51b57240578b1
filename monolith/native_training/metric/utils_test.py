import json
import os
from unittest import mock

import tensorflow as tf

from monolith.native_training.metric import deep_insight_ops
from monolith.native_training.metric import utils


def _features():
  return {
      "uid": tf.constant([[1], [2], [3]], tf.int64),
      "req_time": tf.constant([[100], [101], [102]], tf.int64),
      "sample_rate": tf.constant([[0.5], [0.5], [0.25]]),
      "page": tf.constant(["a", "b", "c"]),
  }


class MetricUtilsTest(tf.test.TestCase):

  def test_basic_passes_reshaped_features(self):
    with mock.patch.object(deep_insight_ops, "write_deep_insight",
                           return_value=tf.constant([""])) as write:
      utils.write_deep_insight(_features(), 0.01, "model", tf.constant([1.0, 0.0, 1.0]),
                               tf.constant([0.5, 0.5, 0.5]), target="ctr_head")
    kwargs = write.call_args[1]
    self.assertEqual(kwargs["model_name"], "model")
    self.assertEqual(kwargs["target"], "ctr_head")
    self.assertFalse(kwargs["return_msgs"])  # not fake: no dump file, no kafka
    with self.session() as sess:
      self.assertAllEqual(sess.run(kwargs["uids"]), [1, 2, 3])
      self.assertAllEqual(sess.run(kwargs["req_times"]), [100, 101, 102])
      self.assertAllEqual(sess.run(kwargs["sample_rates"]), [0.5, 0.5, 0.25])

  def test_no_req_time_is_no_op(self):
    features = _features()
    del features["req_time"]
    op = utils.write_deep_insight(features, 1.0, "model", tf.constant([1.0]), tf.constant([1.0]))
    self.assertEqual(op.type, "NoOp")

  def test_v1_dump_file(self):
    dump = os.path.join(self.get_temp_dir(), "v1", "dump.tfrecord")
    msgs = utils.write_deep_insight(_features(), 1.0, "model", tf.constant([1.0, 0.0, 1.0]),
                                    tf.constant([0.5, 0.25, 0.75]), target="head",
                                    dump_filename=dump)
    with tf.compat.v1.Session() as sess:
      values = [json.loads(m) for m in sess.run(msgs)]  # fake mode returns the messages
    # Closing the session destroyed the client, which flushed the dump file.
    self.assertEqual([v["uid"] for v in values], [1, 2, 3])
    self.assertEqual([v["targets"] for v in values], [["head"]] * 3)
    self.assertEqual([v["preds"] for v in values], [[0.5], [0.25], [0.75]])
    records = [json.loads(r) for r in tf.compat.v1.io.tf_record_iterator(dump)]
    self.assertEqual(records, values)

  def test_v2_targets_default_sample_rates_and_keys_not_mutated(self):
    keys = ["page"]
    msgs = utils.write_deep_insight(_features(),
                                    1.0,
                                    "model",
                                    targets=["ctr", "cvr"],
                                    labels_list=[tf.constant([1.0, 0.0, 1.0]),
                                                 tf.constant([0.0, 0.0, 1.0])],
                                    preds_list=[tf.constant([0.5, 0.5, 0.5]),
                                                tf.constant([0.25, 0.25, 0.25])],
                                    extra_fields_keys=keys,
                                    enable_kafka_metrics=True)
    self.assertEqual(keys, ["page"])
    with self.session() as sess:
      values = [json.loads(m) for m in sess.run(msgs)]
    self.assertEqual(values[2]["uid"], 3)
    self.assertEqual(values[2]["targets"], ["ctr", "cvr"])
    self.assertEqual(values[2]["labels"], [1.0, 1.0])
    self.assertEqual(values[2]["preds"], [0.5, 0.25])
    self.assertEqual(values[2]["sample_rates"], [0.25, 0.25])  # the feature, per target
    self.assertEqual(values[1]["extra_str"], {"page": "b"})


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
