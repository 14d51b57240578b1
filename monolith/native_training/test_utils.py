"""Helpers shared by the native_training tests."""
import time

from monolith.native_training import entry
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2


def wait_for(predicate, timeout=30):
  """Polls `predicate` until it holds; tests use it for state that background threads change."""
  deadline = time.time() + timeout
  while not predicate():
    if time.time() > deadline:
      raise AssertionError("condition not met within {}s".format(timeout))
    time.sleep(0.05)


def generate_test_hash_table_config(dim: int,
                                    use_float16: bool = False,
                                    learning_rate: float = 1.0) -> entry.HashTableConfigInstance:
  """A cuckoo table with one SGD segment of `dim`, zeros init, fp32 (or fp16) storage."""
  config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
  config.cuckoo.SetInParent()
  segment = config.entry_config.segments.add(dim_size=dim)
  segment.opt_config.sgd.SetInParent()
  segment.init_config.zeros.SetInParent()
  if use_float16:
    segment.comp_config.fp16.SetInParent()
  else:
    segment.comp_config.fp32.SetInParent()
  return entry.HashTableConfigInstance(config, [learning_rate])
