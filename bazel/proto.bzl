"""Protocol buffer and gRPC code generation with Debian's protoc and grpc_cpp_plugin."""

def gitfleet_proto_library(name, srcs, deps = [], grpc = False, visibility = None):
    """Generates C++ (and optionally gRPC) code for `srcs` and wraps it in a cc_library.

    Example:
        gitfleet_proto_library(name = "agent_proto", srcs = ["agent.proto"], grpc = True)

    Args:
      name: the cc_library's name.
      srcs: .proto files, relative to this package.
      deps: other gitfleet_proto_library targets the protos import.
      grpc: whether to generate service stubs.
      visibility: passed to the cc_library.
    """
    outs = []
    hdrs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.cc", base + ".pb.h"]
        hdrs.append(base + ".pb.h")
        if grpc:
            outs += [base + ".grpc.pb.cc", base + ".grpc.pb.h"]
            hdrs.append(base + ".grpc.pb.h")

    pkg = native.package_name()
    grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin" if grpc else ""
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = "/usr/bin/protoc -I. --cpp_out=$(GENDIR) %s %s" % (
            grpc_flags,
            " ".join([pkg + "/" + s for s in srcs]),
        ),
    )
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [d + "_srcs" for d in deps],
        visibility = visibility,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = hdrs,
        deps = deps + ["//bazel:protobuf"] + (["//bazel:grpc"] if grpc else []),
        visibility = visibility,
    )
