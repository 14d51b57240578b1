import unittest

from monolith.native_training import native_task_context


def _ctx(worker_index):
  return native_task_context.NativeTaskContext(num_ps=2,
                                               ps_index=0,
                                               num_workers=4,
                                               worker_index=worker_index,
                                               model_name="model_{}".format(worker_index),
                                               sync_backend=None,
                                               server_type="worker")


class NativeTaskContextTest(unittest.TestCase):

  def setUp(self):
    native_task_context._CTX = None

  def test_defaults(self):
    ctx = native_task_context.get()
    self.assertEqual(
        ctx._asdict(), {
            "num_ps": 0,
            "ps_index": 0,
            "num_workers": 1,
            "worker_index": 0,
            "model_name": "",
            "sync_backend": None,
            "server_type": "",
        })
    self.assertEqual(native_task_context.NativeTaskContext._fields,
                     ("num_ps", "ps_index", "num_workers", "worker_index", "model_name",
                      "sync_backend", "server_type"))

  def test_get_returns_the_same_object(self):
    ctx = _ctx(1)
    with native_task_context.with_ctx(ctx):
      self.assertIs(native_task_context.get(), ctx)

  def test_nesting_restores_outer_but_never_clears(self):
    outer, inner = _ctx(1), _ctx(2)
    with native_task_context.with_ctx(outer):
      with native_task_context.with_ctx(inner):
        self.assertIs(native_task_context.get(), inner)
      self.assertIs(native_task_context.get(), outer)
    # Upstream semantics: leaving the outermost scope keeps its context current.
    self.assertIs(native_task_context.get(), outer)

  def test_restored_on_exception(self):
    outer, inner = _ctx(1), _ctx(2)
    with native_task_context.with_ctx(outer):
      with self.assertRaises(RuntimeError):
        with native_task_context.with_ctx(inner):
          raise RuntimeError("boom")
      self.assertIs(native_task_context.get(), outer)


if __name__ == "__main__":
  unittest.main()
