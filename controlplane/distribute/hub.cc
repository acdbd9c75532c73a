#include "controlplane/distribute/hub.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/agent_protocol.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/manifest/object.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/thread_name.h"
#include "controlplane/distribute/status_bounds.h"
#include "controlplane/store/revisions.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {
namespace {

constexpr char kClusters[] = "clusters";
constexpr char kReports[] = "reports";
// cluster/bundle -> the revision the cluster regressed on (see Hub::Regressions), so a
// restart does not let a rollout past a break it had already seen.
constexpr char kRegressions[] = "regressions";
// digest -> ApiVersionList: what clusters serve (Hello.api_versions), once per distinct list.
constexpr char kApiVersions[] = "api-versions";
// Revisions loaded from the store and kept; cleared when full.
constexpr size_t kMaxStoredRevisions = 64;

std::string ReportKey(const std::string& cluster, const std::string& bundle) {
  return absl::StrCat(cluster, "/", bundle);
}

}  // namespace

Hub::Hub(Store* store, ControlPlaneMetrics& metrics, absl::Duration flush_interval,
         size_t max_cached_message_bytes, Clock* clock)
    : store_(store),
      metrics_(metrics),
      sent_full_(metrics.updates_sent.Add({{"kind", "full"}})),
      sent_delta_(metrics.updates_sent.Add({{"kind", "delta"}})),
      sent_removal_(metrics.updates_sent.Add({{"kind", "removal"}})),
      ack_ok_(metrics.acks.Add({{"result", "ok"}})),
      ack_nack_(metrics.acks.Add({{"result", "nack"}})),
      ack_need_full_(metrics.acks.Add({{"result", "need_full"}})),
      status_via_ack_(metrics.status_reports.Add({{"via", "ack"}})),
      status_via_message_(metrics.status_reports.Add({{"via", "message"}})),
      flush_interval_(flush_interval),
      clock_(clock),
      writes_(store),
      messages_(max_cached_message_bytes) {
  flusher_ = std::thread([this] {
    NameThisThread("gf-hub-flush");
    absl::Time counted = absl::InfinitePast();
    while (true) {
      {
        MutexLock lock(&stop_mu_);
        if (clock_->AwaitWithDeadline(
                &stop_mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(stop_mu_) { return stopping_; },
                clock_->Now() + flush_interval_)) {
          return;
        }
      }
      Flush();
      diffs_.Expire(clock_->Now());
      if (clock_->Now() - counted >= kClusterCountInterval) {
        CountClusters();
        counted = clock_->Now();
      }
      flusher_heartbeat_.Beat();
    }
  });
}

Hub::~Hub() {
  {
    MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  flusher_.join();
  Flush();
  diffs_.FailAll(absl::UnavailableError("the control plane is stopping"));
}

void Hub::RequestDiff(const std::string& cluster, const std::string& bundle, absl::Duration timeout,
                      DiffCallback done) {
  std::shared_ptr<AgentConnection> connection;
  {
    MutexLock lock(&mu_);
    auto it = agents_.find(cluster);
    if (it != agents_.end() && it->second.connection != nullptr) {
      v1::ControlMessage request;
      request.mutable_diff()->set_id(diffs_.Add(cluster, clock_->Now() + timeout, std::move(done)));
      request.mutable_diff()->set_bundle(bundle);
      it->second.control.push_back(std::move(request));
      connection = it->second.connection;
    }
  }
  if (connection == nullptr) {
    done(absl::FailedPreconditionError(absl::StrCat("cluster ", cluster, " is not connected")));
    return;
  }
  connection->NotifyControl();
}

void Hub::OnDiff(uint64_t session, const v1::DiffResult& result) {
  std::string cluster;
  {
    MutexLock lock(&mu_);
    Agent* agent = AgentForSessionLocked(session);
    if (agent == nullptr) return;
    cluster = agent->info.name();
  }
  diffs_.Answer(cluster, result);  // only the cluster asked may answer
}

void Hub::CountClusters() {
  // Registered clusters only: one seen without being registered (--allow-any-agent), or
  // retired, cannot be told apart from one that is gone for good.
  int connected = 0, disconnected = 0, never_connected = 0, suspended = 0;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, agent] : agents_) {
      if (!agent.info.registered()) continue;
      if (agent.suspended) {
        ++suspended;  // under maintenance: its agent may well be down
      } else if (agent.connection != nullptr) {
        ++connected;
      } else if (agent.info.last_seen().seconds() > 0) {
        ++disconnected;
      } else {
        ++never_connected;
      }
    }
  }
  metrics_.clusters.Add({{"state", "connected"}}).Set(connected);
  metrics_.clusters.Add({{"state", "disconnected"}}).Set(disconnected);
  metrics_.clusters.Add({{"state", "never_connected"}}).Set(never_connected);
  metrics_.clusters.Add({{"state", "suspended"}}).Set(suspended);
}

void Hub::Flush() {
  // Not under the hub's lock: agents never wait on the disk.
  if (absl::Status stored = writes_.Flush(); !stored.ok()) {
    GF_LOG(ERROR) << "cannot store cluster records and reports (kept for the next flush): "
                  << stored;
  }
}

absl::Status Hub::Load() {
  absl::StatusOr<std::vector<Store::Entry>> clusters = store_->List(kClusters);
  if (!clusters.ok()) return clusters.status();
  absl::StatusOr<std::vector<Store::Entry>> reports = store_->List(kReports);
  if (!reports.ok()) return reports.status();
  absl::StatusOr<std::vector<Store::Entry>> regressions = store_->List(kRegressions);
  if (!regressions.ok()) return regressions.status();
  absl::StatusOr<std::vector<Store::Entry>> apis = store_->List(kApiVersions);
  if (!apis.ok()) return apis.status();
  MutexLock lock(&mu_);
  std::set<std::string> named;  // digests cluster records name
  for (const Store::Entry& entry : *clusters) {
    v1::ClusterRecord record;
    if (record.ParseFromString(entry.value)) named.insert(record.api_versions_digest());
  }
  {
    MutexLock apis_lock(&apis_mu_);
    for (const Store::Entry& entry : *apis) {
      v1::ApiVersionList list;
      if (named.count(entry.key) == 0 || !list.ParseFromString(entry.value) ||
          api_versions_.size() >= kMaxApiVersionLists) {
        writes_.Delete(kApiVersions, entry.key);  // no cluster serves it any more
        continue;
      }
      api_versions_[entry.key] = std::make_shared<const std::vector<std::string>>(
          list.api_versions().begin(), list.api_versions().end());
    }
  }
  for (const Store::Entry& entry : *clusters) {
    v1::ClusterRecord record;
    if (!record.ParseFromString(entry.value)) {
      return absl::DataLossError(absl::StrCat("stored cluster ", entry.key, " is corrupt"));
    }
    Agent& agent = agents_[record.name()];
    agent.info.set_name(record.name());
    agent.reported = LabelMap(record.labels().begin(), record.labels().end());
    UpdateLabelsLocked(&agent);
    agent.info.set_agent_version(record.agent_version());
    agent.info.set_kubernetes_version(record.kubernetes_version());
    if (std::shared_ptr<const std::vector<std::string>> listed =
            ApiVersions(record.api_versions_digest())) {
      agent.info.set_api_versions_digest(record.api_versions_digest());
      agent.info.set_api_versions_count(static_cast<int32_t>(listed->size()));
    }
    *agent.info.mutable_last_seen() = record.last_seen();
    agent.adopt_pending = record.adopt_pending();
    agent.info.set_adopt_pending(record.adopt_pending());
    agent.suspended = record.suspended();
    agent.info.set_suspended(record.suspended());
  }
  for (const Store::Entry& entry : *reports) {
    size_t slash = entry.key.find('/');
    v1::StatusUpdate report;
    if (slash == std::string::npos || !report.ParseFromString(entry.value)) {
      return absl::DataLossError(absl::StrCat("stored report ", entry.key, " is corrupt"));
    }
    auto it = agents_.find(entry.key.substr(0, slash));
    if (it == agents_.end()) continue;
    auto [slot, fresh] = it->second.reports.try_emplace(report.bundle());
    CountReportLocked(report.bundle(), report.sync_state(), report.health(), 1);
    if (!fresh) {
      CountReportLocked(report.bundle(), slot->second.sync_state(), slot->second.health(), -1);
    }
    slot->second = std::move(report);
  }
  for (const Store::Entry& entry : *regressions) {
    size_t slash = entry.key.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == entry.key.size() ||
        entry.value.empty()) {
      return absl::DataLossError(absl::StrCat("stored regression ", entry.key, " is corrupt"));
    }
    std::string cluster = entry.key.substr(0, slash);
    if (agents_.count(cluster) == 0) {  // of a cluster not kept: nothing to halt
      writes_.Delete(kRegressions, entry.key);
      continue;
    }
    regressed_[entry.key.substr(slash + 1)][cluster] = entry.value;
  }
  return absl::OkStatus();
}

bool Hub::Targets(const BundleTarget& target, const Agent& agent) const {
  return agent.labels_known && target.selector.Matches(agent.labels);
}

bool Hub::HoldsAny(const Agent& agent, const std::string& bundle) {
  return agent.held.count(bundle) > 0 || agent.whole.count(bundle) > 0;
}

bool Hub::MayHold(const Agent& agent, const std::string& bundle) {
  return HoldsAny(agent, bundle) ||
         (agent.connection == nullptr && agent.reports.count(bundle) > 0);
}

bool Hub::GetsStable(const std::string& bundle, const BundleTarget& target, const Agent& agent) {
  return target.stable != nullptr && !HoldsAny(agent, bundle) &&
         (target.stable_gate == nullptr || target.stable_gate->Allows(agent.info.name()));
}

void Hub::UpdateLabelsLocked(Agent* agent) {
  ++membership_version_;
  if (trust_agent_labels_) {
    agent->labels = agent->reported;
    agent->labels_known = true;
  } else if (agent->owned.has_value()) {
    agent->labels = *agent->owned;
    agent->labels_known = true;
  } else {
    agent->labels.clear();
    agent->labels_known = false;
  }
  agent->info.clear_labels();
  agent->info.mutable_labels()->insert(agent->labels.begin(), agent->labels.end());
  agent->info.clear_reported_labels();
  agent->info.mutable_reported_labels()->insert(agent->reported.begin(), agent->reported.end());
  std::vector<ClusterGroupMembership> groups;
  if (groups_ != nullptr && agent->labels_known) groups = GroupsMatching(*groups_, agent->labels);
  SetGroupsLocked(agent, groups, EncodeGroupMemberships(groups));
}

bool Hub::SetGroupsLocked(Agent* agent, const std::vector<ClusterGroupMembership>& groups,
                          const std::string& text) {
  const bool defined = groups_ != nullptr;
  if (agent->groups_text == text && agent->info.groups_defined() == defined) return false;
  agent->groups_text = text;
  agent->info.set_groups_defined(defined);
  SetGroups(groups, &agent->info);
  return true;
}

void Hub::SetClusterGroups(std::shared_ptr<const std::vector<ClusterGroup>> groups) {
  // Only the label keys the groups' selectors read decide a cluster's groups: clusters that
  // agree on those (a few dozen sets in a fleet of thousands) are matched once.
  std::set<std::string> keys;
  if (groups != nullptr) {
    for (const ClusterGroup& group : *groups) {
      if (!group.selector.has_value()) continue;
      std::set<std::string> read = group.selector->Keys();
      keys.insert(read.begin(), read.end());
    }
  }
  struct Found {
    std::vector<ClusterGroupMembership> groups;
    std::string text;
  };
  std::map<LabelMap, Found> by_keys;
  std::vector<Notification> notify;
  {
    MutexLock lock(&mu_);
    groups_ = std::move(groups);
    // Groups choose no cluster's bundles (selectors read labels), only what bundles whose
    // revisions differ per cluster render for it: those are asked again.
    std::vector<std::string> per_cluster;
    auto varies = [](const std::shared_ptr<const BundleContent>& content) {
      return content != nullptr && content->Uniform() == nullptr;
    };
    for (const auto& [bundle, target] : bundles_) {
      if (varies(target.content) || varies(target.stable)) per_cluster.push_back(bundle);
    }
    bool changed = false;
    for (auto& [name, agent] : agents_) {
      LabelMap read;  // its labels of `keys`
      if (agent.labels_known) {
        for (const std::string& key : keys) {
          auto it = agent.labels.find(key);
          if (it != agent.labels.end()) read.insert(*it);
        }
      }
      auto found = by_keys.find(read);
      if (found == by_keys.end()) {
        Found now;
        if (groups_ != nullptr) now.groups = GroupsMatching(*groups_, read);
        now.text = EncodeGroupMemberships(now.groups);
        found = by_keys.emplace(std::move(read), std::move(now)).first;
      }
      static const Found kNone;  // a cluster whose labels are not known is in no group
      const Found& in = agent.labels_known ? found->second : kNone;
      if (!SetGroupsLocked(&agent, in.groups, in.text)) continue;
      changed = true;
      if (agent.connection == nullptr) continue;
      for (const std::string& bundle : per_cluster) notify.emplace_back(agent.connection, bundle);
    }
    // What a rollout's cut by cluster group holds may have changed.
    if (changed) ++membership_version_;
  }
  Deliver(notify);
}

