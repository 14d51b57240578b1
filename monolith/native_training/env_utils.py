"""Process-environment helpers shared by the serving agent and training jobs."""

import os
import socket
from typing import List, Optional, Tuple

from absl import logging


def setup_hdfs_env():
  """No HDFS environment is needed in the open-source tree; callers invoke it at start."""
  return None


def generate_psm_from_uuid(s):
  return s


def get_zk_auth_data() -> Optional[List[Tuple[str, str]]]:
  """Digest auth from env ZK_AUTH, as kazoo's `auth_data` expects."""
  zk_auth = os.environ.get('ZK_AUTH')
  if zk_auth:
    # Upstream printed the secret itself; saying that it is set is enough.
    logging.info('ZK_AUTH is set, using digest auth for ZooKeeper')
    return [('digest', zk_auth)]
  return None


def setup_host_ip():
  """Makes sure MY_HOST_IP is populated (callers read it afterwards).

  Upstream calls this from client/tfs_client `main` but never defines it; the callers fall back to
  `gethostbyname(gethostname())`, so that is what gets recorded when the variable is absent.
  """
  if os.environ.get('MY_HOST_IP'):
    return os.environ['MY_HOST_IP']
  try:
    host_ip = socket.gethostbyname(socket.gethostname())
  except OSError as e:
    logging.warning('cannot resolve the local host name (%s), using 127.0.0.1', e)
    host_ip = '127.0.0.1'
  os.environ['MY_HOST_IP'] = host_ip
  return host_ip
