"""Writes the agent_service test fixtures (run from the repository root):

  python3 monolith/agent_service/testdata/gen_fixtures.py

* monolith/agent_service/agent.conf          an agent config with a repeated key (layout_filters)
* monolith/agent_service/test_data/inst.*    one parser.proto.Instance as json / pbtext / dump
* monolith/agent_service/testdata/saved_model/{entry,ps_0..ps_4}/1622716114/
      saved_model.pb (entry holds TfServingRemotePredict nodes) + variables (global_step = 100)
"""

import os
import sys

import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, node_def_pb2, types_pb2
from tensorflow.core.protobuf import saved_model_pb2

MODEL_NAME = 'test_ffm_model'
VERSION = '1622716114'
NUM_PS = 5

AGENT_CONF = """\
# agent.conf used by utils_test / agent tests
bzid predict_ctr
base_name predict_ctr
base_path hdfs:///test/data
num_ps 10
server_type entry
zk_servers 127.0.0.1:12345
max_waiting_sec 600
layout_filters ps_0
layout_filters ps_1


agent_version 1
stand_alone_serving true
update_model_status_interval 10
enable_batching false
tensorflow_session_parallelism 0
tensorflow_intra_op_parallelism 0
tensorflow_inter_op_parallelism 0
per_process_gpu_memory_fraction 0
num_load_threads 0
num_unload_threads 0
max_num_load_retries 5
load_retry_interval_micros 60 * 1000 * 1000
file_system_poll_wait_seconds 1
file_system_poll_wait_seconds_ps 0
flush_filesystem_caches true
saved_model_tags none
grpc_channel_arguments none
grpc_max_threads 0
enable_model_warmup true
enable_signature_method_name_check false
xla_cpu_compilation_enabled false
enable_profiler true
num_shard 1
dc_aware 1
"""

INST_JSON = """\
{
  "fid": ["12345"],
  "label": [0, 1],
  "lineId": {
    "actions": [1]
  }
}
"""

INST_PBTEXT = """\
fid: 1
fid: 2
label: 0.0
label: 1.0
line_id {
  actions: 1
}
feature {
  name: "a"
  fid: 3
}"""

INST_DUMP = """\
"root":
"feature":
0:
"fid":
0: "1"
"name": "fc_a"
1:
"fid":
0: "2"
"name": "fc_b"
2:
"fid":
0: "3"
1: "4"
label":
0: 0
1: 1
"line_id":
"actions":
0: 1
"""


def _write(path: str, content, mode='w'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, mode) as fp:
    fp.write(content)


def _remote_predict_node(i: int) -> node_def_pb2.NodeDef:
  node = node_def_pb2.NodeDef(name='ps_{}_remote_predict'.format(i), op='TfServingRemotePredict')
  attrs = {
      'model_name': attr_value_pb2.AttrValue(s='{}:ps_{}'.format(MODEL_NAME, i).encode()),
      'old_model_name': attr_value_pb2.AttrValue(s='ps_{}'.format(i).encode()),
      'task': attr_value_pb2.AttrValue(i=i),
      'model_version': attr_value_pb2.AttrValue(i=-1),
      'max_rpc_deadline_millis': attr_value_pb2.AttrValue(i=30),
      'fail_op_on_rpc_error': attr_value_pb2.AttrValue(b=True),
      'signature_name': attr_value_pb2.AttrValue(s=b'lookup'),
      'T': attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(type=[types_pb2.DT_INT64])),
      'output_types': attr_value_pb2.AttrValue(
          list=attr_value_pb2.AttrValue.ListValue(type=[types_pb2.DT_FLOAT])),
  }
  for key, value in attrs.items():
    node.attr[key].CopyFrom(value)
  node.input.extend(['input_tensor_aliases', 'ids', 'output_tensor_aliases'])
  return node


def _saved_model(sub_graph: str) -> bytes:
  sm = saved_model_pb2.SavedModel(saved_model_schema_version=1)
  mg = sm.meta_graphs.add()
  mg.meta_info_def.tags.append('serve')
  graph = mg.graph_def
  placeholder = graph.node.add(name='ids', op='Placeholder')
  placeholder.attr['dtype'].type = types_pb2.DT_INT64
  if sub_graph == 'entry':
    for name in ('input_tensor_aliases', 'output_tensor_aliases'):
      const = graph.node.add(name=name, op='Const')
      const.attr['dtype'].type = types_pb2.DT_STRING
    graph.node.extend(_remote_predict_node(i) for i in range(NUM_PS))
  return sm.SerializeToString(deterministic=True)  # stable bytes: fixtures are compared


def _write_variables(prefix: str):
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=['global_step'], shape_and_slices=[''],
                    tensors=[tf.constant(100, tf.int64)])


def main(root: str):
  pkg = os.path.join(root, 'monolith', 'agent_service')
  _write(os.path.join(pkg, 'agent.conf'), AGENT_CONF)
  _write(os.path.join(pkg, 'test_data', 'inst.json'), INST_JSON)
  _write(os.path.join(pkg, 'test_data', 'inst.pbtext'), INST_PBTEXT)
  _write(os.path.join(pkg, 'test_data', 'inst.dump'), INST_DUMP)
  for sub_graph in ['entry'] + ['ps_{}'.format(i) for i in range(NUM_PS)]:
    version_dir = os.path.join(pkg, 'testdata', 'saved_model', sub_graph, VERSION)
    _write(os.path.join(version_dir, 'saved_model.pb'), _saved_model(sub_graph), 'wb')
    _write_variables(os.path.join(version_dir, 'variables', 'variables'))


if __name__ == '__main__':
  main(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
