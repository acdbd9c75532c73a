#ifndef GITFLEET_CONTROLPLANE_RENDER_CHECKOUT_H_
#define GITFLEET_CONTROLPLANE_RENDER_CHECKOUT_H_

// A scratch copy of repository files on disk, for engines that run external tools
// (kustomize, helm). Removed, with everything in it, on destruction.
//
//   GF_ASSIGN_OR_RETURN(auto checkout, Checkout::Write("/var/lib/gitfleet/render", files));
//   RunSubprocess({"kustomize", "build", checkout->root() + "/apps/web"}, options);
//
// Not thread-safe; each render makes its own.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/source/git_repository.h"

namespace gitfleet {

class Checkout {
 public:
  // Writes `files` under a fresh directory in `parent`. Paths that are absolute or
  // contain "." or ".." parts are refused with InvalidArgument naming them.
  static absl::StatusOr<std::unique_ptr<Checkout>> Write(const std::string& parent,
                                                         const std::vector<RepoFile>& files);
  ~Checkout();
  Checkout(const Checkout&) = delete;
  Checkout& operator=(const Checkout&) = delete;

  // The scratch directory (HOME for the tools) and the repository root inside it.
  const std::string& path() const { return path_; }
  std::string root() const { return path_ + "/repo"; }

 private:
  explicit Checkout(std::string path) : path_(std::move(path)) {}
  const std::string path_;
};

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_CHECKOUT_H_
