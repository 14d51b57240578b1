"""Address helpers (IPv4/IPv6 aware) used by the serving agent and training servers."""

import ipaddress
import socket
from concurrent import futures
from typing import List


class AddressFamily(object):
  IPV4 = 'ipv4'
  IPV6 = 'ipv6'


def is_ipv6_address(ip: str) -> bool:
  try:
    return isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address)
  except ValueError:
    return False


def concat_ip_and_port(ip: str, port) -> str:
  if is_ipv6_address(ip):
    return '[{}]:{}'.format(ip, port)
  return '{}:{}'.format(ip, port)


def get_local_ip() -> str:
  hostname = socket.gethostname()
  try:
    return socket.getaddrinfo(hostname, None)[0][4][0]
  except socket.gaierror:
    return socket.getaddrinfo(hostname, None, socket.AF_INET6)[0][4][0]


def is_ipv4_supported() -> bool:
  return not is_ipv6_address(get_local_ip())


def get_local_server_addr(port) -> str:
  return concat_ip_and_port(get_local_ip(), port)


def _split_addr(addr: str):
  host, port = addr.rsplit(':', 1)
  return host.strip('[]'), int(port)


class NodeAliveChecker(object):
  """Probes every `host:port` once with a TCP connect at construction."""

  def __init__(self, addrs: List[str], timeout=1, num_thread=10):
    self._addrs = list(addrs)
    self._timeout = timeout
    self._alive = []
    self._dead = []
    with futures.ThreadPoolExecutor(max_workers=max(1, num_thread)) as pool:
      results = list(pool.map(self._probe, self._addrs))
    for addr, ok in zip(self._addrs, results):
      (self._alive if ok else self._dead).append(addr)

  def _probe(self, addr: str) -> bool:
    try:
      host, port = _split_addr(addr)
      family = socket.AF_INET6 if is_ipv6_address(host) else socket.AF_INET
      with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(self._timeout)
        sock.connect((host, port))
      return True
    except Exception as e:  # any failure means "not alive"
      print('cannot connect to {}, because {}'.format(addr, e))
      return False

  def all_nodes_alive(self) -> bool:
    return not self._dead

  def get_dead_nodes(self) -> List[str]:
    return list(self._dead)

  def get_alive_nodes(self) -> List[str]:
    return list(self._alive)

  def get_addrs(self) -> List[str]:
    return list(self._addrs)
