"""Deep insight metric ops: a client resource and per-example metric messages (v1: one target;
v2: several targets plus extra fields). See runtime/deep_insight/deep_insight.h for the message
content and sampling rule."""

import socket
from typing import List

import tensorflow as tf

from monolith.native_training.runtime.ops import gen_monolith_ops

deep_insight_ops = gen_monolith_ops

_FEATURE_REQ_TIME = "req_time"
_SAMPLE_RATE = "sample_rate"
_UID = "uid"


def deep_insight_client(enable_metrics_counter: bool = False,
                        is_fake: bool = False,
                        dump_filename: str = None,
                        container: str = socket.gethostname()) -> tf.Tensor:
  """A handle to a new deep insight client. With `dump_filename`, every message (also the empty
  ones of unsampled rows) is appended to that file as one TFRecord."""
  return deep_insight_ops.monolith_create_deep_insight_client(enable_metrics_counter, is_fake,
                                                              dump_filename, container)


def write_deep_insight(deep_insight_client_tensor: tf.Tensor,
                       uids: tf.Tensor,
                       req_times: tf.Tensor,
                       labels: tf.Tensor,
                       preds: tf.Tensor,
                       sample_rates: tf.Tensor,
                       model_name: str,
                       target: str = "ctr_head",
                       sample_ratio: float = 0.01,
                       return_msgs: bool = False,
                       use_zero_train_time=False) -> tf.Tensor:
  """One message per example: 1-D int64 `uids`/`req_times`, 1-D float `labels`/`preds`/
  `sample_rates`. Returns the messages when `return_msgs`, else empty strings."""
  return deep_insight_ops.monolith_write_deep_insight(
      deep_insight_client_handle=deep_insight_client_tensor,
      uids=uids,
      req_times=req_times,
      labels=labels,
      preds=preds,
      sample_rates=sample_rates,
      model_name=model_name,
      target=target,
      sample_ratio=sample_ratio,
      return_msgs=return_msgs,
      use_zero_train_time=use_zero_train_time)


def write_deep_insight_v2(deep_insight_client_tensor: tf.Tensor,
                          req_times: tf.Tensor,
                          labels: tf.Tensor,
                          preds: tf.Tensor,
                          sample_rates: tf.Tensor,
                          extra_fields_values: List[tf.Tensor],
                          extra_fields_keys: List[str],
                          model_name: str,
                          targets: List[str],
                          sample_ratio: float = 0.01,
                          return_msgs: bool = False,
                          use_zero_train_time=False) -> tf.Tensor:
  """Multi-target form: `labels`/`preds`/`sample_rates` are [len(targets), batch]; each extra
  field is a [batch] tensor (float, int64 or string) named by `extra_fields_keys`; the int64
  field named "uid" is required and supplies the uid."""
  return deep_insight_ops.monolith_write_deep_insight_v2(
      deep_insight_client_handle=deep_insight_client_tensor,
      req_times=req_times,
      labels=labels,
      preds=preds,
      sample_rates=sample_rates,
      extra_fields_values=extra_fields_values,
      extra_fields_keys=extra_fields_keys,
      model_name=model_name,
      targets=targets,
      sample_ratio=sample_ratio,
      return_msgs=return_msgs,
      use_zero_train_time=use_zero_train_time)
