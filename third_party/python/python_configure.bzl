"""Repository rule registering the project venv's interpreter as Bazel's Python toolchain.

py_binary/py_test stubs then start with the venv's python (even under the strict action
environment, whose PATH has no `python`), and protoc runs from the same venv."""

_BUILD = """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

py_runtime(
    name = "venv_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "venv_runtime_pair",
    py3_runtime = ":venv_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":venv_runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)

sh_binary(
    name = "python",
    srcs = ["python.sh"],
)

exports_files(["tags.bzl"])
"""

# Wheel tags of the venv's interpreter, e.g. cp311 / cp311 / linux_x86_64.
_TAGS_SCRIPT = """
import sys, sysconfig
tag = "cp%d%d" % sys.version_info[:2]
platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
print("PYTHON_TAG = %r\\nABI_TAG = %r\\nPLATFORM_TAG = %r" % (tag, tag, platform))
"""

def _python_configure_impl(ctx):
    python = ctx.os.environ.get("PYTHON_BIN_PATH", "")
    if not python:
        fail("PYTHON_BIN_PATH is not set: run tools/bootstrap first (it writes tools/bazelrc.generated).")
    if not ctx.path(python).exists:
        fail("PYTHON_BIN_PATH=%s does not exist: run tools/bootstrap." % python)
    tags = ctx.execute([python, "-c", _TAGS_SCRIPT])
    if tags.return_code != 0:
        fail("cannot run %s: %s" % (python, tags.stderr))
    ctx.file("tags.bzl", tags.stdout)
    ctx.file("python.sh", "#!/bin/sh\nexec %s \"$@\"\n" % python, executable = True)
    ctx.file("BUILD", _BUILD.format(python = python))
    ctx.file("WORKSPACE", "workspace(name = \"local_config_python\")\n")

python_configure = repository_rule(
    implementation = _python_configure_impl,
    environ = ["PYTHON_BIN_PATH"],
    local = True,
)
