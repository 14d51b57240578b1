"""The Monolith wheel's contents, in one place: //:monolith_wheel builds it for users and
//tools:monolith_wheel_second_build builds it again so wheel_test can compare the two byte for byte."""

load("//tools:wheel.bzl", "py_wheel_package")

MONOLITH_VERSION = "0.1.0"

# Every shipped py_library (tests and test-only fixtures stay out); keep in sync with
# `bazel query 'kind(py_library, //idl/... + //monolith/...) except attr(testonly, 1, //...)'`.
MONOLITH_WHEEL_DEPS = [
    "//idl/matrix/proto:example_py_pb2",
    "//idl/matrix/proto:proto_parser_py_pb2",
    "//monolith:utils",
    "//monolith/agent_service:agent_service_py_pb2",
    "//monolith/native_training:file_ops",
    "//monolith/native_training/hooks:controller_hooks_py_pb2",
    "//monolith/native_training/hooks/server:service_py_pb2",
    "//monolith/native_training/proto:ckpt_info_py_pb2",
    "//monolith/native_training/runtime/ops:logging_ops_py_pb2",
]

MONOLITH_CONSOLE_SCRIPTS = {}

def monolith_wheel(name, **kwargs):
    py_wheel_package(
        name = name,
        distribution = "monolith",
        version = MONOLITH_VERSION,
        summary = "Monolith: collisionless-embedding recommendation training and serving on TensorFlow",
        packages = ["idl", "monolith"],
        requirements = "//tools:requirements.in",
        console_scripts = MONOLITH_CONSOLE_SCRIPTS,
        deps = MONOLITH_WHEEL_DEPS,
        **kwargs
    )