void Hub::SetTrustAgentLabels(bool trust) {
  MutexLock lock(&mu_);
  trust_agent_labels_ = trust;
  for (auto& [name, agent] : agents_) UpdateLabelsLocked(&agent);
}

void Hub::SetClusterIdentity(const std::string& cluster, bool registered,
                             std::optional<LabelMap> labels) {
  std::vector<Notification> notify;
  {
    MutexLock lock(&mu_);
    Agent& agent = agents_[cluster];
    agent.info.set_name(cluster);
    agent.info.set_registered(registered);
    agent.owned = std::move(labels);
    LabelMap before = agent.labels;
    bool known_before = agent.labels_known;
    UpdateLabelsLocked(&agent);
    const bool changed = known_before != agent.labels_known || before != agent.labels;
    if (changed && known_before) {
      // However they changed (gitfleetctl cluster label --allow-removal, or a line of
      // --agent-tokens edited), the log says which bundles leave the cluster for it.
      std::vector<std::string> leaving;
      for (const auto& [name, target] : bundles_) {
        if (HoldsAny(agent, name) && target.selector.Matches(before) && !Targets(target, agent)) {
          leaving.push_back(name);
        }
      }
      if (!leaving.empty()) {
        GF_LOG(WARNING) << "cluster " << cluster << ": its labels no longer match "
                        << ListNames(leaving) << ", which it holds: removing them from it";
      }
    }
    if (agent.connection == nullptr || !changed) return;
    // Retarget now: every defined bundle and everything it holds is looked at again.
    std::set<std::string> bundles;
    for (const auto& [name, target] : bundles_) bundles.insert(name);
    for (const auto& [name, revision] : agent.held) bundles.insert(name);
    bundles.insert(agent.whole.begin(), agent.whole.end());
    for (const std::string& name : bundles) notify.emplace_back(agent.connection, name);
  }
  Deliver(notify);
}

void Hub::CloseCluster(const std::string& cluster, const absl::Status& status) {
  std::shared_ptr<AgentConnection> connection;
  {
    MutexLock lock(&mu_);
    auto it = agents_.find(cluster);
    if (it == agents_.end()) return;
    connection = it->second.connection;
  }
  if (connection != nullptr) connection->Close(status);
}

void Hub::Deliver(const std::vector<Notification>& notifications) {
  for (const auto& [connection, bundle] : notifications) connection->Notify(bundle);
}

void Hub::SetRenderRequester(RenderRequester requester) {
  MutexLock lock(&mu_);
  render_requester_ =
      requester ? std::make_shared<const RenderRequester>(std::move(requester)) : nullptr;
}

void Hub::SetFleetId(const std::string& fleet_id) {
  MutexLock lock(&mu_);
  fleet_id_ = fleet_id;
}

void Hub::SetBundle(const std::string& bundle, const LabelSelector& selector,
                    std::shared_ptr<const BundleContent> content, int64_t generation, Gate gate,
                    std::shared_ptr<const BundleContent> stable, Gate stable_gate) {
  std::vector<Notification> notify;
  {
    MutexLock lock(&mu_);
    tombstones_.erase(bundle);
    BundleTarget& target = bundles_[bundle];
    // Reports that came before it was defined (an agent held it): shown from now on.
    if (!report_states_.empty()) ExportReportStatesLocked(bundle);
    AckedChangedLocked(bundle);  // its content may have changed, or gained revisions
    // Only a rollout's gate widening (the next partition): only the clusters it adds can
    // have anything new, so only they are looked at, not the whole fleet.
    std::vector<std::string> widened;
    const bool only_widened =
        gate != nullptr && (content == nullptr || content == target.content) &&
        target.content != nullptr && target.selector.text() == selector.text() &&
        target.generation == generation && stable == target.stable &&
        stable_gate == target.stable_gate && gate->AddedTo(target.gate.get(), &widened);
    if (only_widened) std::sort(widened.begin(), widened.end());  // agents_ is walked in order
    const bool retargeted = target.content != nullptr && target.selector.text() != selector.text();
    if (content != nullptr && content != target.content) {
      NoteDropsLocked(bundle, target.content.get(), *content, retargeted);
    } else if (retargeted) {
      NoteDropsLocked(bundle, target.content.get(), *target.content, retargeted);
    }
    target.selector = selector;
    target.generation = generation;
    target.gate = std::move(gate);
    target.stable = std::move(stable);
    target.stable_gate = std::move(stable_gate);
    if (content != nullptr && content != target.content) {
      if (target.content != nullptr) target.previous = target.content;
      target.content = content;
      IndexNewestLocked(bundle);
    }
    // With one revision for everyone, agents that hold it need nothing; otherwise each
    // targeted agent asks, and NextMessage works out its cluster's revision.
    std::shared_ptr<const Revision> uniform =
        target.content != nullptr ? target.content->Uniform() : nullptr;
    // Agents that waited for a revision to be built: the gate need not have widened for
    // them (the walk below looks at each anyway).
    std::set<std::string> waiting;
    waiting.swap(target.waiting);
    if (only_widened) {
      for (const std::string& name : waiting) {
        auto it = agents_.find(name);
        if (it == agents_.end() || it->second.connection == nullptr || it->second.suspended) {
          continue;
        }
        if (!std::binary_search(widened.begin(), widened.end(), name)) {
          notify.emplace_back(it->second.connection, bundle);
        }
      }
      auto hint = agents_.cbegin();
      for (const std::string& name : widened) {
        auto it = FindAgentLocked(name, hint);
        if (it == agents_.end()) continue;
        hint = std::next(it);
        const Agent& agent = it->second;
        if (agent.connection == nullptr || agent.suspended || !Targets(target, agent)) continue;
        auto held = agent.held.find(bundle);
        if (held != agent.held.end() && uniform != nullptr && held->second == uniform->id) continue;
        notify.emplace_back(agent.connection, bundle);
      }
    }
    for (auto& [name, agent] : agents_) {
      if (only_widened) break;
      if (agent.orphans.erase(bundle) > 0) metrics_.orphaned_bundles.Decrement();  // known again
      if (agent.connection == nullptr) continue;
      if (agent.suspended) continue;
      bool targeted = Targets(target, agent);
      auto held = agent.held.find(bundle);
      bool current_held =
          held != agent.held.end() && uniform != nullptr && held->second == uniform->id;
      // The gate is asked last: only about clusters that would get something new. One
      // that holds nothing of the bundle may get the stable content, gate or not.
      if ((targeted && target.content != nullptr && !current_held &&
           (GetsStable(bundle, target, agent) || target.gate == nullptr ||
            target.gate->Allows(name))) ||
          (!targeted && held != agent.held.end())) {
        notify.emplace_back(agent.connection, bundle);
      }
    }
  }
  Deliver(notify);
}

void Hub::SetTombstone(const std::string& bundle, int64_t generation) {
  MutexLock lock(&mu_);
  if (bundles_.count(bundle) > 0) return;  // defined again since
  SetTombstoneLocked(bundle, generation);
}

void Hub::SetTombstoneLocked(const std::string& bundle, int64_t generation) {
  tombstones_[bundle] = {generation, ++tombstone_sequence_};
  if (tombstones_.size() > kMaxTombstones) {
    auto oldest = tombstones_.begin();
    for (auto it = tombstones_.begin(); it != tombstones_.end(); ++it) {
      if (it->second.second < oldest->second.second) oldest = it;
    }
    tombstones_.erase(oldest);
  }
}

void Hub::SetNewestContent(const std::string& bundle, const LabelSelector& selector,
                           std::shared_ptr<const BundleContent> content) {
  MutexLock lock(&mu_);
  if (content != nullptr) {
    const BundleContent* before = nullptr;
    bool retargeted = false;
    if (auto newest = newest_.find(bundle); newest != newest_.end()) {
      before = newest->second.content.get();
      retargeted = newest->second.selector.text() != selector.text();
    } else if (auto target = bundles_.find(bundle); target != bundles_.end()) {
      before = target->second.content.get();
      retargeted = target->second.selector.text() != selector.text();
    }
    NoteDropsLocked(bundle, before, *content, retargeted);
  }
  newest_[bundle] = Newest{selector, std::move(content)};
  IndexNewestLocked(bundle);
}

void Hub::IndexNewestLocked(const std::string& bundle) {
  // As HandoversLocked reads it: newest_'s content when it has the bundle (a null one
  // counts for nothing), else the target's.
  const BundleContent* content = nullptr;
  if (auto newest = newest_.find(bundle); newest != newest_.end()) {
    content = newest->second.content.get();
  } else if (auto target = bundles_.find(bundle); target != bundles_.end()) {
    content = target->second.content.get();
  }
  std::shared_ptr<const Revision> uniform = content != nullptr ? content->Uniform() : nullptr;
  if (content != nullptr && uniform == nullptr) {
    per_cluster_newest_.insert(bundle);
  } else {
    per_cluster_newest_.erase(bundle);
  }
  auto indexed = indexed_.find(bundle);
  const Revision* before = indexed != indexed_.end() ? indexed->second.get() : nullptr;
  if (before == uniform.get()) return;
  if (before != nullptr) {
    for (const auto& [k, object] : before->objects.objects()) {
      if (uniform != nullptr && uniform->objects.objects().count(k) > 0) continue;
      auto index = held_by_.find(k);
      if (index != held_by_.end() && index->second.erase(bundle) > 0 && index->second.empty()) {
        held_by_.erase(index);
      }
    }
  }
  if (uniform == nullptr) {
    if (indexed != indexed_.end()) indexed_.erase(indexed);
    return;
  }
  for (const auto& [k, object] : uniform->objects.objects()) held_by_[k].insert(bundle);
  indexed_[bundle] = std::move(uniform);
}

void Hub::NoteDropsLocked(const std::string& bundle, const BundleContent* before,
                          const BundleContent& now, bool retargeted) {
  if (before == &now && !retargeted) return;
  std::shared_ptr<const Revision> next = now.Uniform();
  std::shared_ptr<const Revision> previous = before != nullptr ? before->Uniform() : nullptr;
  if (next == nullptr || (before != nullptr && previous == nullptr)) {
    undiffable_.insert(bundle);
    return;
  }
  std::set<std::string>& mine = dropped_by_[bundle];
  for (auto it = mine.begin(); it != mine.end();) {  // held again
    if (retargeted || next->objects.objects().count(*it) == 0) {
      ++it;
      continue;
    }
    auto index = dropped_.find(*it);
    if (index != dropped_.end() && index->second.erase(bundle) > 0 && index->second.empty()) {
      dropped_.erase(index);
    }
    it = mine.erase(it);
  }
  if (previous != nullptr) {
    for (const auto& [k, object] : previous->objects.objects()) {
      if (mine.size() >= kMaxHandovers) break;
      if ((!retargeted && next->objects.objects().count(k) > 0) || !mine.insert(k).second) {
        continue;
      }
      dropped_[k].insert(bundle);
    }
  }
  if (mine.empty()) dropped_by_.erase(bundle);
}

const BundleContent* Hub::NewestLocked(const BundleTarget& target, const std::string& bundle,
                                       const LabelSelector** selector) const {
  if (auto newest = newest_.find(bundle); newest != newest_.end() && newest->second.content) {
    *selector = &newest->second.selector;
    return newest->second.content.get();
  }
  *selector = &target.selector;
  return target.content.get();
}

const BundleContent* Hub::NewestForLocked(const BundleTarget& target, const std::string& bundle,
                                          const Agent& agent, bool* targets) const {
  const LabelSelector* selector = nullptr;
  const BundleContent* content = NewestLocked(target, bundle, &selector);
  *targets = agent.labels_known && selector->Matches(agent.labels);
  return content;
}

