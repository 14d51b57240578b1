"""Timestamps, timer metrics and machine health checks backed by Monolith custom ops."""

from typing import Dict, List, Optional, Tuple

from absl import flags
import tensorflow as tf

from monolith.native_training.runtime.ops import gen_monolith_ops

logging_ops = gen_monolith_ops

flags.DEFINE_integer("monolith_default_machine_info_mem_limit", 1 << 62,
                     "The default mem_limit (in bytes) of machine_info.")

FLAGS = flags.FLAGS


def tensors_timestamp(tensors: List[tf.Tensor]) -> Tuple[List[tf.Tensor], tf.Tensor]:
  """Returns `tensors` unchanged and an int64 timestamp (microseconds since the epoch) taken
  when all of them are ready."""
  return logging_ops.monolith_tensors_timestamp(tensors)


def emit_timer(key: str, value: tf.Tensor, tags: Dict[str, str] = None) -> tf.Operation:
  tags = tags or {}
  tags_str = "|".join("{}={}".format(k, v) for k, v in tags.items())
  return logging_ops.monolith_metric_v2(value, key=key, tags=tags_str)


def _default_mem_limit() -> int:
  # Read through the Flag object: graphs may be built before absl parses the command line.
  return FLAGS["monolith_default_machine_info_mem_limit"].value


def machine_info(mem_limit: Optional[int] = None, shared_name: Optional[str] = None) -> tf.Tensor:
  """A machine-info resource; the first op that runs under `shared_name` decides `mem_limit`.

  Only `None` selects the flag's default: upstream's `mem_limit or <flag>` also turned an explicit
  0 ("always report") into the default, silently disabling the check."""
  if mem_limit is None:
    mem_limit = _default_mem_limit()
  return logging_ops.monolith_machine_info(mem_limit=mem_limit,
                                           name=shared_name,
                                           shared_name=shared_name)


def check_machine_health(machine_info_tensor: tf.Tensor) -> tf.Tensor:
  """A scalar string: a serialized MachineHealthResult, empty when the machine is healthy."""
  return logging_ops.monolith_check_machine_health(machine_info_tensor)
