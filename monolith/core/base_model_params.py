"""`SingleTaskModelParams`: a model definition made of exactly one task."""


class SingleTaskModelParams:
  """Model params for a single-task model; subclasses return the task's params."""

  def task(self):
    """Returns the params of the task (an `InstantiableParams` of a `BaseTask` subclass)."""
    raise NotImplementedError('Abstract method')