void Hub::NoteHeldDropsLocked(const Agent& agent, const std::string& bundle,
                              const std::string& held_id) {
  auto target = bundles_.find(bundle);
  if (target == bundles_.end()) return;
  bool targets = false;
  const BundleContent* content = NewestForLocked(target->second, bundle, agent, &targets);
  // Values that differ per cluster: undiffable_ has the bundle already.
  std::shared_ptr<const Revision> next = content != nullptr ? content->Uniform() : nullptr;
  if (next == nullptr || (targets && next->id == held_id)) return;
  const std::string memo = targets ? held_id : absl::StrCat(held_id, "/gone");
  std::set<std::string>& noted = held_noted_[bundle];
  if (noted.count(memo) > 0) return;
  std::shared_ptr<const Revision> held =
      FindRevisionLocked(bundle, target->second, held_id, nullptr);
  if (held == nullptr) {
    // Not in the store either (trimmed from its history): what it held is not known, so
    // the bundle is always asked (see TakeoversLocked).
    undiffable_.insert(bundle);
    return;
  }
  if (noted.size() >= kMaxHeldNoted) noted.clear();
  noted.insert(memo);
  std::set<std::string>& mine = dropped_by_[bundle];
  for (const auto& [k, object] : held->objects.objects()) {
    if (mine.size() >= kMaxHandovers) break;
    if ((targets && next->objects.objects().count(k) > 0) || !mine.insert(k).second) continue;
    dropped_[k].insert(bundle);
  }
  if (mine.empty()) dropped_by_.erase(bundle);
}

void Hub::ForgetDropsLocked(const std::string& bundle) {
  undiffable_.erase(bundle);
  held_noted_.erase(bundle);
  auto mine = dropped_by_.find(bundle);
  if (mine == dropped_by_.end()) return;
  for (const std::string& k : mine->second) {
    auto index = dropped_.find(k);
    if (index != dropped_.end() && index->second.erase(bundle) > 0 && index->second.empty()) {
      dropped_.erase(index);
    }
  }
  dropped_by_.erase(mine);
}

void Hub::RemoveBundle(const std::string& bundle, int64_t generation) {
  std::vector<Notification> notify;
  {
    MutexLock lock(&mu_);
    bundles_.erase(bundle);
    newest_.erase(bundle);
    ack_versions_.erase(bundle);
    counted_.erase(bundle);
    left_out_.erase(bundle);
    IndexNewestLocked(bundle);
    ForgetDropsLocked(bundle);
    report_counts_.erase(bundle);
    ForgetRegressionsLocked(bundle);
    SetTombstoneLocked(bundle, generation);
    for (auto& [name, agent] : agents_) {
      if (agent.connection != nullptr && agent.held.count(bundle) > 0) {
        notify.emplace_back(agent.connection, bundle);
      }
    }
  }
  Deliver(notify);
}

uint64_t Hub::Connect(const v1::Hello& hello, const std::string& peer,
                      std::shared_ptr<AgentConnection> connection) {
  std::shared_ptr<AgentConnection> control;  // told that control messages wait
  std::shared_ptr<AgentConnection> replaced;
  std::vector<Notification> notify;
  uint64_t session;
  // Revisions the agent holds that only the store has (from before a restart), read
  // first: what they hold and the bundles' newest let go of must be known (see
  // NoteHeldDropsLocked) before anything is sent. Only those of bundles with one newest
  // revision for every cluster that the agent does not hold (the others are always
  // asked, see undiffable_); once each; the hello is bounded.
  std::vector<std::string> loads;
  {
    MutexLock lock(&mu_);
    for (const v1::HeldRevision& held : hello.held()) {
      auto target = bundles_.find(held.bundle());
      if (target == bundles_.end()) continue;
      const LabelSelector* selector = nullptr;
      const BundleContent* newest = NewestLocked(target->second, held.bundle(), &selector);
      std::shared_ptr<const Revision> uniform = newest != nullptr ? newest->Uniform() : nullptr;
      if (uniform == nullptr || uniform->id == held.revision()) continue;
      std::string load;
      if (FindRevisionLocked(held.bundle(), target->second, held.revision(), &load) == nullptr &&
          !load.empty()) {
        loads.push_back(std::move(load));
      }
    }
  }
  for (const std::string& key : loads) LoadStoredRevision(key);
  const PreparedApis apis = PrepareApiVersions(hello.api_versions());  // not under the lock
  // A digest alone names a list this hub said it holds (Welcome.api_versions_held); one it
  // does not hold (a restored store) keeps what the hub knew until the agent sends it.
  const bool digest_alone = hello.api_versions().empty() && !hello.api_versions_digest().empty();
  std::shared_ptr<const std::vector<std::string>> named =
      digest_alone ? HeldApiVersions(hello.api_versions_digest()) : nullptr;
  {
    MutexLock lock(&mu_);
    Agent& agent = agents_[hello.cluster()];
    if (agent.connection != nullptr) {
      replaced = agent.connection;
      sessions_.erase(agent.session);
      metrics_.connected_agents.Decrement();
    }
    session = next_session_++;
    sessions_[session] = &agent;
    agent.session = session;
    agent.connection = connection;
    agent.info.set_name(hello.cluster());
    agent.reported = LabelMap(hello.labels().begin(), hello.labels().end());
    UpdateLabelsLocked(&agent);
    agent.info.set_agent_version(hello.agent_version());
    agent.info.set_kubernetes_version(hello.kubernetes_version());
    agent.apis_held = false;
    agent.facts_wanted = false;
    if (named != nullptr) {
      agent.info.set_api_versions_digest(hello.api_versions_digest());
      agent.info.set_api_versions_count(static_cast<int32_t>(named->size()));
      agent.apis_held = true;
    } else if (digest_alone) {
      agent.facts_wanted = true;
    } else {
      agent.info.set_api_versions_digest(InternApiVersionsLocked(apis));
      agent.info.set_api_versions_count(
          agent.info.api_versions_digest().empty() ? 0 : static_cast<int32_t>(apis.apis->size()));
      // Held, and the agent computes digests as this hub does: it may send the digest alone.
      agent.apis_held = !agent.info.api_versions_digest().empty() &&
                        hello.api_versions_digest() == agent.info.api_versions_digest();
    }
    agent.fleet_id = hello.fleet_id();
    agent.info.set_foreign_fleet_id(
        hello.fleet_id().empty() || hello.fleet_id() == fleet_id_ ? "" : hello.fleet_id());
    // Worked out again as its bundles are looked at.
    metrics_.orphaned_bundles.Decrement(static_cast<double>(agent.orphans.size()));
    agent.orphans.clear();
    agent.info.clear_conditions();  // the agent reports them afresh
    agent.info.clear_refused();     // it is in
    agent.info.clear_refused_at();
    agent.info.clear_old_token_until();  // the caller says (SetOldToken)
    agent.info.clear_old_token_listed();
    agent.info.set_connected(true);
    agent.info.set_peer(peer);
    *agent.info.mutable_last_seen() = ToProtoTime(clock_->Now());
    agent.held.clear();
    agent.whole.clear();
    std::map<std::string, std::pair<std::string, absl::Time>> acked;
    for (const v1::HeldRevision& held : hello.held()) {
      agent.held[held.bundle()] = held.revision();
      // What it says it holds counts as acknowledged; since when, if we knew already.
      auto known = agent.acked.find(held.bundle());
      acked[held.bundle()] = known != agent.acked.end() && known->second.first == held.revision()
                                 ? known->second
                                 : std::make_pair(held.revision(), clock_->Now());
    }
    agent.acked = std::move(acked);
    for (const auto& [name, revision] : agent.held) NoteHeldDropsLocked(agent, name, revision);
    std::set<std::string> bundles;
    for (const auto& [name, target] : bundles_) {
      if (Targets(target, agent)) bundles.insert(name);
    }
    for (const auto& [name, revision] : agent.held) bundles.insert(name);
    for (const std::string& name : bundles) notify.emplace_back(connection, name);
    // Diff requests and forget orders still waiting go out on the new stream.
    if (!agent.control.empty()) control = connection;
    PersistClusterLocked(agent);
    metrics_.connected_agents.Increment();
  }
  if (replaced != nullptr) {
    replaced->Close(
        absl::AbortedError(absl::StrCat("cluster ", hello.cluster(), " connected again from ", peer,
                                        "; this older stream is closed")));
  }
  Deliver(notify);
  if (events_ != nullptr) {
    events_->Publish(MakeEvent("cluster.connected", "", hello.cluster(),
                               absl::StrCat("agent ", hello.agent_version(), " from ", peer)));
  }
  if (control != nullptr) control->NotifyControl();
  return session;
}

v1::Welcome Hub::WelcomeFor(uint64_t session) {
  MutexLock lock(&mu_);
  v1::Welcome welcome;
  welcome.set_fleet_id(fleet_id_);
  Agent* agent = AgentForSessionLocked(session);
  if (agent != nullptr) {
    welcome.set_api_versions_held(agent->apis_held);
    welcome.set_send_facts(agent->facts_wanted);
  }
  if (agent != nullptr && agent->adopt_pending) {
    GF_LOG(INFO) << "cluster " << agent->info.name() << " adopted"
                 << (agent->fleet_id.empty() || agent->fleet_id == fleet_id_
                         ? std::string()
                         : absl::StrCat(" from fleet ", agent->fleet_id));
    welcome.set_adopt(true);
    agent->adopt_pending = false;
    agent->info.set_adopt_pending(false);
    agent->info.clear_foreign_fleet_id();
    PersistClusterLocked(*agent);
  }
  return welcome;
}

absl::Status Hub::AdoptCluster(const std::string& cluster) {
  std::shared_ptr<AgentConnection> connection;
  std::optional<std::string> record;
  {
    MutexLock lock(&mu_);
    auto it = agents_.find(cluster);
    if (it == agents_.end()) {
      return absl::NotFoundError(absl::StrCat("cluster \"", cluster, "\" has never connected"));
    }
    it->second.adopt_pending = true;
    it->second.info.set_adopt_pending(true);
    PersistClusterLocked(it->second);
    record = *writes_.Pending(kClusters, cluster);
    connection = it->second.connection;
  }
  // An operator's act: on disk before it is answered.
  if (absl::Status stored = store_->Apply({Store::Put(kClusters, cluster, *record)});
      !stored.ok()) {
    return stored;
  }
  GF_LOG(INFO) << "cluster " << cluster << " marked for adoption";
  if (connection != nullptr) {
    connection->Close(absl::AbortedError(
        absl::StrCat("cluster ", cluster, " was adopted; reconnect to take it up")));
  }
  return absl::OkStatus();
}

absl::Status Hub::ForgetBundle(const std::string& cluster, const std::string& bundle, bool prune) {
  std::shared_ptr<AgentConnection> connection;
  {
    MutexLock lock(&mu_);
    auto it = agents_.find(cluster);
    if (it == agents_.end() || it->second.connection == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster \"", cluster, "\" is not connected; forget needs its agent"));
    }
    Agent& agent = it->second;
    if (!HoldsAny(agent, bundle) && agent.orphans.count(bundle) == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster \"", cluster, "\" does not hold bundle \"", bundle, "\""));
    }
    auto target = bundles_.find(bundle);
    if (target != bundles_.end() && Targets(target->second, agent)) {
      return absl::FailedPreconditionError(
          absl::StrCat("bundle \"", bundle, "\" still targets cluster \"", cluster,
                       "\"; change its selector or remove the bundle instead"));
    }
    v1::ControlMessage order;
    v1::BundleRemoval* removal = order.mutable_removal();
    removal->set_bundle(bundle);
    removal->set_reason("forgotten");
    removal->set_forget(true);
    removal->set_prune(prune);
    agent.control.push_back(std::move(order));
    connection = agent.connection;
  }
  GF_LOG(INFO) << "cluster " << cluster << ": forgetting bundle " << bundle
               << (prune ? " and pruning what gitfleet created" : " (objects stay)");
  connection->NotifyControl();
  return absl::OkStatus();
}

