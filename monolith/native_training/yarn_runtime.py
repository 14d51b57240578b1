"""Facts about the container a task runs in (YARN / cloud-native schedulers)."""

import os

from monolith.native_training import net_utils


def get_local_host() -> str:
  """The address other tasks reach this one at: the scheduler's view first, then the NIC's."""
  cloud_native = os.environ.get('CLOUDNATIVE_INET_ADDR', '')
  if cloud_native:
    return cloud_native.split(',')[0]
  return os.environ.get('YARN_INET_ADDR') or net_utils.get_local_ip()
