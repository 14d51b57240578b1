"""Builds the deep insight metric ops of a model from its features, labels and predictions."""

from typing import Dict, List, Optional

import tensorflow as tf

from monolith.native_training.metric import deep_insight_ops

_REQ_TIME = "req_time"
_UID = "uid"
_SAMPLE_RATE = "sample_rate"


def write_deep_insight(features: Dict[str, tf.Tensor],
                       sample_ratio: float,
                       model_name: str,
                       labels: Optional[tf.Tensor] = None,
                       preds: Optional[tf.Tensor] = None,
                       target: Optional[str] = None,
                       targets: Optional[List[str]] = None,
                       labels_list: Optional[List[tf.Tensor]] = None,
                       preds_list: Optional[List[tf.Tensor]] = None,
                       sample_rates_list: Optional[List[tf.Tensor]] = None,
                       extra_fields_keys: List[str] = (),
                       enable_deep_insight_metrics: bool = True,
                       enable_kafka_metrics: bool = False,
                       dump_filename: Optional[str] = None):
  """One deep insight message per example. Without `targets`: a single-target message from
  `labels`/`preds` and the `uid`/`req_time`/`sample_rate` features. With `targets`: one
  label/pred/sample rate per target (`labels_list`, `preds_list`, `sample_rates_list` — the
  latter defaulting to the `sample_rate` feature) plus the features named in
  `extra_fields_keys` (and always `uid`). Returns a no-op without a `req_time` feature."""
  if _REQ_TIME not in features:
    return tf.no_op()
  is_fake = enable_kafka_metrics or bool(dump_filename)
  client = deep_insight_ops.deep_insight_client(enable_deep_insight_metrics,
                                                is_fake,
                                                dump_filename=dump_filename)
  req_times = tf.reshape(features[_REQ_TIME], [-1])
  if not targets:
    return deep_insight_ops.write_deep_insight(client,
                                               uids=tf.reshape(features[_UID], [-1]),
                                               req_times=req_times,
                                               labels=labels,
                                               preds=preds,
                                               sample_rates=tf.reshape(
                                                   features[_SAMPLE_RATE], [-1]),
                                               model_name=model_name,
                                               target=target,
                                               sample_ratio=sample_ratio,
                                               return_msgs=is_fake)
  stacked_labels = tf.stack(labels_list)
  stacked_preds = tf.stack(preds_list)
  if sample_rates_list:
    sample_rates = tf.stack(sample_rates_list)
  else:
    sample_rate = tf.reshape(features[_SAMPLE_RATE], [-1])
    sample_rates = tf.stack([sample_rate] * len(targets))
  # Upstream appends "uid" to the caller's list (its mutable default included); use a copy.
  keys = list(extra_fields_keys)
  if _UID not in keys:
    keys.append(_UID)
  extra_values = [tf.reshape(features[key], [-1]) for key in keys]
  return deep_insight_ops.write_deep_insight_v2(client,
                                                req_times=req_times,
                                                labels=stacked_labels,
                                                preds=stacked_preds,
                                                sample_rates=sample_rates,
                                                extra_fields_values=extra_values,
                                                extra_fields_keys=keys,
                                                model_name=model_name,
                                                targets=targets,
                                                sample_ratio=sample_ratio,
                                                return_msgs=is_fake)
