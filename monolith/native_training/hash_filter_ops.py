"""Hash filters: occurrence-threshold admission of new ids into hash tables, their checkpoint
listeners and the gradient intercept."""
from typing import List

from absl import logging
import tensorflow as tf

from monolith.native_training import basic_restore_hook
from monolith.native_training import save_utils
from monolith.native_training.runtime.ops import gen_monolith_ops

HASH_FILTER_CAPACITY = 300000000
HASH_FILTER_SPLIT_NUM = 7


class FilterType(object):
  SLIDING_HASH_FILTER = 'sliding_hash_filter'
  PROBABILISTIC_FILTER = 'probabilistic_filter'
  NO_FILTER = 'no_filter'


def create_dummy_hash_filter(name_suffix: str = "0") -> tf.Tensor:
  """A filter that admits every id."""
  return gen_monolith_ops.monolith_dummy_hash_filter(shared_name="DummyHashFilter" +
                                                     name_suffix)


def create_hash_filter(capacity: int,
                       split_num: int,
                       config: bytes = b"",
                       name_suffix: str = "") -> tf.Tensor:
  """A sliding hash filter; `config` is a serialized SlotOccurrenceThresholdConfig."""
  return gen_monolith_ops.monolith_hash_filter(capacity=capacity,
                                               split_num=split_num,
                                               config=config,
                                               shared_name="MonolithHashFilter" + name_suffix)


def create_probabilistic_filter(equal_probability: bool = False,
                                config: bytes = b"",
                                name_suffix: str = "") -> tf.Tensor:
  """Admits a new id with probability count/threshold (or 1-(1-p)^count when equal)."""
  return gen_monolith_ops.MonolithProbabilisticFilter(
      equal_probability=equal_probability,
      config=config,
      shared_name="MonolithProbabilisticFilter" + name_suffix)


def create_hash_filters(ps_num: int,
                        enable_hash_filter: bool,
                        config: bytes = b"",
                        filter_capacity: int = HASH_FILTER_CAPACITY,
                        filter_split_num: int = HASH_FILTER_SPLIT_NUM,
                        filter_equal_probability: bool = False,
                        filter_type: str = FilterType.SLIDING_HASH_FILTER) -> List[tf.Tensor]:
  """One filter when ps_num == 0, else one per PS (suffix "_<i>"); dummies when disabled."""
  enabled = enable_hash_filter and filter_type != FilterType.NO_FILTER
  suffixes = [""] if ps_num == 0 else ["_{}".format(i) for i in range(ps_num)]
  filters = []
  for suffix in suffixes:
    if enabled and filter_type == FilterType.PROBABILISTIC_FILTER:
      filters.append(
          create_probabilistic_filter(filter_equal_probability, config, name_suffix=suffix))
    elif enabled:
      filters.append(
          create_hash_filter(filter_capacity, filter_split_num, config, name_suffix=suffix))
    else:
      filters.append(create_dummy_hash_filter(name_suffix=suffix))
  return filters


def save_hash_filter(hash_filter: tf.Tensor,
                     basename: tf.Tensor,
                     enable_hash_filter: bool = True) -> tf.Tensor:
  """Writes the filter's counts to `<basename>-<i>-of-<split_num>` (nothing for dummy and
  probabilistic filters); returns the filter handle, after the save."""
  if not enable_hash_filter:
    return hash_filter
  return gen_monolith_ops.monolith_hash_filter_save(hash_filter, basename)


def restore_hash_filter(hash_filter: tf.Tensor,
                        basename: tf.Tensor,
                        enable_hash_filter: bool = True) -> tf.Tensor:
  """Replaces the filter's counts by those saved at `basename`; returns the filter handle."""
  if not enable_hash_filter:
    return hash_filter
  return gen_monolith_ops.monolith_hash_filter_restore(hash_filter, basename)


