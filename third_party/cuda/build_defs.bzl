"""cuda_library: CUDA sources compiled with nvcc under --config=cuda, an empty library otherwise."""

def _cuda_objects_impl(ctx):
    cc = ctx.attr.deps
    headers = depset(ctx.files.hdrs, transitive = [d[CcInfo].compilation_context.headers for d in cc])
    includes = depset(transitive = [
        depset(d[CcInfo].compilation_context.includes.to_list() +
               d[CcInfo].compilation_context.system_includes.to_list() +
               d[CcInfo].compilation_context.quote_includes.to_list())
        for d in cc
    ])
    defines = depset(transitive = [d[CcInfo].compilation_context.defines for d in cc])
    objects = []
    for src in ctx.files.srcs:
        obj = ctx.actions.declare_file("_objs/%s/%s.pic.o" % (ctx.label.name, src.basename))
        args = ctx.actions.args()
        args.add_all(["-x", "cu", "-c", "-std=c++17", "-O3", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC",
                      "-D_GLIBCXX_USE_CXX11_ABI=1", "-I.", "-I" + ctx.bin_dir.path])
        for arch in ctx.attr.archs:
            args.add("-gencode=arch=compute_%s,code=sm_%s" % (arch, arch))
        args.add_all(includes, format_each = "-I%s")
        args.add_all(defines, format_each = "-D%s")
        args.add_all(ctx.attr.copts)
        args.add_all(["-o", obj, src])
        ctx.actions.run(
            executable = ctx.executable._nvcc,
            arguments = [args],
            inputs = depset([src], transitive = [headers]),
            outputs = [obj],
            mnemonic = "NvccCompile",
            progress_message = "nvcc %s" % src.short_path,
            use_default_shell_env = True,
        )
        objects.append(obj)
    return [DefaultInfo(files = depset(objects))]

_cuda_objects = rule(
    implementation = _cuda_objects_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu", ".cu.cc"]),
        "hdrs": attr.label_list(allow_files = True),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
        "archs": attr.string_list(),
        "_nvcc": attr.label(default = "@local_config_cuda//:nvcc", executable = True, cfg = "exec"),
    },
)

# Turing to Hopper (CUDA 13 dropped Volta); sm_90 is what the lent H100/H200 machines run.
DEFAULT_CUDA_ARCHS = ["75", "80", "90"]

def cuda_library(name, srcs, hdrs = [], deps = [], copts = [], archs = DEFAULT_CUDA_ARCHS, **kwargs):
    """A cc_library of nvcc-compiled `srcs` (plus `hdrs`) under --config=cuda; headers only otherwise.

    `deps` must be TF-free cc_library targets: CUDA cores stay testable on machines without TF."""
    _cuda_objects(
        name = name + "_objs",
        srcs = srcs,
        hdrs = hdrs,
        deps = deps,
        copts = copts,
        archs = archs,
        tags = ["manual"],
    )
    native.cc_library(
        name = name,
        srcs = select({
            "//third_party/cuda:using_cuda": [":" + name + "_objs"],
            "//conditions:default": [],
        }),
        hdrs = hdrs,
        deps = deps + select({
            "//third_party/cuda:using_cuda": ["@local_config_cuda//:cudart_static"],
            "//conditions:default": [],
        }),
        alwayslink = 1,
        # Static: device code and the static cudart must land in the same link.
        linkstatic = 1,
        **kwargs
    )
