import tensorflow as tf

from monolith.native_training.model_export import export_context


class ExportContextTest(tf.test.TestCase):

  def test_enter_export_mode(self):
    self.assertFalse(export_context.is_exporting())
    self.assertIsNone(export_context.get_current_export_ctx())
    with export_context.enter_export_mode(export_context.ExportMode.STANDALONE) as ctx:
      self.assertTrue(export_context.is_exporting())
      self.assertTrue(export_context.is_exporting_standalone())
      self.assertFalse(export_context.is_exporting_distributed())
      self.assertIs(export_context.get_current_export_ctx(), ctx)
      with self.assertRaisesRegex(AssertionError, "export mode can't be nested"):
        with export_context.enter_export_mode(export_context.ExportMode.DISTRIBUTED):
          pass
    self.assertFalse(export_context.is_exporting())
    self.assertIsNone(export_context.get_current_export_ctx())

  def test_mode_restored_on_error(self):
    given = export_context.ExportContext(with_remote_gpu=True)
    with self.assertRaises(RuntimeError):
      with export_context.enter_export_mode(export_context.ExportMode.DISTRIBUTED,
                                            given) as ctx:
        self.assertIs(ctx, given)
        self.assertTrue(ctx.with_remote_gpu)
        raise RuntimeError("boom")
    self.assertEqual(export_context.EXPORT_MODE, export_context.ExportMode.NONE)

  def test_sub_graphs_and_signatures(self):
    ctx = export_context.ExportContext()
    g = ctx.sub_graph("ps_0")
    self.assertIs(ctx.sub_graph("ps_0"), g)
    self.assertIsNot(ctx.dense_sub_graph("ps_0"), g)
    self.assertEqual(ctx.sub_graph_num, 1)
    ctx.add_signature(g, "lookup", {"a": 1}, {"b": 2})
    ctx.merge_signature(g, "lookup", {"c": 3}, {})
    ctx.merge_signature(g, "other", {"x": 0}, {"y": 0})
    sigs = {s.name: s for s in ctx.signatures(g)}
    self.assertEqual(sigs["lookup"].inputs, {"a": 1, "c": 3})
    self.assertEqual(sigs["other"].outputs, {"y": 0})
    self.assertEqual(g.get_collection("signature_name"), ["lookup", "other"])
    self.assertEqual(list(ctx.signatures(ctx.sub_graph("ps_1"))), [])

  def test_enum_values(self):
    self.assertEqual([m.value for m in export_context.ExportMode], [0, 1, 2])


if __name__ == "__main__":
  tf.test.main()
