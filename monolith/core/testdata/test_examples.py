"""Writes the small tf.Example TFRecord files used by the core input-pipeline tests.

Example i (0-based) holds:
  uid      int64 [1]   1000 + i
  label    float [1]   i % 2
  f_a_0    int64 list  [i, i + 1000, -5]       (2-D column of slot 1; -5 exercises clamping)
  f_seq_0  int64 list  [10*i + k for k < i % 4] (sequence column of slot 2; may be empty)
  f_big_0  int64 list  [i * 7919]              (slot 3, vocab above the QR threshold)

To write a file by hand: bazel run //monolith/core:gen_test_examples -- --output=<path>
"""

from typing import List

import tensorflow as tf


def make_example(i: int) -> tf.train.Example:
  int_list = lambda values: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Example(features=tf.train.Features(
      feature={
          'uid': int_list([1000 + i]),
          'label': tf.train.Feature(float_list=tf.train.FloatList(value=[float(i % 2)])),
          'f_a_0': int_list([i, i + 1000, -5]),
          'f_seq_0': int_list([10 * i + k for k in range(i % 4)]),
          'f_big_0': int_list([i * 7919]),
      }))


def expected_f_seq(i: int) -> List[int]:
  return [10 * i + k for k in range(i % 4)]


def write_examples(path: str, num_examples: int, first: int = 0):
  """Writes examples `first .. first + num_examples - 1` to the TFRecord file `path`."""
  with tf.io.TFRecordWriter(path) as writer:
    for i in range(first, first + num_examples):
      writer.write(make_example(i).SerializeToString())

