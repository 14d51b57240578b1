"""Base class of TF-native Monolith training tasks, and the context they build features in."""

import abc

from monolith.core import base_task
from monolith.core import hyperparams
from monolith.native_training import feature
from monolith.native_training import prefetch_queue
from monolith.native_training.model_export.export_context import ExportMode

# tf.estimator.ModeKeys.TRAIN (TF 2.21 has no tf.estimator; the key is the same string).
_MODE_TRAIN = "train"


class NativeContext(object):
  """What a task's model function builds with: a feature factory (or, alternatively, an
  embedding layout factory) and the async function manager."""

  def __init__(self,
               feature_factory: feature.FeatureFactory = None,
               async_function_mgr: prefetch_queue.AsyncFunctionMgr = None,
               layout_factory=None):
    self.feature_factory = feature_factory
    self.async_function_mgr = async_function_mgr
    self.layout_factory = layout_factory
    if self.feature_factory is not None and self.layout_factory is not None:
      raise ValueError("Cannot set feature_factory and layout_factory in the same time")

  def create_feature_slot(self, config):
    """Creates a feature slot from a FeatureSlotConfig; creates no TF ops."""
    if self.layout_factory is not None:
      return self.layout_factory.create_feature_slot(config)
    return self.feature_factory.create_feature_slot(config)

  def apply_embedding_gradients(self, grads_and_vars, scale=1):
    """`grads_and_vars` pairs come from FeatureColumn.get_all_embeddings_concatenated."""
    if self.layout_factory is not None:
      return self.layout_factory.apply_gradients(grads_and_vars)
    return self.feature_factory.apply_gradients(grads_and_vars, scale=scale)

  def add_async_function(self,
                         target,
                         args=None,
                         kwargs=None,
                         is_async: bool = None,
                         queue_name: str = "async_queue"):
    """Runs `target(*args, **kwargs)` one step later (see AsyncFunctionMgr). Returns the enqueue
    op when async, else the result of `target`. Tensors `target` uses must be passed through
    `args`/`kwargs`."""
    return self.async_function_mgr.add_async_function(target,
                                                      args=args,
                                                      kwargs=kwargs,
                                                      is_async=is_async,
                                                      queue_name=queue_name)


class NativeTask(base_task.BaseTask, abc.ABC):
  """A task trained with plain TF (sessions and hooks)."""

  @classmethod
  def params(cls):
    p = super(NativeTask, cls).params()
    p.define("metrics", hyperparams.Params(), "Metric parameters.")
    p.metrics.define("enable_deep_insight", False, "Whether to write deep insight metrics.")
    p.metrics.define("deep_insight_target", "ctr_head", "The deep insight target.")
    p.metrics.define("deep_insight_name", None, "The deep insight model name.")
    p.metrics.define("deep_insight_sample_ratio", 0.01, "Deep insight sample ratio.")
    p.metrics.define("extra_fields_keys", [], "Extra fields written with deep insight.")
    p.metrics.define("enable_throughput_hook", True, "Whether to log the throughput.")
    p.metrics.define("enable_kafka_metrics", False, "Whether to send metrics to kafka.")
    p.metrics.define("enable_tf2_profiler_hook", True, "Whether to enable the TF2 profiler.")
    p.metrics.define("enable_file_metrics", False, "Whether to write metrics to files.")
    p.metrics.define("file_base_name", "/vepfs/jaguar_deepinsight_results",
                     "The base name of metric files.")
    p.metrics.define("file_ext", "txt", "The extension of metric files.")
    p.metrics.define("parse_fn", None, "Parses a metric line.")
    p.metrics.define("key_fn", None, "Computes the key of a metric line.")
    p.metrics.define("layout_fn", None, "Formats a metric line.")
    p.metrics.define("dump_filename", "", "The file deep insight messages are dumped to.")
    p.metrics.define("use_data_service", False, "Whether the input uses the data service.")

    # Temporary: will be removed.
    p.define("mode", _MODE_TRAIN, "The mode the task runs in.")

    p.train.define("max_pending_seconds_for_barrier", 30,
                   "Seconds to wait for workers at the barrier.")
    p.train.define("slow_start_steps", 0, "Steps over which training ramps up.")
    p.train.define("sample_bias", 0.0, "Sample bias.")
    p.train.define("use_gpu_emb_table", False, "Whether embedding tables live on GPU.")
    p.train.define("use_fountain", False, "Whether the input comes from fountain.")
    p.train.define("fountain_zk_host", "", "The fountain ZooKeeper host.")
    p.train.define("fountain_model_name", "", "The fountain model name.")
    p.train.define("fountain_parse_on_server", False, "Whether fountain parses on its server.")
    p.train.define("fountain_precompute_value_rowids", False,
                   "Whether fountain precomputes ragged value row ids.")

    p.define("serving", hyperparams.Params(), "Serving parameters.")
    p.serving.define("export_with_gpu_allowed", False, "Whether the export may use GPUs.")
    p.serving.define("export_with_cleared_entry_devices", False,
                     "Whether entry devices are cleared in the export.")
    p.serving.define("export_when_saving", False, "Whether to export with each checkpoint.")
    p.serving.define("export_dir_base", "exported_models", "The export base directory.")
    p.serving.define("export_mode", ExportMode.DISTRIBUTED, "The export mode.")
    p.serving.define("shared_embedding", True, "Whether the export shares embeddings.")
    p.serving.define("with_remote_gpu", False, "Whether the dense part runs on a remote GPU.")
    return p

  def __init__(self, params):
    super(NativeTask, self).__init__(params)
    self._ctx = NativeContext()
    self.p = params

  @property
  def ctx(self) -> NativeContext:
    return self._ctx

  @abc.abstractmethod
  def create_input_fn(self, mode):
    """Returns the input function for `mode`."""

  @abc.abstractmethod
  def create_model_fn(self):
    """Returns the model function."""

  def create_serving_input_receiver_fn(self):
    """Returns the serving input receiver function; must be overridden when
    `serving.export_when_saving` is enabled."""
    return None