void Hub::AckedChangedLocked(const std::string& bundle, const Agent* agent, const Acked* before,
                             const Acked* after) {
  auto target = bundles_.find(bundle);
  if (target == bundles_.end()) return;  // no entry for unknown names
  uint64_t& version = ack_versions_[bundle];
  const uint64_t was_version = version++;
  if (agent == nullptr) return;
  auto counted = counted_.find(bundle);
  if (counted == counted_.end()) return;
  CountedRollout& kept = counted->second;
  const BundleContent* content = target->second.content.get();
  if (kept.ack_version != was_version || kept.membership_version != membership_version_ ||
      kept.content != content) {
    return;  // out of date already: counted again when asked
  }
  if (agent->labels_known && kept.selector.Matches(agent->labels) && content != nullptr) {
    const bool was = before != nullptr && content->Find(before->first) != nullptr;
    const bool is = after != nullptr && content->Find(after->first) != nullptr;
    // The latest of the current ones may be this one, going or going back in time: only
    // a count over all of them says which is latest now.
    if (was && before->second >= kept.rollout.last_current &&
        (!is || after->second < before->second)) {
      return;
    }
    kept.rollout.current += static_cast<int>(is) - static_cast<int>(was);
    if (is) kept.rollout.last_current = std::max(kept.rollout.last_current, after->second);
  }
  kept.ack_version = version;
}

void Hub::DropHeldLocked(Agent* agent, const std::string& bundle) {
  agent->held.erase(bundle);
  agent->whole.erase(bundle);
  if (auto acked = agent->acked.find(bundle); acked != agent->acked.end()) {
    const Acked before = std::move(acked->second);
    agent->acked.erase(acked);
    AckedChangedLocked(bundle, agent, &before, nullptr);
  }
  if (agent->orphans.erase(bundle) > 0) metrics_.orphaned_bundles.Decrement();
  if (auto report = agent->reports.find(bundle); report != agent->reports.end()) {
    CountReportLocked(bundle, report->second.sync_state(), report->second.health(), -1);
    agent->reports.erase(report);
  }
  writes_.Delete(kReports, ReportKey(agent->info.name(), bundle));
  // What it no longer holds cannot halt a rollout.
  if (auto it = regressed_.empty() ? regressed_.end() : regressed_.find(bundle);
      it != regressed_.end() && it->second.erase(agent->info.name()) > 0) {
    writes_.Delete(kRegressions, ReportKey(agent->info.name(), bundle));
    if (it->second.empty()) regressed_.erase(it);
  }
}

void Hub::Disconnect(uint64_t session) {
  std::string cluster;
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    Agent& agent = *it->second;
    GF_LOG(INFO) << "cluster " << agent.info.name() << " disconnected";
    cluster = agent.info.name();
    agent.connection.reset();
    agent.info.set_connected(false);
    agent.info.clear_old_token_until();
    agent.info.clear_old_token_listed();
    *agent.info.mutable_last_seen() = ToProtoTime(clock_->Now());
    PersistClusterLocked(agent);
    sessions_.erase(it);
    metrics_.connected_agents.Decrement();
  }
  if (events_ != nullptr) events_->Publish(MakeEvent("cluster.disconnected", "", cluster, ""));
}

void Hub::Publish(std::vector<v1::Event> events) {
  if (events_ == nullptr) return;
  for (v1::Event& event : events) events_->Publish(std::move(event));
}

void Hub::CloseAll(const absl::Status& status) {
  std::vector<std::shared_ptr<AgentConnection>> connections;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, agent] : agents_) {
      if (agent.connection != nullptr) connections.push_back(agent.connection);
    }
  }
  GF_LOG(INFO) << "closing " << connections.size() << " agent streams: " << status.message();
  for (const auto& connection : connections) connection->Close(status);
  // Waiting admin calls are answered before the server they belong to stops.
  diffs_.FailAll(status);
}

Hub::Agent* Hub::AgentForSessionLocked(uint64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return nullptr;
  return it->second;
}

std::shared_ptr<const Revision> Hub::FindRevisionLocked(const std::string& bundle,
                                                        const BundleTarget& target,
                                                        const std::string& id, std::string* load) {
  for (const auto* content : {&target.content, &target.previous, &target.stable}) {
    if (*content == nullptr) continue;
    if (std::shared_ptr<const Revision> rev = (*content)->Find(id)) return rev;
  }
  std::string key = Revision::RevisionKey(bundle, id);
  auto it = stored_revisions_.find(key);
  if (it != stored_revisions_.end()) return it->second;  // null: not in the store either
  // An agent may hold a revision from before a restart: the caller reads the store,
  // without the hub's lock, and asks again.
  if (load != nullptr) *load = key;
  return nullptr;
}

void Hub::LoadStoredRevision(const std::string& key) {
  std::shared_ptr<const Revision> revision;
  absl::StatusOr<std::shared_ptr<const Revision>> rev = ReadStoredRevision(store_, key);
  if (rev.ok()) {
    revision = *std::move(rev);
  } else if (!absl::IsNotFound(rev.status())) {
    GF_LOG(WARNING) << rev.status();
  }
  MutexLock lock(&mu_);
  if (stored_revisions_.size() >= kMaxStoredRevisions) stored_revisions_.clear();
  stored_revisions_[key] = revision;  // null remembers that it is not there
}

std::shared_ptr<const EncodedMessage> Hub::BuildUpdateLocked(const Revision* base,
                                                             const Revision& target,
                                                             int64_t generation, bool interim) {
  std::tuple<std::string, std::string, std::string> cache_key{
      absl::StrCat(target.bundle, "@", generation, interim ? "~interim" : ""), base ? base->id : "",
      target.id};
  if (std::shared_ptr<const EncodedMessage> cached = messages_.Find(cache_key)) return cached;
  v1::ControlMessage message;
  v1::BundleUpdate* update = message.mutable_update();
  update->set_bundle(target.bundle);
  update->set_revision(target.id);
  update->set_commit(target.commit);
  *update->mutable_committed_time() = ToProtoTime(target.committed_time);
  *update->mutable_sync() = target.sync;
  update->set_target_namespace(target.target_namespace);
  update->set_object_count(static_cast<int32_t>(target.objects.size()));
  update->set_generation(generation);
  update->set_interim(interim);
  if (base == nullptr) {
    for (const auto& [key, object] : target.objects.objects()) {
      *update->add_upserts() = *object;
    }
  } else {
    update->set_base_revision(base->id);
    ObjectDelta delta = ComputeDelta(base->objects, target.objects);
    for (const v1::ManifestObject* object : delta.upserts) *update->add_upserts() = *object;
    for (const v1::ObjectKey& key : delta.removed) *update->add_removed() = key;
  }
  return messages_.Put(cache_key, EncodedMessage::Encode(std::move(message)));
}

std::shared_ptr<const EncodedMessage> Hub::NextControlMessage(uint64_t session) {
  std::shared_ptr<AgentConnection> again;
  std::shared_ptr<const EncodedMessage> message;
  {
    MutexLock lock(&mu_);
    Agent* agent = AgentForSessionLocked(session);
    if (agent == nullptr || agent->control.empty()) return nullptr;
    v1::ControlMessage request = std::move(agent->control.front());
    agent->control.pop_front();
    if (request.has_removal()) {
      DropHeldLocked(agent, request.removal().bundle());
      sent_removal_.Increment();
    }
    message = EncodedMessage::Encode(std::move(request));
    if (!agent->control.empty()) again = agent->connection;
  }
  if (again != nullptr) again->NotifyControl();
  return message;
}

std::shared_ptr<const EncodedMessage> Hub::NextMessage(uint64_t session,
                                                       const std::string& bundle) {
  // At most one store read, for the revision the agent holds (deltas after a restart).
  std::string load;
  std::shared_ptr<const EncodedMessage> message = NextMessageOnce(session, bundle, &load);
  if (load.empty()) return message;
  LoadStoredRevision(load);
  return NextMessageOnce(session, bundle, nullptr);
}

std::shared_ptr<const EncodedMessage> Hub::NextMessageOnce(uint64_t session,
                                                           const std::string& bundle,
                                                           std::string* load) {
  std::shared_ptr<const BundleContent> content;
  bool stable = false;  // content is the bundle's stable content (see SetBundle)
  std::shared_ptr<const Revision> current;
  v1::ClusterInfo cluster;
  {
    MutexLock lock(&mu_);
    Agent* agent = AgentForSessionLocked(session);
    if (agent == nullptr) return nullptr;
    if (agent->suspended) return nullptr;  // under maintenance: nothing changes there
    auto target = bundles_.find(bundle);
    if (target == bundles_.end()) return NextMessageLocked(agent, bundle, nullptr, false, load);
    // Labels nobody assigned: the cluster keeps what it holds and gets nothing new. Not
    // knowing its labels is no reason to remove anything.
    if (!agent->labels_known) return nullptr;
    if (!Targets(target->second, *agent))
      return NextMessageLocked(agent, bundle, nullptr, false, load);
    content = target->second.content;
    if (content == nullptr) return nullptr;  // nothing rendered yet: keep what it has
    current = content->Uniform();
    if (current != nullptr) {
      // Holding it already: nothing to send, gate or not (asked after every write).
      auto held = agent->held.find(bundle);
      if (held != agent->held.end() && held->second == current->id) return nullptr;
    }
    // Not its partition's turn yet (or the bundle is suspended): it keeps what it holds.
    // Holding nothing of it (it joined during the rollout), it gets what the whole fleet
    // was last given, if that is known.
    const Gate& gate = target->second.gate;
    if (gate != nullptr && !gate->Allows(agent->info.name())) {
      if (!GetsStable(bundle, target->second, *agent)) return nullptr;
      content = target->second.stable;
      stable = true;
      current = content->Uniform();
    }
    if (current != nullptr) return NextMessageLocked(agent, bundle, current, stable, load);
    cluster = agent->info;
  }
  // Values differ between clusters: this cluster's revision, if it is built. Looked up
  // unlocked (it works out the cluster's values first).
  std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> revision = content->Built(cluster);
  if (!revision.has_value()) {
    // The controller builds it (the stable content's too) and sets the bundle again,
    // which tells this agent.
    std::shared_ptr<const RenderRequester> requester;
    {
      MutexLock lock(&mu_);
      auto target = bundles_.find(bundle);
      if (target == bundles_.end()) return nullptr;
      target->second.waiting.insert(cluster.name());
      requester = render_requester_;
    }
    revision = content->Built(cluster);  // built meanwhile, before it waited?
    if (!revision.has_value()) {
      if (requester != nullptr) (*requester)(bundle);
      return nullptr;
    }
  }
  if (!revision->ok()) {
    // Left out by the bundle's own files: it keeps what it holds (removal is explicit).
    if (!IsNotDeployed(revision->status())) {
      GF_LOG(WARNING) << "bundle " << bundle << " for cluster " << cluster.name() << ": "
                      << revision->status().message();
    }
    return nullptr;
  }
  MutexLock lock(&mu_);
  Agent* agent = AgentForSessionLocked(session);
  if (agent == nullptr) return nullptr;
  auto target = bundles_.find(bundle);
  // Moved on meanwhile: the change notified the agent again.
  if (target == bundles_.end() ||
      (stable ? target->second.stable : target->second.content) != content) {
    return nullptr;
  }
  if (stable && !GetsStable(bundle, target->second, *agent)) return nullptr;
  return NextMessageLocked(agent, bundle, **revision, stable, load);
}

