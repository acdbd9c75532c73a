#ifndef GITFLEET_BENCH_IN_PROCESS_H_
#define GITFLEET_BENCH_IN_PROCESS_H_

// The control plane's controller and hub in one process, over a memory store, reading
// local repositories: what the in-process benches (render_monorepo, prune_guard) drive.
//
//   ControllerOptions options;
//   InProcessControlPlane plane(tmp.path() + "/cache", options);
//   plane.controller.AddSource(source, false);

#include <memory>
#include <string>

#include "common/metrics/metrics.h"
#include "controlplane/distribute/hub.h"
#include "controlplane/fleet/controller.h"
#include "controlplane/metrics.h"
#include "controlplane/source/git_repository.h"
#include "controlplane/store/store.h"

namespace gitfleet {

struct InProcessControlPlane {
  // Git caches go under `cache_dir`; local sources are allowed whatever `options` says.
  // With `trust_agent_labels`, clusters are targeted by the labels their hellos carry.
  InProcessControlPlane(const std::string& cache_dir, ControllerOptions options,
                        bool trust_agent_labels = false)
      : repos(NewLibgit2Repositories(cache_dir, {}, {"", /*allow_local=*/true})),
        controller(&store, repos.get(), &hub, metrics, WithLocalSources(std::move(options))) {
    hub.SetTrustAgentLabels(trust_agent_labels);
    controller.Start();
  }

  metrics::Registry registry;
  ControlPlaneMetrics metrics{registry};
  MemoryStore store;
  std::unique_ptr<GitRepositories> repos;
  Hub hub{&store, metrics};
  Controller controller;

 private:
  static ControllerOptions WithLocalSources(ControllerOptions options) {
    options.allow_local_sources = true;  // the benches' repositories are local
    return options;
  }
};

}  // namespace gitfleet

#endif  // GITFLEET_BENCH_IN_PROCESS_H_
