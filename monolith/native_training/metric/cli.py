"""Metrics client. The open-source build has no metrics agent: `get_cli` returns a client whose
every method accepts any arguments and does nothing."""


class Client(object):

  def __init__(self, *args, **kwargs):
    pass

  def __getattr__(self, name):

    def method(*args, **kwargs):
      return None

    return method


def get_cli(*args, **kwargs) -> Client:
  return Client()
