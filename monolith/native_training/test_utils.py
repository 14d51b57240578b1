"""Helpers shared by the native_training tests."""
import time


def wait_for(predicate, timeout=30):
  """Polls `predicate` until it holds; tests use it for state that background threads change."""
  deadline = time.time() + timeout
  while not predicate():
    if time.time() > deadline:
      raise AssertionError("condition not met within {}s".format(timeout))
    time.sleep(0.05)
