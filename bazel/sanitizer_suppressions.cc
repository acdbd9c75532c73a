// Suppressions the sanitizer runtimes read from the executable in --config=asan and
// --config=tsan builds (ignored otherwise). Every binary and test links this file, so the
// daemons that end-to-end tests start are covered too. Each entry names a known problem
// in a Debian system library, never in gitfleet's code.

// libgit2 1.5.1 never frees the pcre2 match data of its config regex lookups. gitfleet
// makes those calls once per repository URL (Libgit2Repository keeps its remote), so the
// leak is bounded by the number of URLs. Stacks stop inside libpcre2 (no frame
// pointers), and only libgit2 uses pcre2 here.
//
// libgit2 1.5.1's SSH transport leaks two small strings (32 bytes) on every failed SSH
// fetch, and once a libssh2 known-hosts list when its own host-key check fails early
// (private_git_test reaches both on purpose: wrong keys, changed host keys, a server that
// never answers). The stacks stop at libgit2's or libssh2's allocation with no symbols, so
// only the library can be named. gitfleet's own libgit2 objects are all held by GitPtr
// (libgit2_repository.cc), freed on every path. The leak is bounded by failed fetches:
// a failing SSH source retried at the backoff cap (5 minutes) costs about 10 KiB a day.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libpcre2-8.so\n"
         "leak:libgit2.so.1.5\n"
         "leak:libssh2.so.1\n";
}

// Debian's gRPC and Abseil are not built with -fsanitize=thread, so TSAN cannot see
// their internal synchronisation and reports races between their own threads. These
// patterns name those internals only; a race with a gitfleet frame on both sides still
// reports.
extern "C" const char* __tsan_default_suppressions() {
  return "race:grpc_event_engine::posix_engine::Epoll1Poller\n"
         // gRPC's header code (inlined into our binaries) handing completion tags to its
         // core. race_top: only when the racing access itself is gRPC's, so races in our
         // reactor callbacks, which run beneath these frames, still report.
         "race_top:grpc::internal::\n"
         "race_top:grpc::Server\n"
         "race:absl::*::synchronization_internal::GraphCycles\n"
         "called_from_lib:libgrpc.so.29\n"
         "called_from_lib:libgpr.so.29\n"
         // gRPC builds statuses and error strings with Debian's (uninstrumented) Abseil
         // on its own threads. This ignores only the memcpy-style calls those libraries
         // make; gitfleet's own accesses stay instrumented.
         "called_from_lib:libabsl_strings.so\n"
         "called_from_lib:libabsl_str_format_internal.so\n"
         "called_from_lib:libabsl_status.so\n"
         "called_from_lib:libabsl_cord.so\n"
         "called_from_lib:libabsl_cord_internal.so\n"
         "called_from_lib:libabsl_time.so\n"
         "called_from_lib:libabsl_synchronization.so\n"
         "called_from_lib:libabsl_graphcycles_internal.so\n"
         // gRPC's TLS hands OpenSSL objects between its threads.
         "called_from_lib:libssl.so.3\n"
         "called_from_lib:libcrypto.so.3\n";
}