std::vector<v1::Handover> Hub::HandoversLocked(const Agent& agent, const std::string& bundle,
                                               const KeyList* keys, const Revision* kept) const {
  std::vector<v1::Handover> out;
  std::set<std::string> named;
  // The newest render of each other bundle that targets the agent, whether or not its gate
  // lets it go yet: for an update's removed keys, only those the index says hold one of
  // them (or whose revisions differ per cluster); newest_'s first, as for all of them.
  std::vector<std::map<std::string, Newest>::const_iterator> newest;
  std::vector<std::map<std::string, BundleTarget>::const_iterator> targets;
  if (keys != nullptr) {
    std::set<std::string> candidates = per_cluster_newest_;
    for (const v1::ObjectKey& key : *keys) {
      auto index = held_by_.find(KeyString(key));
      if (index != held_by_.end()) candidates.insert(index->second.begin(), index->second.end());
    }
    for (const std::string& name : candidates) {
      if (auto it = newest_.find(name); it != newest_.end()) newest.push_back(it);
    }
    for (const std::string& name : candidates) {
      if (auto it = bundles_.find(name); it != bundles_.end()) targets.push_back(it);
    }
  } else {
    for (auto it = newest_.begin(); it != newest_.end(); ++it) newest.push_back(it);
    for (auto it = bundles_.begin(); it != bundles_.end(); ++it) targets.push_back(it);
  }
  std::vector<std::pair<const std::string*, const BundleContent*>> others;
  for (const auto& it : newest) {
    const Newest& target = it->second;
    if (it->first != bundle && target.content != nullptr && agent.labels_known &&
        target.selector.Matches(agent.labels)) {
      others.emplace_back(&it->first, target.content.get());
    }
  }
  for (const auto& it : targets) {
    if (it->first != bundle && it->second.content != nullptr && newest_.count(it->first) == 0 &&
        Targets(it->second, agent)) {
      others.emplace_back(&it->first, it->second.content.get());
    }
  }
  for (const auto& [name_ptr, content] : others) {
    const std::string& name = *name_ptr;
    std::shared_ptr<const Revision> newest = RevisionFor(*content, agent);
    if (newest == nullptr) continue;
    const auto& objects = newest->objects.objects();
    auto add = [&](const std::string& k, const v1::ObjectKey& key) {
      if (!named.insert(k).second) return;
      v1::Handover& handover = out.emplace_back();
      *handover.mutable_key() = key;
      handover.set_bundle(name);
    };
    if (keys != nullptr) {
      for (const v1::ObjectKey& key : *keys) {
        std::string k = KeyString(key);
        if (objects.count(k) > 0) add(k, key);
      }
      continue;
    }
    // A removal or a whole set: what the agent has not been sent yet (what it holds, it
    // knows), and the whole set does not keep.
    auto held = agent.held.find(name);
    if (held != agent.held.end() && held->second == newest->id) continue;
    for (const auto& [k, object] : objects) {
      if (out.size() >= kMaxHandovers) return out;
      if (kept != nullptr && kept->objects.objects().count(k) > 0) continue;
      add(k, object->key());
    }
  }
  return out;
}

std::shared_ptr<const Revision> Hub::RevisionFor(const BundleContent& content, const Agent& agent) {
  if (std::shared_ptr<const Revision> uniform = content.Uniform()) return uniform;
  std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> built = content.Built(agent.info);
  if (built.has_value() && built->ok()) return **built;
  return nullptr;
}

std::vector<v1::Handover> Hub::TakeoversLocked(const Agent& agent, const std::string& bundle,
                                               const ObjectList& upserts) {
  std::vector<v1::Handover> out;
  if (dropped_.empty() && undiffable_.empty()) return out;  // nothing let go of anything
  // Only bundles that let go of one of these objects, or that cannot say.
  std::set<std::string> candidates;
  if (!dropped_.empty()) {
    for (const v1::ManifestObject& object : upserts) {
      auto index = dropped_.find(KeyString(object.key()));
      if (index != dropped_.end()) candidates.insert(index->second.begin(), index->second.end());
    }
  }
  for (const std::string& name : undiffable_) {
    if (agent.held.count(name) > 0) candidates.insert(name);
  }
  for (const std::string& name : candidates) {
    auto held_entry = agent.held.find(name);
    if (name == bundle || held_entry == agent.held.end()) continue;
    const std::string& held_id = held_entry->second;
    auto target = bundles_.find(name);
    if (target == bundles_.end()) continue;  // a tombstone: what it held is not known here
    // Its newest revision for the cluster; null when it no longer targets the cluster.
    bool targets = false;
    const BundleContent* content = NewestForLocked(target->second, name, agent, &targets);
    // Holding the newest already: it decides.
    if (content == nullptr || (targets && content->Find(held_id) != nullptr)) continue;
    std::shared_ptr<const Revision> newest;
    if (targets) {
      newest = RevisionFor(*content, agent);
      if (newest == nullptr || newest->id == held_id) continue;  // unknown yet, or held
    }
    // Null when the store no longer has it: then anything the newest lacks may be moving
    // in. Naming too much costs nothing: the agent waits only for objects that bundle
    // holds there.
    std::shared_ptr<const Revision> held =
        FindRevisionLocked(name, target->second, held_id, nullptr);
    for (const v1::ManifestObject& object : upserts) {
      if (out.size() >= kMaxHandovers) return out;
      const std::string k = KeyString(object.key());
      if (held != nullptr && held->objects.objects().count(k) == 0) continue;
      if (newest != nullptr && newest->objects.objects().count(k) > 0) continue;
      v1::Handover& takeover = out.emplace_back();
      *takeover.mutable_key() = object.key();
      takeover.set_bundle(name);
    }
  }
  return out;
}

std::shared_ptr<const EncodedMessage> Hub::NextMessageLocked(
    Agent* agent, const std::string& bundle, const std::shared_ptr<const Revision>& current,
    bool interim, std::string* load) {
  auto target = bundles_.find(bundle);
  auto held = agent->held.find(bundle);
  if (current == nullptr) {
    if (!HoldsAny(*agent, bundle)) return nullptr;
    // Removal is an explicit act: a definition that no longer targets the cluster, or a
    // tombstone. A bundle this control plane does not know at all (an empty or older data
    // dir) is orphaned: the agent keeps enforcing it.
    v1::ControlMessage removal;
    if (target != bundles_.end()) {
      removal.mutable_removal()->set_generation(target->second.generation);
      removal.mutable_removal()->set_reason("not targeted");
    } else if (auto tombstone = tombstones_.find(bundle); tombstone != tombstones_.end()) {
      removal.mutable_removal()->set_generation(tombstone->second.first);
      removal.mutable_removal()->set_reason("removed");
    } else {
      if (agent->orphans.insert(bundle).second) {
        metrics_.orphaned_bundles.Increment();
        GF_LOG(WARNING) << "cluster " << agent->info.name() << " holds bundle " << bundle
                        << ", which this control plane does not know: orphaned, kept applied";
      }
      return nullptr;
    }
    removal.mutable_removal()->set_bundle(bundle);
    // What another bundle holds now is left for it, even when that bundle's revision is
    // still on its way (a definition replaced by another in one go).
    for (v1::Handover& handover : HandoversLocked(*agent, bundle, nullptr)) {
      *removal.mutable_removal()->add_handovers() = std::move(handover);
    }
    DropHeldLocked(agent, bundle);
    sent_removal_.Increment();
    return EncodedMessage::Encode(std::move(removal));
  }
  std::shared_ptr<const Revision> base;
  if (held != agent->held.end()) {
    if (held->second == current->id) return nullptr;
    base = FindRevisionLocked(bundle, target->second, held->second, load);
    if (base == nullptr && load != nullptr && !load->empty()) return nullptr;  // read it first
  }
  std::shared_ptr<const EncodedMessage> message =
      BuildUpdateLocked(base.get(), *current, target->second.generation, interim);
  // The agent holds a revision the hub cannot diff against: the whole set goes, and the
  // agent prunes what its inventory holds and the set lacks.
  const bool blind = base == nullptr && HoldsAny(*agent, bundle);
  agent->whole.erase(bundle);
  // Objects that moved to another bundle are left for it, not deleted, even when its
  // revision reaches the agent later; objects moving in from another bundle are waited
  // for, not failed on, when this revision comes first. Shared messages stay shared: only
  // an agent with such objects gets a copy of its own.
  std::vector<v1::Handover> handovers;
  if (!message->message.update().removed().empty() || blind) {
    handovers = blind ? HandoversLocked(*agent, bundle, nullptr, current.get())
                      : HandoversLocked(*agent, bundle, &message->message.update().removed());
  }
  std::vector<v1::Handover> takeovers;
  if (!message->message.update().upserts().empty()) {
    takeovers = TakeoversLocked(*agent, bundle, message->message.update().upserts());
  }
  if (!handovers.empty() || !takeovers.empty()) {
    v1::ControlMessage copy = message->message;
    for (v1::Handover& handover : handovers) {
      *copy.mutable_update()->add_handovers() = std::move(handover);
    }
    for (v1::Handover& takeover : takeovers) {
      *copy.mutable_update()->add_takeovers() = std::move(takeover);
    }
    message = EncodedMessage::Encode(std::move(copy));
  }
  agent->held[bundle] = current->id;
  (base ? sent_delta_ : sent_full_).Increment();
  metrics_.update_bytes_sent.Increment(static_cast<double>(message->bytes.size()));
  return message;
}

void Hub::OnAck(uint64_t session, const v1::Ack& ack) {
  std::vector<Notification> notify;
  std::shared_ptr<const StatusObserver> observer;
  std::vector<v1::Event> events;
  bool rollout = false;
  {
    MutexLock lock(&mu_);
    Agent* agent = AgentForSessionLocked(session);
    if (agent == nullptr) return;
    if (ack.need_full()) {
      ack_need_full_.Increment();
      // Forget what we thought it held: the next message carries the whole set.
      agent->held.erase(ack.bundle());
      agent->whole.insert(ack.bundle());
      if (auto acked = agent->acked.find(ack.bundle()); acked != agent->acked.end()) {
        const Acked before = std::move(acked->second);
        agent->acked.erase(acked);
        AckedChangedLocked(ack.bundle(), agent, &before, nullptr);
      }
      notify.emplace_back(agent->connection, ack.bundle());
    } else if (ack.ok()) {
      ack_ok_.Increment();
      Acked& acked = agent->acked[ack.bundle()];
      const Acked before = std::move(acked);
      acked = {ack.revision(), clock_->Now()};
      AckedChangedLocked(ack.bundle(), agent, before.first.empty() ? nullptr : &before, &acked);
      auto target = bundles_.find(ack.bundle());
      if (target != bundles_.end()) {
        for (const auto* content : {&target->second.content, &target->second.previous}) {
          if (*content == nullptr || (*content)->Find(ack.revision()) == nullptr) continue;
          absl::Time seen = (*content)->seen_time();
          if (seen != absl::InfinitePast()) {
            metrics_.fanout_seconds.Observe(absl::ToDoubleSeconds(clock_->Now() - seen));
          }
          break;
        }
      }
    } else if (ack.refused()) {
      ack_nack_.Increment();
      // It kept what it had: the next change sends it the whole set, which it may accept
      // once adopted.
      agent->held.erase(ack.bundle());
      agent->whole.insert(ack.bundle());
      GF_LOG(WARNING) << "cluster " << agent->info.name() << " refused " << ack.bundle()
                      << " revision " << ack.revision().substr(0, 12) << ": " << ack.message();
    } else {
      ack_nack_.Increment();
      GF_LOG(WARNING) << "cluster " << agent->info.name() << " could not apply " << ack.bundle()
                      << " revision " << ack.revision().substr(0, 12) << ": " << ack.message();
    }
    if (ack.has_status()) {
      status_via_ack_.Increment();
      const bool regressed = RecordStatusLocked(agent, ack.bundle(), ack.status(), &events);
      observer = ObserverForLocked(
          ack.bundle(), regressed || ack.status().sync_state() == v1::SYNC_STATE_FAILED, &rollout);
    }
  }
  Deliver(notify);
  Publish(std::move(events));
  if (observer != nullptr) (*observer)(ack.bundle(), rollout);
}

void Hub::OnFacts(uint64_t session, const v1::ClusterFacts& facts) {
  std::vector<Notification> notify;
  const PreparedApis apis = PrepareApiVersions(facts.api_versions());  // not under the lock
  {
    MutexLock lock(&mu_);
    Agent* agent = AgentForSessionLocked(session);
    if (agent == nullptr) return;
    const std::string digest = InternApiVersionsLocked(apis);
    if (agent->info.kubernetes_version() == facts.kubernetes_version() &&
        agent->info.api_versions_digest() == digest) {
      return;
    }
    GF_LOG(INFO) << "cluster " << agent->info.name() << " now runs Kubernetes "
                 << facts.kubernetes_version() << " serving " << facts.api_versions_size()
                 << " API versions";
    agent->info.set_kubernetes_version(facts.kubernetes_version());
    agent->info.set_api_versions_digest(digest);
    agent->info.set_api_versions_count(digest.empty() ? 0 : facts.api_versions_size());
    PersistClusterLocked(*agent);
    if (agent->connection != nullptr) {
      for (const auto& [name, target] : bundles_) {
        if (Targets(target, *agent)) notify.emplace_back(agent->connection, name);
      }
    }
  }
  Deliver(notify);
}

void Hub::OnCondition(uint64_t session, const v1::ClusterCondition& condition) {
  MutexLock lock(&mu_);
  Agent* agent = AgentForSessionLocked(session);
  if (agent == nullptr) return;
  v1::ClusterCondition* slot = nullptr;
  for (v1::ClusterCondition& c : *agent->info.mutable_conditions()) {
    if (c.type() == condition.type()) slot = &c;
  }
  if (slot == nullptr) {
    // A handful of types at most: an agent cannot grow this without bound.
    if (agent->info.conditions_size() >= 8) return;
    slot = agent->info.add_conditions();
  }
  *slot = condition;
  if (slot->message().size() > kMaxStatusMessageBytes) {
    slot->mutable_message()->resize(kMaxStatusMessageBytes);
  }
  if (!condition.ok()) {
    GF_LOG(WARNING) << "cluster " << agent->info.name() << ": " << condition.type() << " "
                    << condition.reason() << ": " << condition.message();
  }
}

