"""Repository rule exposing the pip TensorFlow of the project venv as @local_config_tf.

It asks the venv's python (PYTHON_BIN_PATH, written by tools/bootstrap) where TensorFlow's
headers and libtensorflow_framework.so.2 live and links them into the repository."""

_BUILD = """
package(default_visibility = ["//visibility:public"])

# TensorFlow, Eigen, absl and protobuf headers as shipped in the pip wheel. The bundled
# third-party trees under include/external are not needed by custom ops and would only slow
# down sandboxing.
cc_library(
    name = "tf_headers",
    hdrs = glob(["include/**"], exclude = ["include/external/**"]),
    includes = ["include"],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = ["libtensorflow_framework.so.2"],
)

exports_files(["tf_version.txt"])
"""

def _tf_configure_impl(ctx):
    python = ctx.os.environ.get("PYTHON_BIN_PATH", "")
    if not python:
        fail("PYTHON_BIN_PATH is not set: run tools/bootstrap first (it writes tools/bazelrc.generated).")
    result = ctx.execute([
        python,
        "-c",
        "import tensorflow as tf; print(tf.sysconfig.get_include()); print(tf.sysconfig.get_lib()); print(tf.__version__)",
    ], environment = {"TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.return_code != 0:
        fail("cannot import tensorflow with %s: %s" % (python, result.stderr))
    include_dir, lib_dir, version = result.stdout.strip().splitlines()[-3:]
    ctx.symlink(include_dir, "include")
    ctx.symlink(lib_dir + "/libtensorflow_framework.so.2", "libtensorflow_framework.so.2")
    ctx.file("tf_version.txt", version + "\n")
    ctx.file("BUILD", _BUILD)
    ctx.file("WORKSPACE", "workspace(name = \"local_config_tf\")\n")

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    environ = ["PYTHON_BIN_PATH"],
    local = True,
)
