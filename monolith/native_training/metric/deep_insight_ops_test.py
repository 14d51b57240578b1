import json
import os
import socket
import time

import tensorflow as tf

from monolith.native_training.metric import deep_insight_ops


def _v1(client, uids, sample_ratio=1.0, return_msgs=True, use_zero_train_time=True, **kwargs):
  n = len(uids)
  args = dict(uids=tf.constant(uids, tf.int64),
              req_times=tf.constant([1600000000 + i for i in range(n)], tf.int64),
              labels=tf.constant([float(i % 2) for i in range(n)]),
              preds=tf.constant([0.25 * (i % 4) for i in range(n)]),
              sample_rates=tf.constant([0.5] * n))
  args.update(kwargs)
  return deep_insight_ops.write_deep_insight(client,
                                             model_name="test_model",
                                             target="ctr_head",
                                             sample_ratio=sample_ratio,
                                             return_msgs=return_msgs,
                                             use_zero_train_time=use_zero_train_time,
                                             **args)


class DeepInsightOpsTest(tf.test.TestCase):

  def test_client_defaults(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)
    self.assertEqual(client.op.type, "MonolithCreateDeepInsightClient")
    self.assertEqual(client.op.get_attr("container"), socket.gethostname().encode())
    self.assertEqual(client.op.get_attr("filename"), b"")
    self.assertTrue(client.op.get_attr("is_fake"))
    self.assertFalse(client.op.get_attr("enable_metrics_counter"))

  def test_v1_fields(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)
    msgs = _v1(client, [11, 12, 13])
    with self.session() as sess:
      values = sess.run(msgs)
    self.assertEqual(len(values), 3)
    for i, raw in enumerate(values):
      msg = json.loads(raw)
      self.assertEqual(
          msg, {
              "uid": 11 + i,
              "req_time": 1600000000 + i,
              "labels": [float(i % 2)],
              "preds": [0.25 * (i % 4)],
              "sample_rates": [0.5],
              "targets": ["ctr_head"],
              "model_name": "test_model",
              "train_time": 0,
          })
      # Compact JSON, keys in lexicographic order.
      self.assertEqual(raw.decode(), json.dumps(msg, sort_keys=True, separators=(",", ":")))

  def test_v1_train_time(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)
    msgs = _v1(client, [1, 2], use_zero_train_time=False)
    before = int(time.time())
    with self.session() as sess:
      values = [json.loads(m) for m in sess.run(msgs)]
    after = int(time.time())
    self.assertBetween(values[0]["train_time"], before, after)
    # Taken once per batch.
    self.assertEqual(values[0]["train_time"], values[1]["train_time"])

  def test_v1_sampling(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)
    uids = list(range(0, 20000, 1000))  # buckets 0, 1000, ..., 9000, twice
    all_msgs = _v1(client, uids, sample_ratio=1.0)
    none_msgs = _v1(client, uids, sample_ratio=0.0)
    some_msgs = _v1(client, uids, sample_ratio=0.35)
    hidden_msgs = _v1(client, uids, sample_ratio=1.0, return_msgs=False)
    with self.session() as sess:
      all_v, none_v, some_v, hidden_v = sess.run([all_msgs, none_msgs, some_msgs, hidden_msgs])
    self.assertTrue(all(all_v))
    self.assertEqual(list(none_v), [b""] * len(uids))
    self.assertEqual(list(hidden_v), [b""] * len(uids))
    # uid mod 10000 < 3500: buckets 0, 1000, 2000, 3000.
    sampled = [uid for uid, m in zip(uids, some_v) if m]
    self.assertEqual(sampled, [0, 1000, 2000, 3000, 10000, 11000, 12000, 13000])
    self.assertEqual([json.loads(m)["uid"] for m in some_v if m], sampled)

  def test_v2_targets_and_extra_fields(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)
    msgs = deep_insight_ops.write_deep_insight_v2(
        client,
        req_times=tf.constant([100, 200], tf.int64),
        labels=tf.constant([[1.0, 0.0], [0.5, 2.0], [0.0, 1.0]]),
        preds=tf.constant([[0.75, 0.25], [0.5, 1.5], [0.125, 0.875]]),
        sample_rates=tf.constant([[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]]),
        extra_fields_values=[
            tf.constant([7, 8], tf.int64),
            tf.constant([1.5, -2.5]),
            tf.constant([3, 4], tf.int64),
            tf.constant(["a", "b\"c"]),
            tf.constant([1, 2], tf.int32),  # unsupported dtype: ignored
        ],
        extra_fields_keys=["uid", "dwell", "item_id", "page", "ignored"],
        model_name="mt_model",
        targets=["ctr", "cvr", "finish"],
        sample_ratio=1.0,
        return_msgs=True,
        use_zero_train_time=True)
    with self.session() as sess:
      values = [json.loads(m) for m in sess.run(msgs)]
    self.assertEqual(
        values[0], {
            "uid": 7,
            "req_time": 100,
            "targets": ["ctr", "cvr", "finish"],
            "labels": [1.0, 0.5, 0.0],
            "preds": [0.75, 0.5, 0.125],
            "sample_rates": [1.0, 0.5, 0.25],
            "extra_float": {"dwell": 1.5},
            "extra_int": {"item_id": 3},
            "extra_str": {"page": "a"},
            "model_name": "mt_model",
            "train_time": 0,
        })
    self.assertEqual(values[1]["uid"], 8)
    self.assertEqual(values[1]["labels"], [0.0, 2.0, 1.0])
    self.assertEqual(values[1]["preds"], [0.25, 1.5, 0.875])
    self.assertEqual(values[1]["extra_str"], {"page": "b\"c"})
    self.assertEqual(values[1]["extra_float"], {"dwell": -2.5})

  def test_v2_sampling(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)

    def write(ratio):
      return deep_insight_ops.write_deep_insight_v2(
          client,
          req_times=tf.constant([1, 2, 3], tf.int64),
          labels=tf.ones([2, 3]),
          preds=tf.ones([2, 3]),
          sample_rates=tf.ones([2, 3]),
          extra_fields_values=[tf.constant([5, 9999, 10005], tf.int64)],
          extra_fields_keys=["uid"],
          model_name="m",
          targets=["a", "b"],
          sample_ratio=ratio,
          return_msgs=True)

    with self.session() as sess:
      full, empty, low = sess.run([write(1.0), write(0.0), write(0.001)])
    self.assertTrue(all(full))
    self.assertEqual(list(empty), [b"", b"", b""])
    # 0.001 -> buckets 0..9: uids 5 and 10005 (bucket 5), not 9999.
    self.assertEqual([bool(m) for m in low], [True, False, True])

  def test_dump_file(self):
    dump = os.path.join(self.get_temp_dir(), "not", "yet", "created", "di.dump")
    with tf.Graph().as_default():
      client = deep_insight_ops.deep_insight_client(is_fake=True, dump_filename=dump)
      msgs = _v1(client, [0, 5000, 9999], sample_ratio=0.5)
      with tf.compat.v1.Session() as sess:
        first = sess.run(msgs)
        second = sess.run(msgs)
    # Closing the session destroyed the client, which flushes the file.
    records = list(tf.compat.v1.io.tf_record_iterator(dump))
    self.assertEqual(records, list(first) + list(second))
    self.assertEqual(len(records), 6)
    self.assertEqual(json.loads(records[0])["uid"], 0)
    self.assertEqual(records[1], b"")  # unsampled rows are dumped as empty records
    self.assertEqual(records[2], b"")

  def test_dump_file_written_even_without_return_msgs(self):
    dump = os.path.join(self.get_temp_dir(), "hidden.dump")
    with tf.Graph().as_default():
      client = deep_insight_ops.deep_insight_client(dump_filename=dump)
      msgs = _v1(client, [3, 4], return_msgs=False)
      with tf.compat.v1.Session() as sess:
        self.assertEqual(list(sess.run(msgs)), [b"", b""])
    records = [json.loads(r) for r in tf.compat.v1.io.tf_record_iterator(dump)]
    self.assertEqual([r["uid"] for r in records], [3, 4])

  def test_unwritable_dump_file(self):
    blocker = os.path.join(self.get_temp_dir(), "a_file")
    with open(blocker, "w") as f:
      f.write("x")
    client = deep_insight_ops.deep_insight_client(dump_filename=os.path.join(blocker, "di.dump"))
    with self.session() as sess:
      with self.assertRaisesRegex(tf.errors.OpError, "deep insight dump file"):
        sess.run(client)

  def test_v1_mismatched_lengths(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)
    msgs = _v1(client, [1, 2, 3], preds=tf.constant([0.5, 0.5]))
    with self.session() as sess:
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  r"preds must be a vector of labels's batch size 3"):
        sess.run(msgs)
    # uids shorter than labels.
    msgs = _v1(client, [1, 2],
               labels=tf.constant([1.0, 0.0, 1.0]),
               preds=tf.constant([1.0, 0.0, 1.0]),
               req_times=tf.constant([1, 2, 3], tf.int64),
               sample_rates=tf.constant([1.0, 1.0, 1.0]))
    with self.session() as sess:
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"uids must be a vector"):
        sess.run(msgs)

  def test_v2_bad_inputs(self):
    client = deep_insight_ops.deep_insight_client(is_fake=True)

    def write(labels_shape=(2, 3), fields=None, keys=None, targets=("a", "b")):
      fields = fields if fields is not None else [tf.constant([1, 2, 3], tf.int64)]
      return deep_insight_ops.write_deep_insight_v2(client,
                                                    req_times=tf.constant([1, 2, 3], tf.int64),
                                                    labels=tf.ones(labels_shape),
                                                    preds=tf.ones([2, 3]),
                                                    sample_rates=tf.ones([2, 3]),
                                                    extra_fields_values=fields,
                                                    extra_fields_keys=keys or ["uid"],
                                                    model_name="m",
                                                    targets=list(targets),
                                                    sample_ratio=1.0,
                                                    return_msgs=True)

    with self.session() as sess:
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "requires an int64 extra field named uid"):
        sess.run(write(fields=[tf.constant([1.0, 2.0, 3.0])], keys=["uid"]))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  r"extra_fields_values\[0\] \(uid\) must be a vector"):
        sess.run(write(fields=[tf.constant([1, 2], tf.int64)]))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  r"labels must have shape \[len\(targets\)=3"):
        sess.run(write(targets=("a", "b", "c")))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "preds shape"):
        sess.run(write(labels_shape=(2, 4)))


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
