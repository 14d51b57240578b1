import tensorflow as tf

from monolith.native_training import feature
from monolith.native_training import native_task
from monolith.native_training import prefetch_queue
from monolith.native_training.model_export.export_context import ExportMode


class _RecordingFactory(feature.FeatureFactory):

  def __init__(self):
    super().__init__()
    self.calls = []

  def create_feature_slot(self, config):
    self.calls.append(("create_feature_slot", config))
    return "slot_from_feature_factory"

  def apply_gradients(self, grads_and_vars, req_time=None, scale=1):
    self.calls.append(("apply_gradients", grads_and_vars, scale))
    return "applied"


class _RecordingLayoutFactory(object):

  def __init__(self):
    self.calls = []

  def create_feature_slot(self, config):
    self.calls.append(("create_feature_slot", config))
    return "slot_from_layout_factory"

  def apply_gradients(self, grads_and_vars):
    self.calls.append(("apply_gradients", grads_and_vars))
    return "layout_applied"


class _Task(native_task.NativeTask):

  def create_input_fn(self, mode):
    return lambda: mode

  def create_model_fn(self):
    return lambda: "model"


class NativeContextTest(tf.test.TestCase):

  def test_mutually_exclusive_factories(self):
    with self.assertRaisesRegex(ValueError,
                                "^Cannot set feature_factory and layout_factory in the same time$"):
      native_task.NativeContext(feature_factory=_RecordingFactory(),
                                layout_factory=_RecordingLayoutFactory())

  def test_feature_factory_delegation(self):
    factory = _RecordingFactory()
    ctx = native_task.NativeContext(feature_factory=factory)
    self.assertEqual(ctx.create_feature_slot("cfg"), "slot_from_feature_factory")
    self.assertEqual(ctx.apply_embedding_gradients([("g", "v")], scale=3), "applied")
    self.assertEqual(factory.calls, [("create_feature_slot", "cfg"),
                                     ("apply_gradients", [("g", "v")], 3)])

  def test_layout_factory_delegation(self):
    layout = _RecordingLayoutFactory()
    ctx = native_task.NativeContext(layout_factory=layout)
    self.assertEqual(ctx.create_feature_slot("cfg"), "slot_from_layout_factory")
    self.assertEqual(ctx.apply_embedding_gradients([("g", "v")], scale=3), "layout_applied")
    self.assertEqual(layout.calls, [("create_feature_slot", "cfg"),
                                    ("apply_gradients", [("g", "v")])])

  def test_base_factory_has_no_apply_gradients(self):
    with self.assertRaisesRegex(NotImplementedError,
                                "apply_gradients is not supported in this factory."):
      feature.FeatureFactory.apply_gradients(_RecordingFactory(), [])

  def test_sync_async_function(self):
    ctx = native_task.NativeContext(async_function_mgr=prefetch_queue.AsyncFunctionMgr(False))
    self.assertEqual(ctx.add_async_function(lambda a, b: a + b, args=(1,), kwargs={"b": 2}), 3)


class NativeTaskTest(tf.test.TestCase):

  def test_param_defaults(self):
    p = _Task.params()
    self.assertEqual(p.mode, "train")
    m = p.metrics
    self.assertEqual(
        (m.enable_deep_insight, m.deep_insight_target, m.deep_insight_name,
         m.deep_insight_sample_ratio, m.extra_fields_keys, m.enable_throughput_hook,
         m.enable_kafka_metrics, m.enable_tf2_profiler_hook, m.enable_file_metrics,
         m.file_base_name, m.file_ext, m.parse_fn, m.key_fn, m.layout_fn, m.dump_filename,
         m.use_data_service),
        (False, "ctr_head", None, 0.01, [], True, False, True, False,
         "/vepfs/jaguar_deepinsight_results", "txt", None, None, None, "", False))
    t = p.train
    self.assertEqual(
        (t.max_pending_seconds_for_barrier, t.slow_start_steps, t.sample_bias,
         t.use_gpu_emb_table, t.use_fountain, t.fountain_zk_host, t.fountain_model_name,
         t.fountain_parse_on_server, t.fountain_precompute_value_rowids),
        (30, 0, 0.0, False, False, "", "", False, False))
    # BaseTask's train params are still there.
    self.assertEqual(t.label_key, "label")
    s = p.serving
    self.assertEqual(
        (s.export_with_gpu_allowed, s.export_with_cleared_entry_devices, s.export_when_saving,
         s.export_dir_base, s.export_mode, s.shared_embedding, s.with_remote_gpu),
        (False, False, False, "exported_models", ExportMode.DISTRIBUTED, True, False))

  def test_init(self):
    p = _Task.params()
    p.name = "my_task"
    task = _Task(p)
    self.assertIs(task.p, p)
    self.assertIsInstance(task.ctx, native_task.NativeContext)
    self.assertIsNone(task.ctx.feature_factory)
    self.assertIsNone(task.create_serving_input_receiver_fn())
    self.assertEqual(task.create_input_fn("eval")(), "eval")

  def test_abstract(self):

    class Incomplete(native_task.NativeTask):

      def create_input_fn(self, mode):
        return None

    p = Incomplete.params()
    with self.assertRaisesRegex(TypeError, "create_model_fn"):
      Incomplete(p)


if __name__ == "__main__":
  tf.test.main()
