from absl.testing import absltest

from monolith.core import base_model_params
from monolith.core import base_task


class _Task(base_task.BaseTask):
  pass


class _ModelParams(base_model_params.SingleTaskModelParams):

  def task(self):
    p = _Task.params()
    p.train.steps = 5
    return p


class BaseTaskTest(absltest.TestCase):

  def test_param_defaults(self):
    p = _Task.params()
    self.assertEqual(p.name, '_Task')
    self.assertIs(p.cls, _Task)
    self.assertIsNone(p.accelerator)
    self.assertEqual(dict(p.input.iter_params()), {'eval_examples': None, 'train_examples': None})
    self.assertEqual(dict(p.eval.iter_params()), {
        'per_replica_batch_size': None,
        'steps_per_eval': 10000,
        'steps': None
    })
    self.assertEqual(
        dict(p.train.iter_params()), {
            'steps': None,
            'max_steps': None,
            'per_replica_batch_size': None,
            'file_pattern': None,
            'repeat': False,
            'label_key': 'label',
            'save_checkpoints_steps': None,
            'save_checkpoints_secs': None,
            'dense_only_save_checkpoints_secs': None,
            'dense_only_save_checkpoints_steps': None,
        })

  def test_abstract_methods(self):
    task = _Task.params().instantiate()
    with self.assertRaisesRegex(NotImplementedError, 'Abstract method.'):
      task.create_input_fn('train')
    with self.assertRaisesRegex(NotImplementedError, 'Abstract method.'):
      task.create_model_fn()
    # BaseTask does not keep its params; subclasses set self.p.
    self.assertNotIn('p', vars(task))

  def test_single_task_model_params(self):
    with self.assertRaisesRegex(NotImplementedError, '^Abstract method$'):
      base_model_params.SingleTaskModelParams().task()
    task = _ModelParams().task().instantiate()
    self.assertIsInstance(task, _Task)


if __name__ == '__main__':
  absltest.main()
