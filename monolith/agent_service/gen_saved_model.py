"""Exports small, deterministic demo SavedModels for the agent's tests, benchmark and README.

Each export is `<base_path>/<sub_model>/<version>/` (the layout TF Serving and the agent expect)
with two signatures:
  * `serving_default`: `instances` (string [N], e.g. serialized Instances as `tfs_client` sends
    them) -> `scores` (float [N]) = sigmoid(embedding[hash(instance)] + bias);
  * `predict`: `x` (float [N, 4]) -> `y` (float [N, 1]) = x @ w + bias.
The weights depend only on `seed`, so a test can recompute every answer in process.
"""

import os
from typing import Sequence

from absl import app, flags
import numpy as np
import tensorflow as tf

NUM_BUCKETS = 1024
INPUT_DIM = 4


class DemoModel(tf.Module):

  def __init__(self, seed: int = 0):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.embedding = tf.Variable(rng.normal(size=(NUM_BUCKETS,)).astype(np.float32))
    self.w = tf.Variable(rng.normal(size=(INPUT_DIM, 1)).astype(np.float32))
    self.bias = tf.Variable(np.float32(0.25))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='instances')])
  def serve(self, instances):
    buckets = tf.strings.to_hash_bucket_fast(instances, NUM_BUCKETS)
    return {'scores': tf.sigmoid(tf.gather(self.embedding, buckets) + self.bias)}

  @tf.function(input_signature=[tf.TensorSpec([None, INPUT_DIM], tf.float32, name='x')])
  def linear(self, x):
    return {'y': tf.matmul(x, self.w) + self.bias}


def export_demo_model(export_dir: str, seed: int = 0) -> str:
  """Writes one SavedModel version to `export_dir` (which must not exist yet)."""
  model = DemoModel(seed)
  tf.saved_model.save(model,
                      export_dir,
                      signatures={
                          'serving_default': model.serve,
                          'predict': model.linear
                      })
  return export_dir


def export_demo_models(base_path: str,
                       sub_models: Sequence[str] = ('entry',),
                       version: int = 1,
                       seed: int = 0) -> str:
  """Exports `<base_path>/<sub_model>/<version>` for every sub model; existing ones are kept."""
  for sub_model in sub_models:
    export_dir = os.path.join(base_path, sub_model, str(version))
    if not os.path.exists(os.path.join(export_dir, 'saved_model.pb')):
      export_demo_model(export_dir, seed)
  return base_path


FLAGS = flags.FLAGS


def define_flags():
  # Defined only when run as a program: tests import this module next to other CLIs' flags.
  flags.DEFINE_string('base_path', None, 'Directory receiving <sub_model>/<version> exports.')
  flags.DEFINE_list('sub_models', ['entry'], 'Sub models to export, e.g. entry,ps_0.')
  flags.DEFINE_integer('version', 1, 'Version directory name.')
  flags.DEFINE_integer('seed', 0, 'Seed of the weights.')


def main(argv):
  del argv
  if not FLAGS.base_path:
    raise app.UsageError('--base_path is required')
  export_demo_models(FLAGS.base_path, FLAGS.sub_models, FLAGS.version, FLAGS.seed)
  for sub_model in FLAGS.sub_models:
    print(os.path.join(FLAGS.base_path, sub_model, str(FLAGS.version)))


def cli():
  define_flags()
  app.run(main)


if __name__ == '__main__':
  cli()
