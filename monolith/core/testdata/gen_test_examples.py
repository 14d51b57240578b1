"""Writes the core tests' tf.Example TFRecord file (see test_examples.py for its content)."""

from absl import app
from absl import flags
from absl import logging

from monolith.core.testdata import test_examples

OUTPUT = flags.DEFINE_string('output', None, 'Path of the TFRecord file to write.', required=True)
NUM_EXAMPLES = flags.DEFINE_integer('num_examples', 8, 'Number of examples to write.')


def main(argv):
  del argv
  test_examples.write_examples(OUTPUT.value, NUM_EXAMPLES.value)
  logging.info('Wrote %d examples to %s', NUM_EXAMPLES.value, OUTPUT.value)


if __name__ == '__main__':
  app.run(main)
