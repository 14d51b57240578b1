"""ZooKeeper client defaults shared by training and serving."""

import os
import socket
import time

from absl import logging
from kazoo.client import KazooClient

from monolith.native_training import env_utils

_PORT = 2181
# Upstream ships no internal server list: both lists are empty, so default_zk_servers() is "".
_HOSTS = []
_HOSTS_IPV6 = []


def is_ipv6_only() -> bool:
  """True when the host has no IPv4 address (an empty MY_HOST_IP also counts)."""
  if any(k in os.environ for k in ('MY_HOST_IP', 'MY_POD_IP', 'MY_HOST_IPV6')):
    if 'MY_HOST_IP' in os.environ:
      ipv4 = os.environ['MY_HOST_IP']
    elif 'MY_POD_IP' in os.environ:
      ipv4 = os.environ['MY_POD_IP']
    else:
      ipv4 = None
  else:
    try:
      ipv4 = socket.gethostbyname(socket.gethostname())
    except Exception:  # any resolver failure means "no IPv4"
      ipv4 = None
  ipv6_only = not ipv4
  logging.info('is_ipv6_only: %s (ipv4 address: %r)', ipv6_only, ipv4)
  return ipv6_only


def default_zk_servers(use_ipv6: bool = False) -> str:
  if use_ipv6 or is_ipv6_only():
    return ','.join('[{}]:{}'.format(ip, _PORT) for ip in _HOSTS_IPV6)
  return ','.join('{}:{}'.format(ip, _PORT) for ip in _HOSTS)


class MonolithKazooClient(KazooClient):
  """KazooClient that sends the environment's ZK auth data unless the caller passes its own."""

  def __init__(self, *args, **kwargs):
    if 'auth_data' not in kwargs:
      kwargs['auth_data'] = env_utils.get_zk_auth_data()
    super().__init__(*args, **kwargs)


_NINE_WEEKS_MS = 9 * 7 * 24 * 3600 * 1000


def clear_zk_path(zk_server, job_name, force_clear_zk_path):
  """Removes stale jobs under /monolith; refuses to reuse a live job path unless forced."""
  zk = MonolithKazooClient(hosts=zk_server or default_zk_servers())
  zk.start()
  try:
    zk.ensure_path('/monolith')
    now_ms = int(time.time() * 1000)
    for child in zk.get_children('/monolith'):
      path = '/monolith/' + child
      try:
        _, stat = zk.get(path)
        if now_ms - stat.mtime > _NINE_WEEKS_MS:
          zk.delete(path, recursive=True)
      except Exception as e:  # another job may remove it concurrently
        logging.info('skip clearing %s: %s', path, e)
    job_path = '/monolith/' + job_name
    if zk.exists(job_path):
      if force_clear_zk_path:
        zk.delete(job_path, recursive=True)
      else:
        children = zk.get_children(job_path)
        raise ValueError('there are [{}] in monolith zk path'.format(','.join(children)))
  finally:
    zk.stop()
