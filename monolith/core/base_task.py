"""`BaseTask`: the layer a Monolith training task is built from (input and model functions)."""

from monolith.core import base_layer
from monolith.core import hyperparams


class BaseTask(base_layer.BaseLayer):
  """A task: its params describe the accelerator, input, training and evaluation."""

  @classmethod
  def params(cls):
    p = super(BaseTask, cls).params()
    p.define('accelerator', None, 'Accelerator to use: None, "tpu" or "horovod".')

    p.define('input', hyperparams.Params(), 'Input configuration.')
    p.input.define('eval_examples', None, 'Number of total examples for evaluation.')
    p.input.define('train_examples', None, 'Number of total examples for training.')

    p.define('eval', hyperparams.Params(), 'Evaluation configuration.')
    p.eval.define('per_replica_batch_size', None, 'Per replica batch size.')
    p.eval.define('steps_per_eval', 10000, 'Number of training steps between evaluations.')
    p.eval.define('steps', None, 'Number of steps for which to evaluate the model.')

    p.define('train', hyperparams.Params(), 'Training configuration.')
    p.train.define('steps', None, 'Number of training steps.')
    p.train.define('max_steps', None, 'Maximum number of training steps.')
    p.train.define('per_replica_batch_size', None, 'Per replica batch size.')
    p.train.define('file_pattern', None, 'Training input data file pattern.')
    p.train.define('repeat', False, 'Whether to repeat the training dataset.')
    p.train.define('label_key', 'label', 'Key of the label in the parsed features.')
    p.train.define('save_checkpoints_steps', None, 'Save checkpoints every N steps.')
    p.train.define('save_checkpoints_secs', None, 'Save checkpoints every N seconds.')
    p.train.define('dense_only_save_checkpoints_secs', None,
                   'Save dense-only checkpoints every N seconds.')
    p.train.define('dense_only_save_checkpoints_steps', None,
                   'Save dense-only checkpoints every N steps.')
    return p

  def __init__(self, params):
    super(BaseTask, self).__init__(params)

  def create_input_fn(self, mode):
    raise NotImplementedError('Abstract method.')

  def create_model_fn(self):
    raise NotImplementedError('Abstract method.')

