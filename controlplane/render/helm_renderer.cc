#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/subprocess.h"
#include "controlplane/render/checkout.h"
#include "controlplane/render/renderer.h"

namespace gitfleet {

std::string FindHelm() {
  for (const char* candidate : {"/usr/local/bin/helm", "/usr/bin/helm"}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  return "";
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
  run.max_stdout_bytes = options_.limits.max_bytes * 2;
  run.max_stderr_bytes = 4096;
  absl::StatusOr<SubprocessResult> result = RunSubprocess(
      {options_.binary, "template", input.bundle, scratch.root() + "/" + input.path}, run);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("helm ", input.path, ": ", result.status().message()));
  }
  if (result->exit_code != 0) {
    std::string message = absl::StrReplaceAll(result->stderr_text, {{scratch.root() + "/", ""}});
    return absl::InvalidArgumentError(absl::StrCat(
        "helm template ", input.path, " failed: ", absl::StripTrailingAsciiWhitespace(message)));
  }
  return ObjectsFromToolOutput(input.bundle, absl::StrCat(input.path, " (helm output)"),
                               result->stdout_text, options_.limits);
}

}  // namespace gitfleet