void Hub::OnStatus(uint64_t session, const v1::StatusUpdate& status) {
  std::shared_ptr<const StatusObserver> observer;
  std::vector<v1::Event> events;
  bool rollout = false;
  {
    MutexLock lock(&mu_);
    Agent* agent = AgentForSessionLocked(session);
    if (agent == nullptr) return;
    status_via_message_.Increment();
    const bool regressed = RecordStatusLocked(agent, status.bundle(), status, &events);
    observer = ObserverForLocked(
        status.bundle(), regressed || status.sync_state() == v1::SYNC_STATE_FAILED, &rollout);
  }
  Publish(std::move(events));
  if (observer != nullptr) (*observer)(status.bundle(), rollout);
}

std::shared_ptr<const Hub::StatusObserver> Hub::ObserverForLocked(const std::string& bundle,
                                                                  bool urgent, bool* rollout) {
  *rollout = false;
  auto target = bundles_.find(bundle);
  if (target != bundles_.end() && target->second.gate != nullptr) {
    // Counted here, under the lock the report was recorded with: a report that cannot
    // move the rollout costs no other lock.
    ReportCount& count = report_counts_[bundle];
    ++count.reports;
    *rollout = urgent || count.reports >= count.needed || clock_->Now() >= count.refresh;
  }
  return *rollout || watched_.count(bundle) > 0 ? status_observer_ : nullptr;
}

void Hub::BeginEvaluation(const std::string& bundle) {
  MutexLock lock(&mu_);
  if (tombstones_.count(bundle) > 0) return;  // removed while it was evaluated: no row
  report_counts_[bundle].reports = 0;
}

void Hub::ExpectReports(const std::string& bundle, int needed, absl::Duration refresh) {
  MutexLock lock(&mu_);
  if (tombstones_.count(bundle) > 0) return;
  ReportCount& count = report_counts_[bundle];
  count.needed = std::max(1, needed);
  count.refresh = clock_->Now() + refresh;
}

void Hub::SetWatchedBundles(std::set<std::string> bundles) {
  MutexLock lock(&mu_);
  watched_ = std::move(bundles);
}

void Hub::SetStatusObserver(StatusObserver observer) {
  MutexLock lock(&mu_);
  status_observer_ =
      observer ? std::make_shared<const StatusObserver>(std::move(observer)) : nullptr;
}

absl::Status Hub::SuspendCluster(const std::string& cluster, bool suspend) {
  std::vector<Notification> notify;
  {
    MutexLock lock(&mu_);
    auto it = agents_.find(cluster);
    if (it == agents_.end()) {
      return absl::NotFoundError(absl::StrCat("cluster ", cluster, " was never seen"));
    }
    Agent& agent = it->second;
    if (agent.suspended == suspend) return absl::OkStatus();
    agent.suspended = suspend;
    agent.info.set_suspended(suspend);
    PersistClusterLocked(agent);
    GF_LOG(INFO) << "cluster " << cluster << (suspend ? " suspended" : " resumed");
    if (!suspend && agent.connection != nullptr) {
      // Back from maintenance: everything it may have missed is looked at again.
      std::set<std::string> bundles;
      for (const auto& [name, target] : bundles_) bundles.insert(name);
      for (const auto& [name, revision] : agent.held) bundles.insert(name);
      bundles.insert(agent.whole.begin(), agent.whole.end());
      for (const std::string& name : bundles) notify.emplace_back(agent.connection, name);
    }
  }
  Deliver(notify);
  return absl::OkStatus();
}

uint64_t Hub::MembershipVersion() const {
  MutexLock lock(&mu_);
  return membership_version_;
}

namespace {

// Whether `report` says `revision` is applied, Synced and Healthy.
bool ReadyOn(const v1::StatusUpdate& report, const std::string& revision) {
  return report.revision() == revision && report.applied_revision() == revision &&
         report.sync_state() == v1::SYNC_STATE_SYNCED &&
         report.health() == v1::HEALTH_STATE_HEALTHY;
}

// Why `report`'s revision is not ready: its message while it fails or applies, else its
// health and the first unhealthy object's message.
std::string Trouble(const v1::StatusUpdate& report) {
  if (report.sync_state() == v1::SYNC_STATE_FAILED) {
    return report.message().empty() ? "failed to apply" : report.message();
  }
  if (report.applied_revision() != report.revision() ||
      report.sync_state() != v1::SYNC_STATE_SYNCED) {
    return report.message().empty() ? "applying" : report.message();
  }
  std::string health = absl::AsciiStrToLower(v1::HealthState_Name(report.health()));
  return absl::StrCat(health.substr(sizeof("health_state_") - 1),
                      report.unhealthy_resources_size() > 0
                          ? absl::StrCat(": ", report.unhealthy_resources(0).message())
                          : "");
}

}  // namespace

std::optional<Hub::Readiness> Hub::CountReady(const std::string& bundle,
                                              const LabelSelector& selector) const {
  std::shared_ptr<const BundleContent> content;
  {
    MutexLock lock(&mu_);
    auto target = bundles_.find(bundle);
    if (target == bundles_.end() || target->second.content == nullptr) return std::nullopt;
    content = target->second.content;
  }
  // Asked unlocked, as SummarizeProgress asks it.
  std::shared_ptr<const Revision> uniform = content->LeavesSomeOut() ? nullptr : content->Uniform();
  if (uniform == nullptr) return std::nullopt;
  MutexLock lock(&mu_);
  auto target = bundles_.find(bundle);
  if (target == bundles_.end() || target->second.content != content) return std::nullopt;
  Readiness readiness;
  for (const auto& [name, agent] : agents_) {
    if (!agent.labels_known || !selector.Matches(agent.labels)) continue;
    ++readiness.total;
    auto report = agent.reports.find(bundle);
    if (report != agent.reports.end() && ReadyOn(report->second, uniform->id)) {
      ++readiness.ready;
    } else if (readiness.first_not_ready.empty()) {
      readiness.first_not_ready = name;
    }
  }
  return readiness;
}

PartitionProgress Hub::SummarizeProgress(const std::string& bundle, const BundleContent* content,
                                         const std::vector<std::string>& clusters) {
  PartitionProgress summary;
  summary.total = static_cast<int>(clusters.size());
  std::shared_ptr<const Revision> uniform = content != nullptr ? content->Uniform() : nullptr;
  if (uniform == nullptr) {
    // Per-cluster revisions: each cluster's is found unlocked, described in full.
    for (v1::RolloutCluster& c : RolloutProgress(bundle, content, clusters)) {
      if (c.ready()) continue;
      ++summary.not_ready;
      if (c.down_on_older()) summary.down.push_back(c.name());
      if (c.suspended()) summary.suspended.push_back(c.name());
      if (c.failed()) {
        ++summary.failed;
        if (!summary.first_failed.has_value()) summary.first_failed = std::move(c);
      } else if (!summary.first_waiting.has_value()) {
        summary.first_waiting = std::move(c);
      }
    }
    return summary;
  }
  // Counted under the lock without copying anything; only the first failed and the first
  // waiting cluster are described in full.
  std::vector<std::string> describe;
  {
    std::string first_failed, first_waiting;
    MutexLock lock(&mu_);
    auto hint = agents_.cbegin();
    for (const std::string& name : clusters) {
      const v1::StatusUpdate* report = nullptr;
      auto agent = FindAgentLocked(name, hint);
      if (agent != agents_.end()) {
        hint = std::next(agent);
        auto found = agent->second.reports.find(bundle);
        if (found != agent->second.reports.end()) report = &found->second;
      }
      const bool current = report != nullptr && report->revision() == uniform->id;
      if (current && ReadyOn(*report, uniform->id)) continue;
      ++summary.not_ready;
      if (!current && report != nullptr && !report->revision().empty() &&
          !ReadyOn(*report, report->revision()) && agent->second.connection != nullptr &&
          !agent->second.suspended) {
        summary.down.push_back(name);
      }
      if (agent != agents_.end() && agent->second.suspended) summary.suspended.push_back(name);
      if (current && report->sync_state() == v1::SYNC_STATE_FAILED) {
        ++summary.failed;
        if (first_failed.empty()) first_failed = name;
      } else if (first_waiting.empty()) {
        first_waiting = name;
      }
    }
    if (!first_failed.empty()) describe.push_back(first_failed);
    if (!first_waiting.empty()) describe.push_back(first_waiting);
  }
  for (v1::RolloutCluster& c : RolloutProgress(bundle, content, describe)) {
    // Described only: the counts above stand (a report may have come in since).
    if (c.ready()) continue;
    if (c.failed() && !summary.first_failed.has_value()) {
      summary.first_failed = std::move(c);
    } else if (!summary.first_waiting.has_value()) {
      summary.first_waiting = std::move(c);
    }
  }
  return summary;
}

std::vector<v1::RolloutCluster> Hub::RolloutProgress(const std::string& bundle,
                                                     const BundleContent* content,
                                                     const std::vector<std::string>& clusters) {
  // What a cluster's report says, as much as the answer needs: taken under the lock without
  // copying the report (its objects, commits and messages), at 10,000 clusters a look.
  struct Report {
    std::string revision;
    std::string applied_revision;
    v1::SyncState sync_state = v1::SYNC_STATE_UNSPECIFIED;
    v1::HealthState health = v1::HEALTH_STATE_UNSPECIFIED;
    bool ready = false;   // ready on its own revision (ReadyOn)
    std::string trouble;  // when not: why (Trouble)
    std::string failure;  // when its apply failed: the report's message
  };
  struct Seen {
    v1::RolloutCluster out;
    v1::ClusterInfo info;
    std::optional<Report> report;
    bool suspended = false;
  };
  std::vector<Seen> seen;
  std::shared_ptr<const Revision> uniform = content != nullptr ? content->Uniform() : nullptr;
  // A cluster's labels are copied only when its revision depends on them.
  const bool per_cluster = uniform == nullptr && content != nullptr;
  {
    MutexLock lock(&mu_);
    seen.reserve(clusters.size());
    auto hint = agents_.cbegin();
    for (const std::string& name : clusters) {
      Seen s;
      s.out.set_name(name);
      auto agent = FindAgentLocked(name, hint);
      if (agent != agents_.end()) {
        hint = std::next(agent);
        s.out.set_connected(agent->second.connection != nullptr);
        s.suspended = agent->second.suspended;
        if (per_cluster) s.info = agent->second.info;
        auto found = agent->second.reports.find(bundle);
        if (found != agent->second.reports.end()) {
          const v1::StatusUpdate& report = found->second;
          Report& r = s.report.emplace();
          r.revision = report.revision();
          r.applied_revision = report.applied_revision();
          r.sync_state = report.sync_state();
          r.health = report.health();
          r.ready = ReadyOn(report, report.revision());
          if (!r.ready) r.trouble = Trouble(report);
          if (report.sync_state() == v1::SYNC_STATE_FAILED) r.failure = report.message();
        }
      }
      seen.push_back(std::move(s));
    }
  }
  // Unlocked: with per-cluster values, finding a cluster's revision compares values.
  std::vector<v1::RolloutCluster> out;
  out.reserve(seen.size());
  for (Seen& s : seen) {
    v1::RolloutCluster& c = s.out;
    if (s.report.has_value()) {
      c.set_applied_revision(std::move(s.report->applied_revision));
      c.set_sync_state(s.report->sync_state);
      c.set_health(s.report->health);
    }
    std::string expected;
    std::string not_deployed;
    if (uniform != nullptr) {
      expected = uniform->id;
    } else if (content != nullptr) {
      std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> built = content->Built(s.info);
      if (built.has_value() && built->ok()) expected = (**built)->id;
      if (built.has_value() && IsNotDeployed(built->status())) {
        not_deployed = std::string(built->status().message());
      }
    }
    if (!not_deployed.empty()) {
      // Nothing to wait for: the bundle's files leave it out (Fleet's doNotDeploy).
      c.set_ready(true);
      c.set_detail(absl::StrCat("not deployed here: ", not_deployed));
    } else if (expected.empty()) {
      c.set_detail("its revision is not built yet");
    } else if (!s.report.has_value() || s.report->revision != expected) {
      c.set_detail(s.out.connected() ? "no report for this revision yet"
                                     : "not connected; no report for this revision");
      if (s.report.has_value() && !s.report->revision.empty() && s.out.connected() &&
          !s.suspended && !s.report->ready) {
        c.set_down_on_older(true);
        absl::StrAppend(c.mutable_detail(), "; not ready on the older revision it runs (",
                        s.report->trouble, ")");
      }
    } else if (s.report->sync_state == v1::SYNC_STATE_FAILED) {
      // (Its own revision is `expected` here, so `ready` and `trouble` are about it.)
      c.set_failed(true);
      c.set_detail(std::move(s.report->failure));
    } else if (!s.report->ready) {
      c.set_detail(std::move(s.report->trouble));
    } else {
      c.set_ready(true);
    }
    c.set_suspended(s.suspended);
    if (!c.ready() && s.suspended) {
      // It gets nothing new, so it cannot become ready: say why rather than what is missing.
      c.set_detail(absl::StrCat("cluster suspended for maintenance (gitfleetctl cluster resume ",
                                c.name(), "); counted as not ready"));
    }
    out.push_back(std::move(c));
  }
  return out;
}

