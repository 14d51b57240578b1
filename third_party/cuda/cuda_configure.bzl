"""Repository rule exposing the local CUDA toolkit (nvcc, headers, static cudart) as @local_config_cuda.

The toolkit is found at $CUDA_PATH, else /usr/local/cuda. Without one the repository still loads;
only builds under --config=cuda need it, and there `nvcc` fails with a message saying so."""

_BUILD = """
package(default_visibility = ["//visibility:public"])

sh_binary(
    name = "nvcc",
    srcs = ["nvcc.sh"],
)

cc_library(
    name = "cuda_headers",
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

cc_library(
    name = "cudart_static",
    srcs = glob(["lib64/libcudart_static.a"]),
    linkopts = ["-ldl", "-lrt", "-lpthread"],
    deps = [":cuda_headers"],
)
"""

def _cuda_configure_impl(ctx):
    cuda_path = ctx.os.environ.get("CUDA_PATH", "/usr/local/cuda")
    nvcc = ctx.path(cuda_path + "/bin/nvcc")
    if nvcc.exists:
        ctx.symlink(cuda_path + "/include", "include")
        ctx.symlink(cuda_path + "/lib64", "lib64")
        ctx.file("nvcc.sh", "#!/bin/sh\nexec %s \"$@\"\n" % nvcc, executable = True)
    else:
        ctx.file("include/.empty", "")
        ctx.file("nvcc.sh", "#!/bin/sh\necho 'nvcc not found under %s: set CUDA_PATH' >&2\nexit 1\n" % cuda_path, executable = True)
    ctx.file("BUILD", _BUILD)
    ctx.file("WORKSPACE", "workspace(name = \"local_config_cuda\")\n")

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_PATH"],
    local = True,
)
