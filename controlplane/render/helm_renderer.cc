#include "controlplane/render/helm_renderer.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/subprocess.h"
#include "controlplane/render/checkout.h"

namespace gitfleet {
namespace {
// Where fleet.yaml's helm.values are written in the scratch copy of the chart.
constexpr char kFleetValuesFile[] = ".gitfleet-fleet-yaml-values.yaml";
}  // namespace

std::string FindHelm() {
  for (const char* candidate : {"/usr/local/bin/helm", "/usr/bin/helm"}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<std::vector<std::string>> HelmTemplateArgs(
    const std::string& binary, const std::string& release, const std::string& chart_dir,
    const std::string& release_namespace, const std::vector<std::string>& values_files,
    const Values& values) {
  // A chart's crds/ folder too, as Argo CD renders it: without them its custom resources
  // have no kind to be.
  std::vector<std::string> args = {binary, "template", release, chart_dir, "--include-crds"};
  if (!release_namespace.empty()) args.push_back("--namespace=" + release_namespace);
  for (const std::string& file : values_files) {
    if (absl::Status s = CheckHelmValuesFile(file); !s.ok()) return s;
    args.push_back("--values=" + chart_dir + "/" + file);
  }
  for (const auto& [name, value] : values) {
    if (IsClusterContextKey(name)) continue;  // only for fleet.yaml's templates
    if (name.empty() || name.find_first_of("=,[]") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "helm value \"", name, "\": names may not be empty or contain '=', ',', '[' or ']'"));
    }
    // helm splits values on unescaped commas.
    args.push_back(absl::StrCat("--set-string=", name, "=",
                                absl::StrReplaceAll(value, {{"\\", "\\\\"}, {",", "\\,"}})));
  }
  return args;
}

HelmRenderer::HelmRenderer(HelmOptions options) : options_(std::move(options)) {
  if (options_.binary.empty()) options_.binary = FindHelm();
  if (options_.scratch_dir.empty()) options_.scratch_dir = "/tmp";
}

absl::StatusOr<ObjectSet> HelmRenderer::Render(const RenderInput& input) {
  if (options_.binary.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "engine helm (", input.path,
        "): the control plane has no helm binary (helm is not packaged for Debian 12; install "
        "it as /usr/local/bin/helm or pass --helm)"));
  }
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("helm ", input.path, ": cannot execute ",
                                            options_.binary, ": ", strerror(errno)));
  }
  if (absl::Status sandbox = RequireNetworkSandbox(options_, "helm", input.path); !sandbox.ok()) {
    return sandbox;
  }
  if (input.read_paths != nullptr) *input.read_paths = {input.path};
  absl::StatusOr<std::unique_ptr<Checkout>> checkout =
      Checkout::Write(options_.scratch_dir, input.files);
  if (!checkout.ok()) return checkout.status();
  const Checkout& scratch = **checkout;
  SubprocessOptions run;
  run.cwd = scratch.path();
  run.env = {"PATH=/usr/bin:/bin",
             "HOME=" + scratch.path(),
             "HELM_CACHE_HOME=" + scratch.path() + "/cache",
             "HELM_CONFIG_HOME=" + scratch.path() + "/config",
             "HELM_DATA_HOME=" + scratch.path() + "/data",
             "KUBECONFIG=/dev/null"};
  run.timeout = options_.timeout;
  run.max_cpu = options_.timeout;
  run.max_memory_bytes = options_.limits.max_memory_bytes;
  run.max_stdout_bytes = options_.limits.max_bytes * 2;
  run.max_stderr_bytes = 4096;
  static const Values kNoValues;
  // The chart: the bundle's folder, or the folder inside it fleet.yaml's helm.chart names.
  const std::string chart =
      input.helm_chart.empty()
          ? input.path
          : (input.path.empty() ? input.helm_chart : input.path + "/" + input.helm_chart);
  const std::string chart_dir = scratch.root() + "/" + chart;
  // fleet.yaml's values (merged and filled in), then the bundle's own files.
  std::vector<std::string> values_files;
  if (!input.fleet_helm_values.empty()) {
    std::string written = chart_dir + "/" + kFleetValuesFile;
    if (access(written.c_str(), F_OK) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("helm ", chart, ": the chart holds a file named ", kFleetValuesFile,
                       ", where gitfleet puts fleet.yaml's helm.values"));
    }
    std::ofstream out(written);
    out << input.fleet_helm_values;
    out.close();
    if (!out) {
      return absl::InternalError(absl::StrCat("helm ", input.path, ": cannot write ", written));
    }
    values_files.push_back(kFleetValuesFile);
  }
  values_files.insert(values_files.end(), input.helm_values_files.begin(),
                      input.helm_values_files.end());
  absl::StatusOr<std::vector<std::string>> args = HelmTemplateArgs(
      options_.binary, input.helm_release.empty() ? input.bundle : input.helm_release, chart_dir,
      input.target_namespace, values_files, input.values ? *input.values : kNoValues);
  if (!args.ok()) return args.status();
  if (input.read_values != nullptr) {
    // helm sees every value, so every value counts (a cluster's name and labels only
    // where fleet.yaml's templates looked them up).
    for (const auto& [name, value] : input.values ? *input.values : kNoValues) {
      if (!IsClusterContextKey(name)) (*input.read_values)[name] = value;
    }
  }
  // No network for the chart either (as kustomize): a fresh network namespace.
  if (!NetworkSandbox().empty()) {
    args->insert(args->begin(), {NetworkSandbox(), "--net", "--map-root-user"});
  }
  absl::StatusOr<SubprocessResult> result = RunSubprocess(*args, run);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("helm ", input.path, ": ", result.status().message()));
  }
  if (result->exit_code != 0) {
    std::string message = absl::StrReplaceAll(result->stderr_text, {{scratch.root() + "/", ""}});
    return absl::InvalidArgumentError(absl::StrCat(
        "helm template ", chart, " failed: ", absl::StripTrailingAsciiWhitespace(message),
        LfsPointerHint(input.files, input.path)));
  }
  return ObjectsFromToolOutput(input.bundle, absl::StrCat(input.path, " (helm output)"),
                               result->stdout_text, options_.limits);
}

namespace {

class HelmFactory : public RendererFactory {
 public:
  std::string name() const override { return "helm"; }
  bool takes_values() const override { return true; }
  bool explicit_values_only() const override { return true; }
  bool reads_outside_path() const override { return false; }
  int detect_order() const override { return 20; }
  bool Detects(const std::string& path, const std::vector<RepoFile>& files) const override {
    std::string chart = path.empty() ? "Chart.yaml" : path + "/Chart.yaml";
    for (const RepoFile& file : files) {
      if (file.path == chart) return true;
    }
    return false;
  }
  std::unique_ptr<Renderer> Create(const EngineOptions& options) const override {
    return std::make_unique<HelmRenderer>(options.Tool("helm"));
  }
};

const bool kRegistered = RegisterRendererFactory(std::make_unique<HelmFactory>());

}  // namespace
}  // namespace gitfleet