bool Hub::RecordStatusLocked(Agent* agent, const std::string& bundle,
                             const v1::StatusUpdate& status, std::vector<v1::Event>* events) {
  // An agent cannot make the control plane keep rows for bundles that do not concern it.
  auto target = bundles_.find(bundle);
  if (agent->held.count(bundle) == 0 && target == bundles_.end() &&
      agent->reports.count(bundle) == 0) {
    return false;
  }
  auto [slot, fresh] = agent->reports.try_emplace(bundle);
  v1::StatusUpdate& report = slot->second;
  // A regression: ready on a revision, then Degraded or failed on the same one, while a
  // rollout is under way. Compared with the report this one replaces.
  bool regressed = false;
  const bool broken =
      status.sync_state() == v1::SYNC_STATE_FAILED || status.health() == v1::HEALTH_STATE_DEGRADED;
  if (broken && target != bundles_.end() && target->second.gate != nullptr &&
      !status.revision().empty() && report.revision() == status.revision() &&
      report.applied_revision() == report.revision() &&
      report.sync_state() == v1::SYNC_STATE_SYNCED && report.health() == v1::HEALTH_STATE_HEALTHY) {
    regressed_[bundle][agent->info.name()] = status.revision();
    writes_.Put(kRegressions, ReportKey(agent->info.name(), bundle), status.revision());
    regressed = true;
  } else if (auto it = regressed_.empty() ? regressed_.end() : regressed_.find(bundle);
             it != regressed_.end()) {
    // Ready again, or on another revision: no longer a regression. (Progressing on the
    // same revision stays one.) Looked up only while some cluster has regressed.
    auto entry = it->second.find(agent->info.name());
    const bool ready = status.applied_revision() == status.revision() &&
                       status.sync_state() == v1::SYNC_STATE_SYNCED &&
                       status.health() == v1::HEALTH_STATE_HEALTHY;
    if (entry != it->second.end() && (ready || entry->second != status.revision())) {
      writes_.Delete(kRegressions, ReportKey(entry->first, bundle));
      it->second.erase(entry);
      if (it->second.empty()) regressed_.erase(it);
    }
  }
  bool newly_applied = status.sync_state() == v1::SYNC_STATE_SYNCED &&
                       status.applied_revision() != report.applied_revision();
  if (events_ != nullptr) {
    const std::string& cluster = agent->info.name();
    if (newly_applied) {
      events->push_back(MakeEvent("cluster.applied", bundle, cluster, "", status.applied_commit(),
                                  status.applied_revision()));
    }
    if (status.sync_state() == v1::SYNC_STATE_FAILED &&
        (report.sync_state() != v1::SYNC_STATE_FAILED || report.revision() != status.revision() ||
         report.message() != status.message())) {
      events->push_back(MakeEvent("cluster.failed", bundle, cluster, status.message(),
                                  status.commit(), status.revision()));
    }
    if (status.health() != report.health() && status.health() != v1::HEALTH_STATE_UNSPECIFIED) {
      std::string health = absl::AsciiStrToLower(v1::HealthState_Name(status.health()));
      health = health.substr(sizeof("health_state_") - 1);
      if (status.unhealthy_resources_size() > 0) {
        absl::StrAppend(&health, ": ", status.unhealthy_resources(0).message());
      }
      events->push_back(
          MakeEvent("cluster.health", bundle, cluster, health, status.commit(), status.revision()));
    }
  }
  const int sync_before = report.sync_state(), health_before = report.health();
  report = status;
  report.set_bundle(bundle);
  BoundStatus(&report);  // each stored status stays small, whatever an agent sends
  if (fresh || sync_before != report.sync_state() || health_before != report.health()) {
    // In first: the bundle's series stay.
    CountReportLocked(bundle, report.sync_state(), report.health(), 1);
    if (!fresh) CountReportLocked(bundle, sync_before, health_before, -1);
  }
  auto held = agent->held.find(bundle);
  if (newly_applied && held != agent->held.end() && held->second == status.applied_revision()) {
    if (target != bundles_.end() && target->second.content != nullptr) {
      absl::Time applied = FromProtoTime(status.applied_time());
      absl::Time committed = target->second.content->committed_time();
      if (applied > committed) {
        // Built once: this runs for every report that applies a revision.
        static const auto* const kBuckets =
            new metrics::Histogram::BucketBoundaries(metrics::ExponentialBuckets(0.01, 2, 14));
        metrics_.commit_to_applied_seconds.Add({{"bundle", bundle}}, *kBuckets)
            .Observe(absl::ToDoubleSeconds(applied - committed));
      }
    }
  }
  writes_.Put(kReports, ReportKey(agent->info.name(), bundle), report.SerializeAsString());
  return regressed;
}

namespace {

// A bundle's series of gitfleet_bundle_clusters for a SyncState, and of
// gitfleet_bundle_cluster_health for a HealthState, labelled as the agent's gauges are
// ("SYNC_STATE_OUT_OF_SYNC" -> "out_of_sync").
metrics::Labels SyncLabels(const std::string& bundle, int state) {
  absl::string_view name = v1::SyncState_Name(static_cast<v1::SyncState>(state));
  return {{"bundle", bundle},
          {"sync_state", absl::AsciiStrToLower(absl::StripPrefix(name, "SYNC_STATE_"))}};
}
metrics::Labels HealthLabels(const std::string& bundle, int state) {
  absl::string_view name = v1::HealthState_Name(static_cast<v1::HealthState>(state));
  return {{"bundle", bundle},
          {"health", absl::AsciiStrToLower(absl::StripPrefix(name, "HEALTH_STATE_"))}};
}

}  // namespace

void Hub::CountReportLocked(const std::string& bundle, int sync, int health, int delta) {
  auto it = report_states_.find(bundle);
  if (it == report_states_.end()) {
    if (delta < 0) return;  // never counted
    it = report_states_.emplace(bundle, ReportStates()).first;
  }
  ReportStates& states = it->second;
  states.reports += delta;
  if (sync > 0 && sync < v1::SyncState_ARRAYSIZE) {
    states.sync[sync] += delta;
    if (states.exported) states.sync_gauges[sync]->Set(states.sync[sync]);
  }
  if (health > 0 && health < v1::HealthState_ARRAYSIZE) {
    states.health[health] += delta;
    if (states.exported) states.health_gauges[health]->Set(states.health[health]);
  }
  if (states.reports > 0) {
    if (!states.exported && bundles_.count(bundle) > 0) ExportReportStatesLocked(bundle);
    return;
  }
  if (states.exported) {
    for (int s = 1; s < v1::SyncState_ARRAYSIZE; ++s) {
      metrics_.bundle_clusters.Remove(SyncLabels(bundle, s));
    }
    for (int h = 1; h < v1::HealthState_ARRAYSIZE; ++h) {
      metrics_.bundle_cluster_health.Remove(HealthLabels(bundle, h));
    }
  }
  if (bundles_.count(bundle) == 0) metrics_.commit_to_applied_seconds.Remove({{"bundle", bundle}});
  report_states_.erase(it);
}

void Hub::ExportReportStatesLocked(const std::string& bundle) {
  auto it = report_states_.find(bundle);
  if (it == report_states_.end() || it->second.exported) return;
  ReportStates& states = it->second;
  // Every state has a series, 0 or not, so a query need not guess which exist.
  for (int s = 1; s < v1::SyncState_ARRAYSIZE; ++s) {
    states.sync_gauges[s] = &metrics_.bundle_clusters.Add(SyncLabels(bundle, s));
    states.sync_gauges[s]->Set(states.sync[s]);
  }
  for (int h = 1; h < v1::HealthState_ARRAYSIZE; ++h) {
    states.health_gauges[h] = &metrics_.bundle_cluster_health.Add(HealthLabels(bundle, h));
    states.health_gauges[h]->Set(states.health[h]);
  }
  states.exported = true;
}

std::vector<std::string> Hub::Regressions(const std::string& bundle, const BundleContent* content) {
  std::vector<std::string> out;
  if (content == nullptr) return out;
  MutexLock lock(&mu_);
  auto it = regressed_.find(bundle);
  if (it == regressed_.end()) return out;
  for (auto entry = it->second.begin(); entry != it->second.end();) {
    // Of an older content (the rollout began again since), or of a cluster forgotten:
    // dropped here, where it is read.
    if (content->Find(entry->second) == nullptr || agents_.count(entry->first) == 0) {
      writes_.Delete(kRegressions, ReportKey(entry->first, bundle));
      entry = it->second.erase(entry);
      continue;
    }
    out.push_back(entry->first);
    ++entry;
  }
  if (it->second.empty()) regressed_.erase(it);
  return out;
}

void Hub::AcknowledgeRegressions(const std::string& bundle) {
  MutexLock lock(&mu_);
  ForgetRegressionsLocked(bundle);
}

void Hub::ForgetRegressionsLocked(const std::string& bundle) {
  auto it = regressed_.find(bundle);
  if (it == regressed_.end()) return;
  for (const auto& [cluster, revision] : it->second) {
    writes_.Delete(kRegressions, ReportKey(cluster, bundle));
  }
  regressed_.erase(it);
}

void Hub::PersistClusterLocked(const Agent& agent) {
  v1::ClusterRecord record;
  record.set_name(agent.info.name());
  record.mutable_labels()->insert(agent.reported.begin(), agent.reported.end());
  record.set_agent_version(agent.info.agent_version());
  record.set_kubernetes_version(agent.info.kubernetes_version());
  record.set_api_versions_digest(agent.info.api_versions_digest());
  *record.mutable_last_seen() = agent.info.last_seen();
  record.set_adopt_pending(agent.adopt_pending);
  record.set_suspended(agent.suspended);
  writes_.Put(kClusters, agent.info.name(), record.SerializeAsString());
}

std::shared_ptr<const std::vector<std::string>> Hub::ApiVersions(const std::string& digest) const {
  if (digest.empty()) return nullptr;
  MutexLock lock(&apis_mu_);
  auto found = api_versions_.find(digest);
  return found == api_versions_.end() ? nullptr : found->second;
}

Hub::PreparedApis Hub::PrepareApiVersions(
    const google::protobuf::RepeatedPtrField<std::string>& apis) {
  PreparedApis out;
  if (apis.empty()) return out;
  std::vector<std::string> sorted(apis.begin(), apis.end());
  SortApiVersions(&sorted);
  out.digest = ApiVersionsDigest(sorted);
  out.apis = std::make_shared<const std::vector<std::string>>(std::move(sorted));
  return out;
}

std::shared_ptr<const std::vector<std::string>> Hub::HeldApiVersions(const std::string& digest) {
  MutexLock lock(&apis_mu_);
  auto it = api_versions_.find(digest);
  return it == api_versions_.end() ? nullptr : it->second;
}

