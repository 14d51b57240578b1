"""Connects to the training Controller service that a ServerHook published in a model dir."""

import os

import grpc
import tensorflow as tf

from monolith.native_training.hooks.server import constants
from monolith.native_training.hooks.server import service_pb2_grpc


def get_stub_from_model_dir(model_dir: str) -> service_pb2_grpc.ControllerStub:
  addr_file = os.path.join(model_dir, constants.SERVER_ADDR_FILENAME)
  try:
    addr = tf.io.gfile.GFile(addr_file).read().strip()
  except tf.errors.OpError as e:
    raise ValueError("Unable to read the controller server address from {}: {}".format(
        addr_file, e.message)) from e
  if not addr:
    raise ValueError("The controller server address file {} is empty".format(addr_file))
  return service_pb2_grpc.ControllerStub(grpc.insecure_channel(addr))
