"""Hash filters: occurrence-threshold admission of new ids into hash tables."""
from typing import List

import tensorflow as tf

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