std::string Hub::InternApiVersionsLocked(const PreparedApis& prepared) {
  if (prepared.apis == nullptr) return "";
  const std::string& digest = prepared.digest;
  MutexLock lock(&apis_mu_);
  if (api_versions_.count(digest) > 0) return digest;
  if (api_versions_.size() >= kMaxApiVersionLists) {
    // Full: the lists no cluster names any more go (an upgrade moves clusters on).
    std::set<std::string> named;
    for (const auto& [name, agent] : agents_) named.insert(agent.info.api_versions_digest());
    for (auto it = api_versions_.begin(); it != api_versions_.end();) {
      if (named.count(it->first) > 0) {
        ++it;
        continue;
      }
      writes_.Delete(kApiVersions, it->first);
      it = api_versions_.erase(it);
    }
    if (api_versions_.size() >= kMaxApiVersionLists) {
      GF_LOG(WARNING) << "clusters serve more than " << kMaxApiVersionLists
                      << " distinct lists of APIs; a new one is not kept";
      return "";
    }
  }
  v1::ApiVersionList list;
  list.mutable_api_versions()->Assign(prepared.apis->begin(), prepared.apis->end());
  writes_.Put(kApiVersions, digest, list.SerializeAsString());
  api_versions_[digest] = prepared.apis;
  return digest;
}

bool Hub::AdmitsCluster(const std::string& cluster, size_t most) const {
  MutexLock lock(&mu_);
  return agents_.size() < most || agents_.count(cluster) > 0;
}

bool Hub::Concerns(const std::string& cluster, const std::string& bundle,
                   const LabelSelector* selector) const {
  MutexLock lock(&mu_);
  auto agent = agents_.find(cluster);
  if (agent == agents_.end()) return false;
  if (HoldsAny(agent->second, bundle)) return true;
  if (selector == nullptr) {
    auto target = bundles_.find(bundle);
    if (target == bundles_.end()) return false;
    selector = &target->second.selector;
  }
  return agent->second.labels_known && selector->Matches(agent->second.labels);
}

std::optional<LabelMap> Hub::LabelsOf(const std::string& cluster) const {
  MutexLock lock(&mu_);
  auto agent = agents_.find(cluster);
  if (agent == agents_.end()) return std::nullopt;
  const auto& labels = agent->second.info.labels();
  return LabelMap(labels.begin(), labels.end());
}

bool Hub::ConcernsAny(const LabelSelector& clusters, const std::string& bundle,
                      const LabelSelector* selector) const {
  MutexLock lock(&mu_);
  if (selector == nullptr) {
    auto target = bundles_.find(bundle);
    if (target != bundles_.end()) selector = &target->second.selector;
  }
  for (const auto& [name, agent] : agents_) {
    if (!agent.labels_known || !clusters.Matches(agent.labels)) continue;
    if (HoldsAny(agent, bundle) || (selector != nullptr && selector->Matches(agent.labels))) {
      return true;
    }
  }
  return false;
}

void Hub::SetOldToken(const std::string& cluster, absl::Time until) {
  MutexLock lock(&mu_);
  auto it = agents_.find(cluster);
  if (it == agents_.end() || !it->second.info.connected()) return;
  it->second.info.clear_old_token_until();
  it->second.info.clear_old_token_listed();
  if (until == absl::InfiniteFuture()) {
    it->second.info.set_old_token_listed(true);
  } else if (until != absl::InfinitePast()) {
    *it->second.info.mutable_old_token_until() = ToProtoTime(until);
  }
}

bool Hub::NoteRefused(const std::string& cluster, const std::string& why) {
  MutexLock lock(&mu_);
  auto it = agents_.find(cluster);
  if (it == agents_.end()) return false;
  v1::ClusterInfo& info = it->second.info;
  const bool first = info.refused() != why;
  info.set_refused(why);
  *info.mutable_refused_at() = ToProtoTime(clock_->Now());
  return first;
}

std::vector<ClusterView> Hub::Clusters(const std::string& only, const std::string& from, size_t max,
                                       const std::function<bool(const LabelMap&)>& keep) {
  MutexLock lock(&mu_);
  std::vector<ClusterView> out;
  auto begin = !only.empty() ? agents_.find(only) : agents_.lower_bound(from);
  auto end = only.empty() || begin == agents_.end() ? agents_.end() : std::next(begin);
  for (auto it = begin; it != end && (max == 0 || out.size() < max); ++it) {
    const Agent& agent = it->second;
    if (keep != nullptr &&
        !keep(LabelMap(agent.info.labels().begin(), agent.info.labels().end()))) {
      continue;
    }
    ClusterView view{agent.info, agent.reports};
    if (!agent.labels_known && !agent.reported.empty()) {
      v1::ClusterCondition* labels = view.info.add_conditions();
      labels->set_type("Labels");
      labels->set_reason("LabelsUnassigned");
      labels->set_message(
          "no labels are assigned to this cluster and the agent's own are not trusted: it keeps "
          "what it holds and gets nothing new; assign labels (gitfleetctl cluster label) or "
          "run the control plane with --trust-agent-labels");
    } else if (!trust_agent_labels_ && !agent.reported.empty() && agent.reported != agent.labels) {
      v1::ClusterCondition* labels = view.info.add_conditions();
      labels->set_type("Labels");
      labels->set_reason("AgentLabelsIgnored");
      labels->set_message(
          "the agent reports other labels than the ones assigned here; bundles target the "
          "assigned ones");
    }
    for (const std::string& orphan : agent.orphans) view.info.add_orphaned_bundles(orphan);
    int bundles = 0;
    for (const auto& [bundle, target] : bundles_) bundles += Targets(target, agent);
    view.info.set_bundles(bundles);
    out.push_back(std::move(view));
  }
  return out;
}

Hub::Rollout Hub::RolloutOf(const std::string& bundle, const LabelSelector& selector,
                            const LabelSelector* within) const {
  std::shared_ptr<const BundleContent> content;
  uint64_t membership = 0;
  uint64_t builds = 0;
  std::vector<v1::ClusterInfo> targeted;
  Rollout rollout;
  {
    MutexLock lock(&mu_);
    rollout = CountRolloutLocked(bundle, selector, within);
    auto target = bundles_.find(bundle);
    if (target == bundles_.end() || target->second.content == nullptr ||
        !target->second.content->LeavesSomeOut()) {
      return rollout;
    }
    content = target->second.content;
    membership = membership_version_;
    builds = content->builds();
    auto known = within != nullptr ? left_out_.end() : left_out_.find(bundle);
    if (known != left_out_.end() && known->second.selector == selector.text() &&
        known->second.content.lock() == content && known->second.membership_version == membership &&
        known->second.builds == builds) {
      SubtractLeftOutLocked(bundle, known->second.clusters, *content, &rollout);
      return rollout;
    }
    for (const auto& [name, agent] : agents_) {
      if (agent.labels_known && selector.Matches(agent.labels) &&
          (within == nullptr || within->Matches(agent.labels))) {
        targeted.push_back(agent.info);
      }
    }
  }
  // Clusters the bundle's files leave out get nothing, so are not waited for: each
  // cluster's outcome is looked at unlocked (it works out the cluster's values).
  std::vector<std::string> left_out;
  for (const v1::ClusterInfo& cluster : targeted) {
    std::optional<absl::StatusOr<std::shared_ptr<const Revision>>> built = content->Built(cluster);
    if (built.has_value() && IsNotDeployed(built->status())) left_out.push_back(cluster.name());
  }
  MutexLock lock(&mu_);
  SubtractLeftOutLocked(bundle, left_out, *content, &rollout);
  auto target = bundles_.find(bundle);
  if (within == nullptr && target != bundles_.end() && target->second.content == content &&
      membership_version_ == membership) {
    left_out_[bundle] = LeftOut{selector.text(), content, membership, builds, std::move(left_out)};
  }
  return rollout;
}

void Hub::SubtractLeftOutLocked(const std::string& bundle, const std::vector<std::string>& clusters,
                                const BundleContent& content, Rollout* rollout) const {
  for (const std::string& name : clusters) {
    ++rollout->not_deployed;
    --rollout->targets;
    // One that runs a revision of it anyway (held from before) is not counted current.
    auto agent = agents_.find(name);
    if (agent == agents_.end()) continue;
    auto acked = agent->second.acked.find(bundle);
    if (acked != agent->second.acked.end() && content.Find(acked->second.first) != nullptr) {
      --rollout->current;
    }
  }
}

Hub::Rollout Hub::CountRolloutLocked(const std::string& bundle, const LabelSelector& selector,
                                     const LabelSelector* within) const {
  auto target = bundles_.find(bundle);
  const BundleContent* content = target != bundles_.end() ? target->second.content.get() : nullptr;
  auto version = ack_versions_.find(bundle);
  const uint64_t ack_version = version != ack_versions_.end() ? version->second : 0;
  auto counted = counted_.find(bundle);
  if (within == nullptr && counted != counted_.end() &&
      counted->second.selector.text() == selector.text() && counted->second.content == content &&
      counted->second.membership_version == membership_version_ &&
      counted->second.ack_version == ack_version) {
    return counted->second.rollout;
  }
  Rollout rollout;
  for (const auto& [name, agent] : agents_) {
    if (!agent.labels_known || !selector.Matches(agent.labels)) continue;
    if (within != nullptr && !within->Matches(agent.labels)) continue;
    ++rollout.targets;
    auto acked = agent.acked.find(bundle);
    if (content == nullptr || acked == agent.acked.end() ||
        content->Find(acked->second.first) == nullptr) {
      continue;
    }
    ++rollout.current;
    rollout.last_current = std::max(rollout.last_current, acked->second.second);
  }
  // Only for bundles the hub has: a name it never had is not kept.
  if (within == nullptr && target != bundles_.end()) {
    counted_[bundle] = CountedRollout{selector, content, membership_version_, ack_version, rollout};
  }
  return rollout;
}

std::vector<v1::ClusterInfo> Hub::MatchingClusters(const LabelSelector& selector) const {
  MutexLock lock(&mu_);
  std::vector<v1::ClusterInfo> out;
  for (const auto& [name, agent] : agents_) {
    if (agent.labels_known && selector.Matches(agent.labels)) out.push_back(agent.info);
  }
  return out;
}

std::vector<std::pair<std::string, LabelMap>> Hub::MatchingClusterLabels(
    const LabelSelector& selector) const {
  MutexLock lock(&mu_);
  std::vector<std::pair<std::string, LabelMap>> out;
  for (const auto& [name, agent] : agents_) {
    if (agent.labels_known && selector.Matches(agent.labels)) out.emplace_back(name, agent.labels);
  }
  return out;
}

std::map<LabelMap, Hub::LabelsShared> Hub::ClustersByLabels(
    const std::set<std::string>& keys) const {
  MutexLock lock(&mu_);
  std::map<LabelMap, LabelsShared> out;
  for (const auto& [name, agent] : agents_) {
    if (!agent.labels_known) continue;
    LabelMap shown;
    for (const std::string& key : keys) {
      auto it = agent.labels.find(key);
      if (it != agent.labels.end()) shown.emplace(key, it->second);
    }
    LabelsShared& shared = out[std::move(shown)];
    if (shared.clusters++ == 0) shared.first = name;  // agents_ is in name order
  }
  return out;
}

std::vector<std::string> Hub::HoldersLeaving(const std::string& bundle, const LabelSelector& before,
                                             const LabelSelector& after) const {
  MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, agent] : agents_) {
    if (agent.labels_known && MayHold(agent, bundle) && before.Matches(agent.labels) &&
        !after.Matches(agent.labels)) {
      out.push_back(name);
    }
  }
  return out;
}

std::vector<std::string> Hub::BundlesLeaving(const std::string& cluster,
                                             const LabelMap& labels) const {
  MutexLock lock(&mu_);
  std::vector<std::string> out;
  auto it = agents_.find(cluster);
  if (it == agents_.end() || trust_agent_labels_) return out;
  for (const auto& [name, target] : bundles_) {
    if (MayHold(it->second, name) && Targets(target, it->second) &&
        !target.selector.Matches(labels)) {
      out.push_back(name);
    }
  }
  return out;
}

std::vector<v1::ClusterInfo> Hub::MatchingClustersHoldingNothing(
    const std::string& bundle, const LabelSelector& selector) const {
  MutexLock lock(&mu_);
  std::vector<v1::ClusterInfo> out;
  for (const auto& [name, agent] : agents_) {
    if (agent.labels_known && !HoldsAny(agent, bundle) && selector.Matches(agent.labels)) {
      out.push_back(agent.info);
    }
  }
  return out;
}

Probe Hub::Liveness() const {
  // Several missed rounds, not one slow flush, mean the loop is stuck.
  return flusher_heartbeat_.Check(std::max(absl::Seconds(60), flush_interval_ * 20));
}

size_t Hub::messages_built() const {
  MutexLock lock(&mu_);
  return messages_.built();
}

}  // namespace gitfleet
