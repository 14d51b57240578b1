"""py_wheel_package: an installable wheel of Python packages, generated protos and native libraries.

Bazel 4.2.3 offers no wheel rule offline, so tools/build_wheel.py assembles it: every file of the
deps' runfiles below `packages`, tests and test data excluded, with deterministic zip entries."""

load("@local_config_python//:tags.bzl", "ABI_TAG", "PLATFORM_TAG", "PYTHON_TAG")

def _wheel_impl(ctx):
    wheel_name = "%s-%s-%s-%s-%s.whl" % (ctx.attr.distribution, ctx.attr.version, PYTHON_TAG,
                                          ABI_TAG, PLATFORM_TAG)
    wheel = ctx.actions.declare_file(wheel_name)
    files = depset(transitive = [
        d[DefaultInfo].default_runfiles.files
        for d in ctx.attr.deps
    ] + [d[PyInfo].transitive_sources for d in ctx.attr.deps if PyInfo in d])
    manifest = ctx.actions.args()
    manifest.set_param_file_format("multiline")
    manifest.add_all(files, map_each = _manifest_line)
    manifest_file = ctx.actions.declare_file(ctx.label.name + ".manifest")
    ctx.actions.write(manifest_file, manifest)

    args = ctx.actions.args()
    args.add(ctx.file._builder)
    args.add("--output", wheel)
    args.add("--manifest", manifest_file)
    args.add("--distribution", ctx.attr.distribution)
    args.add("--version", ctx.attr.version)
    args.add("--tag", "%s-%s-%s" % (PYTHON_TAG, ABI_TAG, PLATFORM_TAG))
    args.add("--summary", ctx.attr.summary)
    args.add("--requirements", ctx.file.requirements)
    args.add_all(ctx.attr.packages, before_each = "--package")
    args.add_all(["%s=%s" % (k, v) for k, v in sorted(ctx.attr.console_scripts.items())],
                 before_each = "--console_script")
    ctx.actions.run(
        executable = ctx.executable._python,
        arguments = [args],
        inputs = depset([manifest_file, ctx.file._builder, ctx.file.requirements], transitive = [files]),
        outputs = [wheel],
        mnemonic = "PyWheel",
        progress_message = "wheel %s" % wheel_name,
    )
    return [DefaultInfo(files = depset([wheel]), runfiles = ctx.runfiles(files = [wheel]))]

def _manifest_line(f):
    # External repositories' files (short_path "../repo/...") never go into the wheel.
    if f.short_path.startswith("../"):
        return None
    return "%s\t%s" % (f.short_path, f.path)

py_wheel_package = rule(
    implementation = _wheel_impl,
    attrs = {
        "deps": attr.label_list(mandatory = True),
        "distribution": attr.string(mandatory = True),
        "version": attr.string(mandatory = True),
        "summary": attr.string(default = ""),
        "packages": attr.string_list(mandatory = True, doc = "top-level packages to ship"),
        "requirements": attr.label(allow_single_file = True, mandatory = True,
                                   doc = "pinned requirements, one `name==version` a line"),
        "console_scripts": attr.string_dict(doc = "command name -> module:function"),
        "_builder": attr.label(default = "//tools:build_wheel.py", allow_single_file = True),
        "_python": attr.label(default = "@local_config_python//:python", executable = True, cfg = "exec"),
    },
)
