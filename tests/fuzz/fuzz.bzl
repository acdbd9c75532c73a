"""A libFuzzer target with a checked-in corpus that also runs as an ordinary test."""

def gitfleet_fuzzer(name, srcs, deps):
    """Defines NAME_lib, NAME_corpus_test (replays corpus/NAME with gcc) and NAME
    (the libFuzzer binary, built only with --config=fuzz by tools/test --fuzz)."""
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        deps = deps,
        alwayslink = True,
    )
    native.cc_test(
        name = name + "_corpus_test",
        srcs = ["fuzz_main.cc"],
        deps = [":" + name + "_lib"],
        data = native.glob(["corpus/" + name + "/**"]),
        args = ["tests/fuzz/corpus/" + name],
    )
    native.cc_binary(
        name = name,
        testonly = True,
        deps = [":" + name + "_lib"],
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual", "fuzzer"],
    )