def intercept_gradient(filter_tensor: tf.Tensor, ids: tf.Tensor,
                       embeddings: tf.Tensor) -> tf.Tensor:
  """Identity on `embeddings`; in the backward pass the gradient rows of ids the filter does not
  admit yet are zeroed (each such query counts one occurrence of the id)."""
  return gen_monolith_ops.monolith_hash_filter_intercept_gradient(filter_tensor, ids, embeddings)


@tf.RegisterGradient("MonolithHashFilterInterceptGradient")
def _intercept_gradient_grad(op, grad):
  filter_tensor, ids = op.inputs[0], op.inputs[1]
  return (None, None,
          gen_monolith_ops.monolith_hash_filter_intercept_gradient_gradient(
              filter_tensor, ids, grad))


def _filter_basename(path_prefix: str, ps_idx: int) -> str:
  return path_prefix + "hash_filter_{}".format(ps_idx)


class HashFilterCheckpointSaverListener(tf.compat.v1.train.CheckpointSaverListener):
  """Saves every filter to `<checkpoint asset dir>hash_filter_<ps_idx>` before the checkpoint
  index is written, when both enable_hash_filter and enable_save_restore are set."""

  def __init__(self,
               basename: str,
               hash_filters: List[tf.Tensor],
               enable_hash_filter: bool = False,
               enable_save_restore: bool = True):
    self._helper = save_utils.SaveHelper(basename)
    self._enabled = enable_hash_filter and enable_save_restore
    self._placeholders = []
    save_ops = []
    if self._enabled:
      with tf.name_scope("hash_filter_saver"):
        for hash_filter in hash_filters:
          with tf.device(hash_filter.device):
            placeholder = tf.compat.v1.placeholder(tf.string, shape=[])
            save_ops.append(save_hash_filter(hash_filter, placeholder).op)
          self._placeholders.append(placeholder)
    self._save_ops = save_ops

  def before_save(self, sess, global_step_value):
    if not self._enabled:
      return
    asset_dir = self._helper.get_ckpt_asset_dir(self._helper.get_ckpt_prefix(global_step_value))
    tf.io.gfile.makedirs(asset_dir)
    logging.info("Saving %d hash filters to %s.", len(self._placeholders), asset_dir)
    sess.run(self._save_ops,
             feed_dict={
                 p: _filter_basename(asset_dir, i) for i, p in enumerate(self._placeholders)
             })


class HashFilterCheckpointRestorerListener(basic_restore_hook.CheckpointRestorerListener):
  """Restores every filter from the latest checkpoint's asset dir (or, for checkpoints written
  before asset dirs existed, from files next to the checkpoint prefix) when both flags are set.
  A filter with no saved files (say the checkpoint predates enabling the filter) starts empty."""

  def __init__(self,
               basename: str,
               hash_filters: List[tf.Tensor],
               enable_hash_filter: bool = False,
               enable_save_restore: bool = True):
    self._basename = basename
    self._enabled = enable_hash_filter and enable_save_restore
    self._restores = []
    if self._enabled:
      with tf.name_scope("hash_filter_restorer"):
        for hash_filter in hash_filters:
          with tf.device(hash_filter.device):
            placeholder = tf.compat.v1.placeholder(tf.string, shape=[])
            self._restores.append((placeholder, restore_hash_filter(hash_filter,
                                                                    placeholder).op))

  def before_restore(self, session):
    if not self._enabled:
      return
    ckpt, path_prefix = save_utils.latest_checkpoint_asset_dir(self._basename, "hash filters")
    if ckpt is None:
      return
    if not tf.io.gfile.exists(path_prefix):
      path_prefix = ckpt
    ops, feed_dict = [], {}
    for i, (placeholder, op) in enumerate(self._restores):
      filter_basename = _filter_basename(path_prefix, i)
      if not tf.io.gfile.glob(filter_basename + "-*"):
        logging.warning("No hash filter dump at %s; that filter starts empty.", filter_basename)
        continue
      ops.append(op)
      feed_dict[placeholder] = filter_basename
    logging.info("Restoring %d hash filters from %s.", len(ops), path_prefix)
    session.run(ops, feed_dict=feed_dict)
