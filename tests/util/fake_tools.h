#ifndef GITFLEET_TESTS_UTIL_FAKE_TOOLS_H_
#define GITFLEET_TESTS_UTIL_FAKE_TOOLS_H_

// Stand-ins for render tools Debian 12 does not package. Each answers `helm version` as
// helm 3 does (kustomize asks before it runs helm).
//
//   std::string helm = testing::WriteFakeHelm(TempDir("fake-helm"));

#include <string>

namespace gitfleet::testing {

// Writes an executable `helm` into `dir` and returns its path. `helm template NAME DIR
// [--namespace=NS] ...` prints one ConfigMap named NAME in NS ("default" without one): what
// helm prints for a chart whose template writes `namespace: {{ .Release.Namespace }}`.
// Empty when it cannot be written.
std::string WriteFakeHelm(const std::string& dir);

// Like WriteFakeHelm, but the ConfigMap (no namespace) says what values it was given: its
// data.values is each --values file, in order, as "NAME=CONTENT|" (the file's base name,
// its lines joined by spaces, double quotes dropped), and its data.chart the name in the
// chart's Chart.yaml; without one it fails as helm does. With --kube-version or
// --api-versions (`--kube-version=V` as gitfleet passes it, or `--kube-version V` as
// kustomize does), data.capabilities lists them ("kube=1.29 api=apps/v1 "); with --set or
// --set-string, data.sets lists those arguments as given, each followed by a space; with
// --set-file=NAME=FILE, data.files lists "NAME<-CONTENT|" for each (a missing file fails
// as helm fails); without --include-crds, data.crds is "skipped"; with --skip-tests or
// --skip-schema-validation, data.skips lists them, each followed by a space; with
// --namespace=NS, data.releaseNamespace is NS.
std::string WriteValuesEchoHelm(const std::string& dir);

// A helm that checks a chart's dependencies as helm does: each its Chart.yaml lists must be
// in its charts/ folder (a folder with a Chart.yaml, or NAME-*.tgz), or it fails with helm's
// message. It prints a ConfigMap named RELEASE whose data.version is the chart's version, and
// one named RELEASE-SUB (RELEASE-SUB-SUBSUB, ...) for each unpacked subchart, with its version.
std::string WriteDependencyCheckingHelm(const std::string& dir);

}  // namespace gitfleet::testing

#endif  // GITFLEET_TESTS_UTIL_FAKE_TOOLS_H_
