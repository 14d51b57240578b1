"""The feature-factory interface a task builds its embeddings through (`NativeContext` calls
`create_feature_slot` and `apply_gradients`)."""

import abc
from typing import NamedTuple

import tensorflow as tf


class FeatureSlice(NamedTuple):
  """Columns [start, end) of a feature slot's concatenated embedding."""
  feature_slot: object
  start: int
  end: int


class FeatureEmbTable(abc.ABC):
  """The embedding storage behind feature slots."""

  def add_feature_slice(self, segment, learning_rate_fn=None):
    pass

  @abc.abstractmethod
  def embedding_lookup(self, feature_name: str, start: int, end: int) -> tf.Tensor:
    """Embedding columns [start, end) of `feature_name`; start=end=None means all of them."""

  def set_feature_metadata(self, feature_name: str, combiner):
    pass


class FeatureFactory(abc.ABC):
  """Creates feature slots (without creating TF ops) and applies embedding gradients."""

  def __init__(self):
    self.slot_to_occurrence_threshold = {}
    self.slot_to_expire_time = {}

  @abc.abstractmethod
  def create_feature_slot(self, config):
    """Returns the FeatureSlot for the slot config `config`."""

  def apply_gradients(self, grads_and_vars, req_time=None, scale=1) -> tf.Operation:
    raise NotImplementedError("apply_gradients is not supported in this factory.")
