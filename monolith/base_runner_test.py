import os

import tensorflow as tf

from monolith import base_runner


class _Runner(base_runner.BaseRunner):

  def __init__(self, logs, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.logs = logs

  def run(self):
    return self.logs


def _read_scalars(log_dir):
  """[(step, tag, value)] of every event file under log_dir."""
  scalars = []
  for name in sorted(tf.io.gfile.listdir(log_dir)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
      for value in event.summary.value:
        scalars.append((event.step, value.tag, value.simple_value))
  return scalars


class BaseRunnerTest(tf.test.TestCase):

  def test_run_is_abstract(self):
    runner = base_runner.BaseRunner('any', positional=1)
    with self.assertRaises(NotImplementedError):
      runner.run()
    self.assertEqual(_Runner({'a': 1}, 'x', k=2).run(), {'a': 1})

  def test_write_summary(self):
    log_dir = self.create_tempdir().full_path
    runner = _Runner({})
    # FileWriter (the TF1 writer runners use) needs graph mode.
    with tf.Graph().as_default():
      writer = tf.compat.v1.summary.FileWriter(log_dir)
      runner.write_summary({'loss': 0.5, 'auc': 0.75}, writer, 10)
      runner.write_summary({'loss': 0.25}, writer, 20)
      writer.close()
    self.assertEqual(_read_scalars(log_dir),
                     [(10, 'loss', 0.5), (10, 'auc', 0.75), (20, 'loss', 0.25)])

  def test_write_summary_keeps_the_default_graph(self):
    graph = tf.Graph()
    with graph.as_default():
      writer = tf.compat.v1.summary.FileWriter(self.create_tempdir().full_path)
      _Runner({}).write_summary({'loss': 1.0}, writer, 1)
      writer.close()
      self.assertIs(tf.compat.v1.get_default_graph(), graph)
      self.assertEmpty(graph.get_operations())


if __name__ == '__main__':
  tf.test.main()
