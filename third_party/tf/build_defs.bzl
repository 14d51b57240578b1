"""Macros for TensorFlow custom ops built against the pip TensorFlow in @local_config_tf."""

load("//third_party/cuda:build_defs.bzl", "cuda_library")

TF_COPTS = [
    "-std=c++17",
    "-D_GLIBCXX_USE_CXX11_ABI=1",
    "-DEIGEN_MAX_ALIGN_BYTES=64",
    "-fvisibility-inlines-hidden",
    "-Wno-deprecated-declarations",
]

def tf_kernel_library(name, srcs = [], hdrs = [], gpu_srcs = [], deps = [], copts = [], **kwargs):
    """Op registrations and kernels compiled against TF headers, always linked, so that adding
    this target to a tf_custom_op_library's deps registers its ops. `gpu_srcs` go to nvcc
    (cuda_library) under --config=cuda and are left out otherwise."""
    gpu_deps = []
    if gpu_srcs:
        cuda_library(name = name + "_gpu", srcs = gpu_srcs, deps = [d for d in deps if not d.startswith("@local_config_tf")])
        gpu_deps = [":" + name + "_gpu"]
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        copts = TF_COPTS + copts,
        deps = deps + gpu_deps + ["@local_config_tf//:tf_headers"],
        alwayslink = 1,
        **kwargs
    )

def tf_custom_op_library(name, srcs = [], gpu_srcs = [], deps = [], copts = [], linkopts = [], **kwargs):
    """A shared library `name` (e.g. "libfoo.so") loadable with tf.load_op_library: `srcs` and
    `deps` (tf_kernel_library targets) are linked against libtensorflow_framework.so.2 of the pip
    TensorFlow; `gpu_srcs` compile with nvcc under --config=cuda and are left out otherwise."""
    kernels = name.replace(".so", "") + "_kernels"
    tf_kernel_library(name = kernels, srcs = srcs, gpu_srcs = gpu_srcs, deps = deps, copts = copts)
    native.cc_binary(
        name = name,
        srcs = [],
        deps = [":" + kernels, "@local_config_tf//:libtensorflow_framework"],
        linkshared = 1,
        linkstatic = 1,
        linkopts = linkopts,
        **kwargs
    )
