#include "controlplane/api/admin_service.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "controlplane/api/scoped_view.h"
#include "controlplane/source/git_credentials.h"

namespace gitfleet {
namespace {

// Moves `items` into `out` in order while they fit: at most `size`, and (after the first)
// within `max_bytes` in all. Returns how many it moved; a page ends there, and the next
// one starts with the first left out.
template <typename T>
size_t FillPage(std::vector<T>& items, size_t size, size_t max_bytes,
                google::protobuf::RepeatedPtrField<T>* out) {
  size_t bytes = 0;
  size_t i = 0;
  for (; i < items.size() && i < size; ++i) {
    const size_t entry = items[i].ByteSizeLong() + 8;  // with its tag and length
    if (i > 0 && bytes + entry + 1024 > max_bytes) break;
    bytes += entry;
    *out->Add() = std::move(items[i]);
  }
  return i;
}

// A whole listing asked for in one response that would not fit in one message: refused
// here, naming the way out, rather than by gRPC as "larger than max". Clears `response`.
template <typename Response>
absl::Status CheckWhole(Response* response, size_t max_bytes, const std::string& what,
                        const std::string& how) {
  const size_t bytes = response->ByteSizeLong();
  if (bytes <= max_bytes) return absl::OkStatus();
  response->Clear();
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " is ", bytes >> 20, " MiB, over the ", max_bytes >> 20,
      " MiB one response may hold (--max-message-bytes): ask for pages (page_size, as ", how, ")"));
}

absl::Status CheckPageSize(int32_t page_size) {
  return page_size < 0 ? absl::InvalidArgumentError("page_size must not be negative")
                       : absl::OkStatus();
}

// A listing by name (ListBundles, ListClusters) into `response`'s `entries`: the whole of
// it when asked for (no size, no token) and it fits in one message; otherwise a page
// from the token on, whose next token is the name of the first entry left out.
template <typename Entry, typename Response>
struct NamedListing {
  const char* method;  // "ListClusters"
  const char* noun;    // "clusters"
  const char* cli;     // what pages it: "gitfleetctl cluster list"
  std::function<absl::Status(const std::string&)> validate_name;
  std::function<std::vector<Entry>(const std::string& from, size_t max)> list;
  std::function<const std::string&(const Entry&)> name_of;

  absl::Status Fill(int32_t page_size, const std::string& token, size_t max_bytes,
                    google::protobuf::RepeatedPtrField<Entry>* entries, Response* response) const {
    if (absl::Status s = CheckPageSize(page_size); !s.ok()) return s;
    if (!token.empty() && !validate_name(token).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_token \"", token, "\" is not one ", method, " gave"));
    }
    if (page_size == 0 && token.empty()) {
      for (Entry& entry : list("", 0)) *entries->Add() = std::move(entry);
      const int count = entries->size();
      return CheckWhole(response, max_bytes, absl::StrCat("the list of ", count, " ", noun),
                        absl::StrCat(cli, " does"));
    }
    const size_t size = page_size == 0 ? AdminServiceImpl::kDefaultPageSize
                                       : std::min(page_size, AdminServiceImpl::kMaxPageSize);
    std::vector<Entry> page = list(token, size + 1);
    const size_t taken = FillPage(page, size, max_bytes, entries);
    if (taken < page.size()) response->set_next_page_token(name_of(page[taken]));
    return absl::OkStatus();
  }
};

// Counts each partition's clusters, and lists at most `per_partition` of them (0: all), those
// not ready first: a 10,000-cluster rollout's whole list is megabytes, and a person reading
// it wants the clusters it waits for. A status that would not fit in one message is
// refused, or (`acted`: the call changed the rollout, which must not read as failed) listed
// with its counts alone.
absl::StatusOr<v1::RolloutStatus> TrimRollout(
    absl::StatusOr<v1::RolloutStatus> status, int32_t per_partition, size_t max_bytes,
    bool acted = false, const std::function<bool(const std::string&)>& visible = nullptr) {
  if (per_partition < 0) {
    return absl::InvalidArgumentError("clusters_per_partition must not be negative");
  }
  if (!status.ok()) return status;
  int clusters = 0;
  for (v1::RolloutPartition& partition : *status->mutable_partitions()) {
    auto* listed = partition.mutable_clusters();
    if (visible != nullptr) {
      // A scoped caller's: the clusters its scope covers, counted as if alone.
      const int before = listed->size();
      listed->erase(
          std::remove_if(listed->begin(), listed->end(),
                         [&visible](const v1::RolloutCluster& c) { return !visible(c.name()); }),
          listed->end());
      partition.set_others_hidden(listed->size() < before);
    }
    partition.set_cluster_count(listed->size());
    partition.set_ready_count(static_cast<int>(std::count_if(
        listed->begin(), listed->end(), [](const v1::RolloutCluster& c) { return c.ready(); })));
    partition.set_failed_count(static_cast<int>(std::count_if(
        listed->begin(), listed->end(), [](const v1::RolloutCluster& c) { return c.failed(); })));
    clusters += listed->size();
    if (per_partition == 0 || listed->size() <= per_partition) continue;
    auto rank = [](const v1::RolloutCluster& c) { return c.failed() ? 0 : c.ready() ? 2 : 1; };
    std::stable_sort(listed->begin(), listed->end(),
                     [&](const v1::RolloutCluster& a, const v1::RolloutCluster& b) {
                       return rank(a) != rank(b) ? rank(a) < rank(b) : a.name() < b.name();
                     });
    listed->DeleteSubrange(per_partition, listed->size() - per_partition);
  }
  const size_t bytes = status->ByteSizeLong();
  if (bytes > max_bytes && acted) {
    for (v1::RolloutPartition& partition : *status->mutable_partitions()) {
      partition.clear_clusters();
    }
  } else if (bytes > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the rollout status of ", clusters, " clusters is ", bytes >> 20, " MiB, over the ",
        max_bytes >> 20,
        " MiB one response may hold (--max-message-bytes): ask for fewer clusters per "
        "partition (clusters_per_partition, as gitfleetctl rollout status --clusters=N does)"));
  }
  return status;
}

// A name a request looks something up by. Every bundle and source name here passes
// ValidateName and every cluster name ValidateClusterName (those agents report included),
// so one that does not names nothing: it is refused by the rule it breaks, before a
// megabyte of it could be quoted back in a NOT_FOUND. An empty filter passes.
struct Named {
  enum Kind { kBundle, kSource, kCluster } kind;
  const std::string& name;
  bool filter = false;  // optional: empty means any
};

absl::Status CheckNames(std::initializer_list<Named> names) {
  for (const Named& named : names) {
    if (named.filter && named.name.empty()) continue;
    absl::Status valid = named.kind == Named::kCluster  ? ValidateClusterName(named.name)
                         : named.kind == Named::kBundle ? ValidateName("bundle", named.name)
                                                        : ValidateName("source", named.name);
    if (!valid.ok()) return valid;
  }
  return absl::OkStatus();
}

// A ref, commit or revision id a request names (bundle rollback --to): Git's refs are
// far shorter in practice, and the answer quotes it.
constexpr size_t kMaxRefBytes = 256;

// When the caller stops waiting: a change's reconcile goes on, but the handler answers
// with what is known by then (a little before, so the answer still arrives).
absl::Time CallDeadline(const grpc::ServerContext* context) {
  std::chrono::system_clock::time_point deadline = context->deadline();
  // No deadline is the far future; keep clear of converting it.
  if (deadline >= std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline) - absl::Milliseconds(200);
}

// Streams a finished backup in chunks; deletes itself when the call is done.
class BackupWriter : public WriteReactor<v1::BackupChunk> {
 public:
  explicit BackupWriter(std::string data) : data_(std::move(data)) {}
  void OnStart() override { Next(); }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "backup stream broken"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    constexpr size_t kChunk = 1 << 20;
    if (offset_ >= data_.size() && offset_ > 0) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.set_data(data_.substr(offset_, kChunk));
    offset_ += kChunk;
    StartWrite(&chunk_);
  }
  const std::string data_;
  size_t offset_ = 0;
  v1::BackupChunk chunk_;
};

// Streams events: the recent ones, then (following) new ones as the bus publishes them,
// one write at a time. Deletes itself when the call is done.
class EventWriter : public WriteReactor<v1::Event> {
 public:
  struct Pump;
  // `pump` is the one the subscription's wakeup holds (see Subscribe below).
  // `redact`, when set, rewrites each event before it is written (a scoped watcher's view),
  // outside the writer's lock.
  EventWriter(std::shared_ptr<EventBus::Subscription> subscription, std::shared_ptr<Pump> pump,
              bool follow, std::function<void(v1::Event*)> redact = nullptr)
      : follow_(follow),
        redact_(std::move(redact)),
        pump_(std::move(pump)),
        subscription_(std::move(subscription)) {}
  void OnStart() override {
    {
      MutexLock lock(&pump_->mu);
      pump_->writer = this;
    }
    Next();
  }
  void OnWriteDone(bool ok) override {
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) cancelled_ = true;
    }
    Next();
  }
  void OnCancel() override {
    {
      MutexLock lock(&mu_);
      cancelled_ = true;
    }
    Next();
  }
  void OnDone() override {
    {
      // No wakeup reaches this writer from here on.
      MutexLock lock(&pump_->mu);
      pump_->writer = nullptr;
    }
    subscription_->Cancel();
    delete this;
  }

  // Passes the subscription's wakeups to the writer while it lives.
  struct Pump {
    Mutex mu;
    EventWriter* writer ABSL_GUARDED_BY(mu) = nullptr;
    void Wake() {
      MutexLock lock(&mu);
      if (writer != nullptr) writer->Next();
    }
  };
  // A subscription for a writer to come, within the bus's watcher limit.
  static absl::StatusOr<std::pair<std::shared_ptr<EventBus::Subscription>, std::shared_ptr<Pump>>>
  Subscribe(EventBus* bus, EventBus::Filter filter, size_t max_watchers,
            const std::optional<EventBus::Resume>& resume) {
    auto pump = std::make_shared<Pump>();
    absl::StatusOr<std::shared_ptr<EventBus::Subscription>> subscription = bus->Subscribe(
        std::move(filter), [pump] { pump->Wake(); }, max_watchers, resume);
    if (!subscription.ok()) return subscription.status();
    return std::make_pair(*std::move(subscription), std::move(pump));
  }

 private:
  // Decides under the lock, then writes or finishes outside it.
  void Next() {
    enum { kNothing, kWrite, kFinishOk, kFinishCancelled } action = kNothing;
    {
      MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (cancelled_) {
        action = kFinishCancelled;
      } else {
        if (pending_.empty()) {
          for (v1::Event& e : subscription_->Take()) pending_.push_back(std::move(e));
        }
        if (!pending_.empty()) {
          current_ = std::move(pending_.front());
          pending_.pop_front();
          writing_ = true;
          action = kWrite;
        } else if (!follow_) {
          action = kFinishOk;
        }
      }
      if (action == kFinishOk || action == kFinishCancelled) finished_ = true;
    }
    if (action == kWrite) {
      if (redact_ != nullptr) redact_(&current_);
      StartWrite(&current_);
    }
    if (action == kFinishOk) Finish(grpc::Status::OK);
    if (action == kFinishCancelled) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  const bool follow_;
  const std::function<void(v1::Event*)> redact_;
  std::shared_ptr<Pump> pump_;
  std::shared_ptr<EventBus::Subscription> subscription_;
  Mutex mu_;
  std::deque<v1::Event> pending_ ABSL_GUARDED_BY(mu_);
  v1::Event current_;  // owned by the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// A stream refused before its first message.
template <typename W>
class FailedWriter : public WriteReactor<W> {
 public:
  explicit FailedWriter(const grpc::Status& status) : status_(status) {}
  void OnStart() override { this->Finish(status_); }
  void OnDone() override { delete this; }

 private:
  const grpc::Status status_;
};

// What a scoped caller may define as a source: a name its scope covers, reading a
// repository under its repos= and naming only credentials its credentials= covers (a
// credential found by URL prefix is the repository's own). Its submodules and LFS servers
// are held to repos= where they are fetched (Source.scope_repos).
absl::Status SourceInScope(const Caller& caller, const v1::Source& source) {
  if (!caller.scoped()) return absl::OkStatus();
  const Scope& scope = *caller.scope;
  if (absl::Status s = caller.MayReachSource(source.name()); !s.ok()) return s;
  if (!scope.CoversRepo(source.url())) {
    return OutOfScope(caller, absl::StrCat("repository ", RedactUrl(source.url().substr(0, 512)),
                                           " (a scope's sources read repositories under its "
                                           "repos=, written plainly)"));
  }
  if (!source.credentials_ref().empty() && !scope.CoversCredential(source.credentials_ref())) {
    return OutOfScope(caller, absl::StrCat("credential ", source.credentials_ref().substr(0, 128)));
  }
  // A key folder is a folder of --credentials-dir too: a team names its own.
  if (!source.verify_commits().empty() && !scope.CoversCredential(source.verify_commits())) {
    return OutOfScope(caller,
                      absl::StrCat("signing keys ", source.verify_commits().substr(0, 128)));
  }
  return absl::OkStatus();
}

bool CoversClusterInfo(const Scope& scope, const v1::ClusterInfo& cluster) {
  return scope.CoversCluster(LabelMap(cluster.labels().begin(), cluster.labels().end()));
}

// For a scoped caller, whether it may see a cluster (by the labels the hub knows it by,
// read once); null for an unscoped one.
std::function<bool(const std::string&)> VisibleClusters(const Caller& caller,
                                                        Controller* controller) {
  if (!caller.scoped()) return nullptr;
  auto covered = std::make_shared<std::set<std::string>>();
  const std::shared_ptr<const Scope> scope = caller.scope;
  for (const v1::ClusterInfo& c : controller->ListClusters(
           "", 0, [&scope](const LabelMap& labels) { return scope->CoversCluster(labels); })) {
    covered->insert(c.name());
  }
  return [covered](const std::string& name) { return covered->count(name) > 0; };
}

LabelMap ClusterLabels(Controller* controller, const std::string& cluster) {
  return controller->ClusterLabels(cluster).value_or(LabelMap());
}

// What a ScopedView looks names up in: the hub's clusters (by the labels bundles target
// them by) and the controller's bundles.
ScopedView::Lookups NamesIn(Controller* controller) {
  ScopedView::Lookups lookups;
  lookups.cluster_labels = [controller](const std::string& name) {
    return controller->ClusterLabels(name);
  };
  lookups.bundle_defined = [controller](const std::string& name) {
    return controller->BundleDefined(name);
  };
  return lookups;
}

// Whether a scoped watcher may see `event`: one about a bundle when its scope covers the
// bundle (and the cluster, if any), one about a source alone when it covers the source,
// one about a cluster alone when it covers the cluster. Called under the bus's lock, as
// EventBus::Filter::concerns is.
bool EventInScope(const Scope& scope, Controller* controller, const v1::Event& event) {
  auto covers_cluster = [&] {
    return event.cluster().empty() ||
           scope.CoversCluster(ClusterLabels(controller, event.cluster()));
  };
  if (!event.bundle().empty()) return scope.CoversBundle(event.bundle()) && covers_cluster();
  if (!event.source().empty()) return scope.CoversSource(event.source());
  return covers_cluster();
}

}  // namespace

// One admin call: who makes it, whether they may, and its accounting when it ends (the
// api_requests metric, and an audit line for every change and every refusal).
class AdminCall {
 public:
  AdminCall(AdminServiceImpl* service, const grpc::ServerContext* context, const char* method,
            std::string target = "")
      : service_(service),
        context_(context),
        method_(method),
        // The caller chose it, and a refused caller's is logged too.
        target_(ClipStatusMessage(target, kMaxAuditTargetBytes)) {
    absl::StatusOr<Caller> caller = service->auth_->Current()->Identify(CallerFacts::Of(*context));
    if (caller.ok()) {
      caller_ = *std::move(caller);
      allowed_ = Authorize(caller_, method_);
    } else {
      allowed_ = caller.status();
    }
  }

  bool allowed() const { return allowed_.ok(); }
  const absl::Status& refusal() const { return allowed_; }
  const Caller& caller() const { return caller_; }

  // OK when the caller's scope (if any) covers each of them; PERMISSION_DENIED naming the
  // first it does not. Empty names (an optional filter left out) pass.
  absl::Status MayReach(std::initializer_list<Named> names) const {
    if (!caller_.scoped()) return absl::OkStatus();
    for (const Named& named : names) {
      if (named.name.empty()) continue;
      absl::Status reach = named.kind == Named::kBundle ? caller_.MayReachBundle(named.name)
                           : named.kind == Named::kSource
                               ? caller_.MayReachSource(named.name)
                               : caller_.MayReachCluster(
                                     named.name, ClusterLabels(service_->controller_, named.name));
      if (!reach.ok()) return reach;
    }
    return absl::OkStatus();
  }
  // CheckNames, then MayReach. The names are the caller's own to read back.
  absl::Status Check(std::initializer_list<Named> names) {
    if (absl::Status s = CheckNames(names); !s.ok()) return s;
    if (caller_.scoped()) {
      for (const Named& named : names) view().Asked(named.name);
    }
    return MayReach(names);
  }

  // The caller's view of the fleet's texts: a scoped caller's names no cluster or bundle
  // outside its scope, but what it sent (the call's target, the names it checked).
  ScopedView& view() {
    if (!view_.has_value()) {
      view_.emplace(caller_.scope, NamesIn(service_->controller_));
      view_->Asked(target_);
    }
    return *view_;
  }

  // Counts and audits the call's outcome; returns it as a grpc::Status.
  grpc::Status Record(const absl::Status& status) {
    service_->metrics_.api_requests
        .Add({{"method", method_},
              {"code", absl::AsciiStrToLower(absl::StatusCodeToString(status.code()))}})
        .Increment();
    const std::string who =
        caller_.name.empty()
            ? context_->peer()
            : absl::StrCat(caller_.name, " (", RoleName(caller_.role), " by ", caller_.via, ")");
    if (!allowed_.ok()) {
      bool log;
      {
        MutexLock lock(&service_->mu_);
        log = service_->refusal_logs_.Take(RealClock().Now());
      }
      if (log) {
        GF_LOG(WARNING) << "audit: refused " << method_ << " " << target_ << " from " << who
                        << " at " << context_->peer() << ": " << allowed_.message();
      }
    } else if (IsMutating(method_)) {
      GF_LOG(INFO) << "audit: " << who << " " << method_ << " " << target_ << ": "
                   << (status.ok() ? "OK" : std::string(status.message()));
    }
    if (!status.ok() && allowed_.ok() && caller_.scoped()) {
      // The audit line above keeps the whole message; the team reads its share of it.
      return ToGrpcStatus(absl::Status(status.code(), view().Hide(status.message())));
    }
    return ToGrpcStatus(status);
  }

  grpc::Status Done(const absl::Status& status) { return Record(status); }

  grpc::Status Refused() { return Done(allowed_); }

  // A result as the caller's view shows it.
  template <typename T>
  absl::StatusOr<T> Hidden(absl::StatusOr<T> result) {
    if (result.ok() && caller_.scoped()) Hide(&*result);
    return result;
  }
  void Hide(v1::BundleInfo* info) {
    if (!caller_.scoped()) return;
    view().Hide(info);
    // A bundle defined for more than the caller's clusters (a fleet admin's, for every
    // cluster) is counted on its clusters alone, as its rollout is.
    const Scope& scope = *caller_.scope;
    if (!scope.clusters.has_value()) {  // a scope of no cluster
      info->set_target_clusters(0);
      info->set_current_clusters(0);
      info->set_not_deployed_clusters(0);
      info->clear_rolled_out_time();
    } else if (info->bundle().scope().clusters() != scope.clusters->text()) {
      service_->controller_->CountWithin(info, *scope.clusters);
    }
  }

  template <typename T>
  grpc::Status Reply(absl::StatusOr<T> result, T* response) {
    if (result.ok()) *response = *std::move(result);
    return Done(result.status());
  }

 private:
  AdminServiceImpl* const service_;
  const grpc::ServerContext* const context_;
  const std::string method_;
  const std::string target_;
  Caller caller_;
  absl::Status allowed_;
  std::optional<ScopedView> view_;
  static constexpr size_t kMaxAuditTargetBytes = 512;
};

grpc::Status AdminServiceImpl::AdmitReflection(const grpc::ServerContext& context) {
  AdminCall call(this, &context, "ServerReflectionInfo");
  return call.Refused();  // OK when allowed: counted, and audited when refused
}

WriteReactor<v1::BackupChunk>* AdminServiceImpl::Backup(grpc::ServerContext* context,
                                                        const v1::BackupRequest*) {
  AdminCall call(this, context, "Backup");
  if (!call.allowed()) return new FailedWriter<v1::BackupChunk>(call.Record(call.refusal()));
  static std::atomic<uint64_t> counter{0};
  const std::string path =
      absl::StrCat(scratch_dir_, "/backup-", getpid(), "-", counter.fetch_add(1), ".db.tmp");
  absl::Status made = store_->Backup(path);
  std::string data;
  if (made.ok()) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in) made = absl::InternalError(absl::StrCat("cannot read backup ", path));
    data = buffer.str();
  }
  unlink(path.c_str());
  call.Record(made);
  if (!made.ok()) {
    GF_LOG(ERROR) << "backup failed: " << made;
    return new FailedWriter<v1::BackupChunk>(ToGrpcStatus(made));
  }
  GF_LOG(INFO) << "backup of " << data.size() << " bytes sent";
  return new BackupWriter(std::move(data));
}

WriteReactor<v1::Event>* AdminServiceImpl::WatchEvents(grpc::ServerContext* context,
                                                       const v1::WatchEventsRequest* request) {
  AdminCall call(this, context, "WatchEvents",
                 absl::StrCat("bundle=", request->bundle(), " cluster=", request->cluster(),
                              request->follow() ? " --follow" : "",
                              request->after_sequence() > 0 || !request->stream().empty()
                                  ? absl::StrCat(" after=", request->after_sequence(), "@",
                                                 request->stream().substr(0, 64))
                                  : ""));
  if (!call.allowed()) return new FailedWriter<v1::Event>(call.Record(call.refusal()));
  if (events_ == nullptr) {
    return new FailedWriter<v1::Event>(
        call.Record(absl::UnavailableError("this control plane publishes no events")));
  }
  if (absl::Status s = call.Check(
          {{Named::kBundle, request->bundle(), true}, {Named::kCluster, request->cluster(), true}});
      !s.ok()) {
    return new FailedWriter<v1::Event>(call.Record(s));
  }
  if (request->stream().size() > 64) {
    return new FailedWriter<v1::Event>(call.Record(absl::InvalidArgumentError(
        absl::StrCat("stream: ", request->stream().size(),
                     " characters; a stream is the short id events carry (Event.stream)"))));
  }
  if (request->types_size() > 32) {
    return new FailedWriter<v1::Event>(call.Record(absl::InvalidArgumentError(
        absl::StrCat("types: ", request->types_size(), " given, at most 32"))));
  }
  for (const std::string& type : request->types()) {
    if (absl::Status known = CheckEventTypeFilter(type); !known.ok()) {
      return new FailedWriter<v1::Event>(call.Record(known));
    }
  }
  std::optional<EventBus::Resume> resume;
  if (request->after_sequence() > 0 || !request->stream().empty()) {
    resume = EventBus::Resume{request->after_sequence(), request->stream()};
  }
  EventBus::Filter filter{
      request->bundle(), request->cluster(), {request->types().begin(), request->types().end()}};
  if (!request->cluster().empty()) {
    // A watcher of one cluster sees the renders and rollouts of the bundles that reach it,
    // not every bundle's. The controller outlives the API's streams.
    filter.concerns = [controller = controller_,
                       cluster = request->cluster()](const std::string& bundle) {
      return controller->BundleConcernsCluster(bundle, cluster);
    };
  }
  if (call.caller().scoped()) {
    filter.allows = [controller = controller_, scope = call.caller().scope](const v1::Event& e) {
      return EventInScope(*scope, controller, e);
    };
  }
  auto subscribed = EventWriter::Subscribe(events_, std::move(filter), kMaxWatchers, resume);
  if (!subscribed.ok()) return new FailedWriter<v1::Event>(call.Record(subscribed.status()));
  call.Record(absl::OkStatus());
  // A scoped watcher's events name no cluster outside its scope in their messages (a
  // rollout of a bundle it sees waiting on another team's cluster).
  std::function<void(v1::Event*)> redact;
  if (call.caller().scoped()) {
    // A view per event: the fleet's clusters change while the stream lasts.
    redact = [scope = call.caller().scope, controller = controller_,
              asked = absl::StrCat(request->bundle(), " ", request->cluster())](v1::Event* event) {
      ScopedView view(scope, NamesIn(controller));
      view.Asked(asked);
      view.Hide(event);
    };
  }
  return new EventWriter(std::move(subscribed->first), std::move(subscribed->second),
                         request->follow(), std::move(redact));
}

grpc::Status AdminServiceImpl::WhoAmI(grpc::ServerContext* context, const v1::WhoAmIRequest*,
                                      v1::WhoAmIResponse* response) {
  AdminCall call(this, context, "WhoAmI");
  if (!call.allowed()) return call.Refused();
  const Caller& caller = call.caller();
  response->set_name(caller.name);
  response->set_role(RoleName(caller.role));
  response->set_via(caller.via);
  if (caller.scoped()) {
    const Scope& scope = *caller.scope;
    v1::CallerScope* out = response->mutable_scope();
    out->mutable_bundles()->Add(scope.bundles.begin(), scope.bundles.end());
    out->mutable_sources()->Add(scope.sources.begin(), scope.sources.end());
    out->mutable_repos()->Add(scope.repos.begin(), scope.repos.end());
    out->mutable_credentials()->Add(scope.credentials.begin(), scope.credentials.end());
    if (scope.clusters.has_value()) out->set_clusters(scope.clusters->text());
    out->mutable_namespaces()->Add(scope.namespaces.begin(), scope.namespaces.end());
    out->set_service_account(scope.service_account);
    out->mutable_sops_keys()->Add(scope.sops_keys.begin(), scope.sops_keys.end());
    out->mutable_kinds()->Add(scope.kinds.begin(), scope.kinds.end());
    out->mutable_deny_kinds()->Add(scope.deny_kinds.begin(), scope.deny_kinds.end());
    out->mutable_cluster_kinds()->Add(scope.cluster_kinds.begin(), scope.cluster_kinds.end());
  }
  return call.Done(absl::OkStatus());
}

grpc::Status AdminServiceImpl::AdoptCluster(grpc::ServerContext* context,
                                            const v1::AdoptClusterRequest* request,
                                            v1::AdoptClusterResponse*) {
  AdminCall call(this, context, "AdoptCluster", request->cluster());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = CheckNames({{Named::kCluster, request->cluster()}}); !s.ok())
    return call.Done(s);
  return call.Done(controller_->AdoptCluster(request->cluster()));
}

grpc::Status AdminServiceImpl::GetRollout(grpc::ServerContext* context,
                                          const v1::GetRolloutRequest* request,
                                          v1::RolloutStatus* response) {
  AdminCall call(this, context, "GetRollout", request->bundle());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->bundle()}}); !s.ok())
    return call.Done(s);
  const std::string& commit = request->commit();
  if (absl::Status s = ValidateCommitDigits("commit", commit); !commit.empty() && !s.ok()) {
    return call.Done(s);
  }
  absl::StatusOr<v1::RolloutStatus> status =
      controller_->GetRollout(request->bundle(), request->summary());
  if (status.ok() && !commit.empty()) {
    // Looked up after the status: a bundle that moved on meanwhile has reached more.
    absl::StatusOr<v1::CommitReach> reach = controller_->ReachOf(request->bundle(), commit);
    if (!reach.ok()) return call.Done(reach.status());
    *status->mutable_commit_reach() = *std::move(reach);
  }
  if (status.ok()) call.view().Hide(&*status);
  if (status.ok() && request->summary()) {
    return call.Reply(std::move(status), response);  // no clusters to count or trim
  }
  return call.Reply(
      TrimRollout(std::move(status), request->clusters_per_partition(), max_response_bytes_,
                  /*acted=*/false, VisibleClusters(call.caller(), controller_)),
      response);
}

grpc::Status AdminServiceImpl::ControlRollout(grpc::ServerContext* context,
                                              const v1::ControlRolloutRequest* request,
                                              v1::RolloutStatus* response) {
  AdminCall call(this, context, "ControlRollout",
                 absl::StrCat(request->action(), " ", request->bundle()));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->bundle()}}); !s.ok())
    return call.Done(s);
  if (request->clusters_per_partition() < 0) {
    return call.Done(absl::InvalidArgumentError("clusters_per_partition must not be negative"));
  }
  absl::StatusOr<v1::RolloutStatus> controlled =
      controller_->ControlRollout(request->bundle(), request->action(), CallDeadline(context));
  if (controlled.ok()) call.view().Hide(&*controlled);
  return call.Reply(
      TrimRollout(std::move(controlled), request->clusters_per_partition(), max_response_bytes_,
                  /*acted=*/true, VisibleClusters(call.caller(), controller_)),
      response);
}

grpc::Status AdminServiceImpl::RefreshBundle(grpc::ServerContext* context,
                                             const v1::RefreshBundleRequest* request,
                                             v1::BundleInfo* response) {
  AdminCall call(this, context, "RefreshBundle", absl::StrCat("refresh ", request->name()));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Reply(call.Hidden(controller_->RefreshBundle(request->name(), CallDeadline(context))),
                    response);
}

grpc::Status AdminServiceImpl::SuspendBundle(grpc::ServerContext* context,
                                             const v1::SuspendBundleRequest* request,
                                             v1::BundleInfo* response) {
  AdminCall call(this, context, "SuspendBundle",
                 absl::StrCat(request->suspend() ? "suspend " : "resume ", request->name()));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Reply(call.Hidden(controller_->SuspendBundle(request->name(), request->suspend(),
                                                           CallDeadline(context))),
                    response);
}

grpc::Status AdminServiceImpl::SuspendCluster(grpc::ServerContext* context,
                                              const v1::SuspendClusterRequest* request,
                                              v1::SuspendClusterResponse*) {
  AdminCall call(this, context, "SuspendCluster",
                 absl::StrCat(request->suspend() ? "suspend " : "resume ", request->name()));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kCluster, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Done(controller_->SuspendCluster(request->name(), request->suspend()));
}

grpc::Status AdminServiceImpl::BundleHistory(grpc::ServerContext* context,
                                             const v1::BundleHistoryRequest* request,
                                             v1::BundleHistoryResponse* response) {
  AdminCall call(this, context, "BundleHistory", request->name());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->name()}}); !s.ok())
    return call.Done(s);
  std::function<bool(const v1::ClusterInfo&)> visible;
  if (call.caller().scoped()) {
    // A team's history names and counts where each revision runs among its clusters.
    visible = [scope = call.caller().scope](const v1::ClusterInfo& cluster) {
      return CoversClusterInfo(*scope, cluster);
    };
  }
  return call.Reply(controller_->BundleHistory(request->name(), request->limit(), visible),
                    response);
}

grpc::Status AdminServiceImpl::PinBundle(grpc::ServerContext* context,
                                         const v1::PinBundleRequest* request,
                                         v1::BundleInfo* response) {
  AdminCall call(
      this, context, "PinBundle",
      absl::StrCat(request->name(), request->to().empty() ? " unpin" : " to=", request->to()));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->name()}}); !s.ok())
    return call.Done(s);
  if (request->to().size() > kMaxRefBytes) {
    return call.Done(absl::InvalidArgumentError(
        absl::StrCat("to: ", request->to().size(), " bytes; a revision, commit, tag or branch ",
                     "is at most ", kMaxRefBytes)));
  }
  return call.Reply(call.Hidden(controller_->PinBundle(request->name(), request->to(),
                                                       request->no_prune(), CallDeadline(context))),
                    response);
}

grpc::Status AdminServiceImpl::ForgetBundle(grpc::ServerContext* context,
                                            const v1::ForgetBundleRequest* request,
                                            v1::ForgetBundleResponse*) {
  AdminCall call(this, context, "ForgetBundle",
                 absl::StrCat(request->cluster(), " bundle=", request->bundle(),
                              request->prune() ? " --prune" : ""));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s =
          call.Check({{Named::kCluster, request->cluster()}, {Named::kBundle, request->bundle()}});
      !s.ok())
    return call.Done(s);
  return call.Done(
      controller_->ForgetBundle(request->cluster(), request->bundle(), request->prune()));
}

grpc::Status AdminServiceImpl::AddSource(grpc::ServerContext* context,
                                         const v1::AddSourceRequest* request,
                                         v1::SourceInfo* response) {
  AdminCall call(
      this, context, "AddSource",
      absl::StrCat(request->source().name(), " url=", RedactUrl(request->source().url())));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = SourceInScope(call.caller(), request->source()); !s.ok()) {
    return call.Done(s);
  }
  v1::Source source = request->source();
  source.clear_scope_repos();  // the control plane's to set
  source.clear_scope_caller();
  if (call.caller().scoped()) {
    for (const std::string& repo : call.caller().scope->repos) source.add_scope_repos(repo);
    source.set_scope_caller(call.caller().name);
  }
  return call.Reply(controller_->AddSource(source, request->replace(), CallDeadline(context),
                                           request->rename_releases()),
                    response);
}

grpc::Status AdminServiceImpl::ListSources(grpc::ServerContext* context,
                                           const v1::ListSourcesRequest*,
                                           v1::ListSourcesResponse* response) {
  AdminCall call(this, context, "ListSources");
  if (!call.allowed()) return call.Refused();
  for (v1::SourceInfo& info : controller_->ListSources()) {
    if (!call.caller().MayReachSource(info.source().name()).ok()) continue;
    *response->add_sources() = std::move(info);
  }
  return call.Done(absl::OkStatus());
}

grpc::Status AdminServiceImpl::RemoveSource(grpc::ServerContext* context,
                                            const v1::RemoveSourceRequest* request,
                                            v1::RemoveSourceResponse*) {
  AdminCall call(this, context, "RemoveSource", request->name());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kSource, request->name()}}); !s.ok())
    return call.Done(s);
  // A team learns of the bundles it may see alone; the others are counted.
  const Caller& caller = call.caller();
  return call.Done(controller_->RemoveSource(
      request->name(),
      caller.scoped() ? std::function<bool(const std::string&)>([&caller](const std::string& b) {
        return caller.scope->CoversBundle(b);
      })
                      : std::function<bool(const std::string&)>()));
}

grpc::Status AdminServiceImpl::SyncSource(grpc::ServerContext* context,
                                          const v1::SyncSourceRequest* request,
                                          v1::SourceInfo* response) {
  AdminCall call(this, context, "SyncSource", request->name());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kSource, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Reply(controller_->SyncSource(request->name(), CallDeadline(context)), response);
}

grpc::Status AdminServiceImpl::AddBundle(grpc::ServerContext* context,
                                         const v1::AddBundleRequest* request,
                                         v1::BundleInfo* response) {
  AdminCall call(
      this, context, "AddBundle",
      absl::StrCat(request->bundle().name(), " source=", request->bundle().source(), " selector=",
                   request->bundle().selector(), request->allow_removal() ? " allow_removal" : "",
                   request->adopt() ? " adopt" : "", request->drop_limits() ? " drop_limits" : ""));
  if (!call.allowed()) return call.Refused();
  v1::Bundle bundle = request->bundle();
  bundle.clear_scope();  // the control plane's to set
  if (request->drop_limits() && !request->adopt()) {
    return call.Done(absl::InvalidArgumentError(
        "drop_limits is for an adoption (adopt): a team's bundle whose scope goes whole"));
  }
  if (request->adopt() && call.caller().scoped()) {
    return call.Done(absl::PermissionDeniedError(
        absl::StrCat("caller ", call.caller().name,
                     " is a team's: adopting a team's bundle as the fleet's own is for a fleet "
                     "admin (a line with no scope)")));
  }
  if (call.caller().scoped()) {
    const Caller& caller = call.caller();
    if (absl::Status s =
            call.Check({{Named::kBundle, bundle.name()}, {Named::kSource, bundle.source()}});
        !s.ok()) {
      return call.Done(s);
    }
    if (!caller.scope->clusters.has_value()) {
      return call.Done(absl::PermissionDeniedError(
          absl::StrCat("caller ", caller.name, "'s scope names no clusters (clusters=), so a ",
                       "bundle it defines could reach none")));
    }
    *bundle.mutable_scope() = ToBundleScope(caller.name, *caller.scope);
  }
  return call.Reply(call.Hidden(controller_->AddBundle(
                        bundle, request->replace(), CallDeadline(context), request->allow_removal(),
                        request->if_generation(),
                        !request->adopt()        ? Controller::Adopt::kNo
                        : request->drop_limits() ? Controller::Adopt::kDropLimits
                                                 : Controller::Adopt::kKeepLimits)),
                    response);
}

grpc::Status AdminServiceImpl::ListBundles(grpc::ServerContext* context,
                                           const v1::ListBundlesRequest* request,
                                           v1::ListBundlesResponse* response) {
  AdminCall call(this, context, "ListBundles");
  if (!call.allowed()) return call.Refused();
  const NamedListing<v1::BundleInfo, v1::ListBundlesResponse> listing{
      "ListBundles",
      "bundles",
      "gitfleetctl bundle list",
      [](const std::string& name) { return ValidateName("bundle", name); },
      [this, &call](const std::string& from, size_t max) {
        if (!call.caller().scoped()) return controller_->ListBundles(from, max);
        std::vector<v1::BundleInfo> bundles =
            controller_->ListBundles(from, max, [&call](const std::string& bundle) {
              return call.caller().scope->CoversBundle(bundle);
            });
        for (v1::BundleInfo& info : bundles) call.Hide(&info);
        return bundles;
      },
      [](const v1::BundleInfo& info) -> const std::string& { return info.bundle().name(); }};
  return call.Done(listing.Fill(request->page_size(), request->page_token(), max_response_bytes_,
                                response->mutable_bundles(), response));
}

grpc::Status AdminServiceImpl::RemoveBundle(grpc::ServerContext* context,
                                            const v1::RemoveBundleRequest* request,
                                            v1::RemoveBundleResponse*) {
  AdminCall call(this, context, "RemoveBundle", request->name());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check({{Named::kBundle, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Done(controller_->RemoveBundle(request->name(), CallDeadline(context)));
}

grpc::Status AdminServiceImpl::ListClusters(grpc::ServerContext* context,
                                            const v1::ListClustersRequest* request,
                                            v1::ListClustersResponse* response) {
  AdminCall call(this, context, "ListClusters");
  if (!call.allowed()) return call.Refused();
  const NamedListing<v1::ClusterInfo, v1::ListClustersResponse> listing{
      "ListClusters",
      "clusters",
      "gitfleetctl cluster list",
      ValidateClusterName,
      [this, &call](const std::string& from, size_t max) {
        if (!call.caller().scoped()) return controller_->ListClusters(from, max);
        std::vector<v1::ClusterInfo> clusters = controller_->ListClusters(
            from, max,
            [&call](const LabelMap& labels) { return call.caller().scope->CoversCluster(labels); });
        for (v1::ClusterInfo& cluster : clusters) call.view().Hide(&cluster);
        return clusters;
      },
      [](const v1::ClusterInfo& info) -> const std::string& { return info.name(); }};
  return call.Done(listing.Fill(request->page_size(), request->page_token(), max_response_bytes_,
                                response->mutable_clusters(), response));
}

grpc::Status AdminServiceImpl::GetStatus(grpc::ServerContext* context,
                                         const v1::GetStatusRequest* request,
                                         v1::GetStatusResponse* response) {
  AdminCall call(this, context, "GetStatus");
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = call.Check(
          {{Named::kCluster, request->cluster(), true}, {Named::kBundle, request->bundle(), true}});
      !s.ok())
    return call.Done(s);
  if (absl::Status s = CheckPageSize(request->page_size()); !s.ok()) return call.Done(s);
  // A scoped caller's statuses: of the bundles and clusters its scope covers (a page may
  // hold fewer than asked for; its token goes on from where the page was cut).
  std::function<bool(const v1::BundleStatus&)> visible;
  if (call.caller().scoped()) {
    visible = [scope = call.caller().scope,
               cluster_visible =
                   VisibleClusters(call.caller(), controller_)](const v1::BundleStatus& status) {
      return scope->CoversBundle(status.bundle()) && cluster_visible(status.cluster());
    };
  }
  if (absl::Status s = controller_->CheckStatusFilter(request->cluster(), request->bundle());
      !s.ok()) {
    return call.Done(s);
  }
  if (request->tally()) {
    if (request->bundle().empty() || !request->cluster().empty() ||
        !request->page_token().empty()) {
      return call.Done(absl::InvalidArgumentError(
          "tally counts one bundle's clusters: give a bundle, and no cluster or page"));
    }
    // A scoped caller's count: of the clusters it may see, from their statuses.
    absl::StatusOr<StatusTally> tally = StatusTally{};
    if (visible == nullptr) {
      tally = controller_->TallyBundle(request->bundle());
    } else {
      for (const v1::BundleStatus& status : controller_->GetStatus("", request->bundle())) {
        if (visible(status)) tally->Add(status);
      }
    }
    if (!tally.ok()) return call.Done(tally.status());
    v1::StatusCount* count = response->mutable_tally();
    count->set_total(tally->total);
    count->set_ready(tally->ready);
    count->set_first_not_ready(tally->first_not_ready);
    return call.Done(absl::OkStatus());
  }
  if (request->page_size() == 0 && request->page_token().empty()) {
    for (v1::BundleStatus& status : controller_->GetStatus(request->cluster(), request->bundle())) {
      if (visible != nullptr && !visible(status)) continue;
      if (visible != nullptr) call.view().Hide(&status);
      *response->add_statuses() = std::move(status);
    }
    const int count = response->statuses_size();
    return call.Done(CheckWhole(response, max_response_bytes_,
                                absl::StrCat("the status of ", count, " bundles on clusters"),
                                "gitfleetctl status does, or filter by cluster or bundle"));
  }
  absl::StatusOr<Controller::StatusPage> page = controller_->GetStatusPage(
      request->cluster(), request->bundle(), request->page_token(),
      request->page_size() == 0 ? kDefaultPageSize : std::min(request->page_size(), kMaxPageSize));
  if (!page.ok()) return call.Done(page.status());
  if (visible != nullptr) {
    // The next page starts after the last status read, whether it was seen or not.
    page->statuses.erase(
        std::remove_if(page->statuses.begin(), page->statuses.end(),
                       [&visible](const v1::BundleStatus& s) { return !visible(s); }),
        page->statuses.end());
    for (v1::BundleStatus& status : page->statuses) call.view().Hide(&status);
  }
  // A page also ends before it outgrows one message; the next one starts there.
  const size_t taken = FillPage(page->statuses, page->statuses.size(), max_response_bytes_,
                                response->mutable_statuses());
  response->set_next_page_token(
      taken < page->statuses.size()
          ? Controller::StatusPageToken(response->statuses(response->statuses_size() - 1))
          : page->next_page_token);
  return call.Done(absl::OkStatus());
}

void AdminServiceImpl::DiffBundle(grpc::ServerContext* context,
                                  const v1::DiffBundleRequest* request, v1::DiffResult* response,
                                  std::function<void(const grpc::Status&)> done) {
  auto call = std::make_shared<AdminCall>(
      this, context, "DiffBundle", absl::StrCat(request->cluster(), " bundle=", request->bundle()));
  if (!call->allowed()) {
    done(call->Refused());
    return;
  }
  if (absl::Status s =
          call->Check({{Named::kCluster, request->cluster()}, {Named::kBundle, request->bundle()}});
      !s.ok()) {
    done(call->Done(s));
    return;
  }
  absl::Duration timeout = request->timeout_seconds() > 0
                               ? absl::Seconds(std::min(request->timeout_seconds(), 300))
                               : absl::Seconds(10);
  // Answered from the agent's stream thread, or the hub's timer on expiry.
  controller_->DiffBundle(request->cluster(), request->bundle(), timeout,
                          [call, done, response](absl::StatusOr<v1::DiffResult> result) {
                            if (result.ok()) *response = *std::move(result);
                            done(call->Record(result.status()));
                          });
}

namespace {

std::string LabelText(const google::protobuf::Map<std::string, std::string>& labels) {
  std::vector<std::string> pairs;
  for (const auto& [key, value] : labels) pairs.push_back(absl::StrCat(key, "=", value));
  std::sort(pairs.begin(), pairs.end());
  return absl::StrJoin(pairs, ",");
}

}  // namespace

grpc::Status AdminServiceImpl::RegisterCluster(grpc::ServerContext* context,
                                               const v1::RegisterClusterRequest* request,
                                               v1::ClusterTokenResponse* response) {
  AdminCall call(this, context, "RegisterCluster",
                 absl::StrCat(request->name(), " labels=", LabelText(request->labels())));
  if (!call.allowed()) return call.Refused();
  absl::StatusOr<std::string> token = registry_->Register(
      request->name(), LabelMap(request->labels().begin(), request->labels().end()));
  if (token.ok()) {
    response->set_cluster(request->name());
    response->set_token(*token);
  }
  return call.Done(token.status());
}

grpc::Status AdminServiceImpl::LabelCluster(grpc::ServerContext* context,
                                            const v1::LabelClusterRequest* request,
                                            v1::LabelClusterResponse*) {
  AdminCall call(this, context, "LabelCluster",
                 absl::StrCat(request->name(), " labels=", LabelText(request->labels()),
                              request->allow_removal() ? " allow_removal" : ""));
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = CheckNames({{Named::kCluster, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Done(registry_->SetLabels(
      request->name(), LabelMap(request->labels().begin(), request->labels().end()),
      request->allow_removal()));
}

grpc::Status AdminServiceImpl::RotateClusterToken(grpc::ServerContext* context,
                                                  const v1::RotateClusterTokenRequest* request,
                                                  v1::ClusterTokenResponse* response) {
  AdminCall call(this, context, "RotateClusterToken", request->name());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = CheckNames({{Named::kCluster, request->name()}}); !s.ok())
    return call.Done(s);
  absl::StatusOr<ClusterRegistry::Rotated> rotated =
      registry_->RotateToken(request->name(), absl::Seconds(request->grace_seconds()));
  if (rotated.ok()) {
    response->set_cluster(request->name());
    response->set_token(rotated->token);
    if (rotated->old_valid_until != absl::InfinitePast()) {
      *response->mutable_old_token_valid_until() = ToProtoTime(rotated->old_valid_until);
    }
  }
  return call.Done(rotated.status());
}

grpc::Status AdminServiceImpl::RemoveCluster(grpc::ServerContext* context,
                                             const v1::RemoveClusterRequest* request,
                                             v1::RemoveClusterResponse*) {
  AdminCall call(this, context, "RemoveCluster", request->name());
  if (!call.allowed()) return call.Refused();
  if (absl::Status s = CheckNames({{Named::kCluster, request->name()}}); !s.ok())
    return call.Done(s);
  return call.Done(registry_->Remove(request->name()));
}

void AdminServiceImpl::Serve(ServerLoop* loop) {
  using Async = v1::AdminService::AsyncService;
  ServeUnary(loop, &async_, &Async::RequestAddSource, this, &AdminServiceImpl::AddSource);
  ServeUnary(loop, &async_, &Async::RequestListSources, this, &AdminServiceImpl::ListSources);
  ServeUnary(loop, &async_, &Async::RequestRemoveSource, this, &AdminServiceImpl::RemoveSource);
  ServeUnary(loop, &async_, &Async::RequestSyncSource, this, &AdminServiceImpl::SyncSource);
  ServeUnary(loop, &async_, &Async::RequestAddBundle, this, &AdminServiceImpl::AddBundle);
  ServeUnary(loop, &async_, &Async::RequestListBundles, this, &AdminServiceImpl::ListBundles);
  ServeUnary(loop, &async_, &Async::RequestRemoveBundle, this, &AdminServiceImpl::RemoveBundle);
  ServeUnary(loop, &async_, &Async::RequestListClusters, this, &AdminServiceImpl::ListClusters);
  ServeUnary(loop, &async_, &Async::RequestGetStatus, this, &AdminServiceImpl::GetStatus);
  ServeUnaryLater(loop, &async_, &Async::RequestDiffBundle, this, &AdminServiceImpl::DiffBundle);
  ServeUnary(loop, &async_, &Async::RequestGetRollout, this, &AdminServiceImpl::GetRollout);
  ServeUnary(loop, &async_, &Async::RequestControlRollout, this, &AdminServiceImpl::ControlRollout);
  ServeUnary(loop, &async_, &Async::RequestSuspendBundle, this, &AdminServiceImpl::SuspendBundle);
  ServeUnary(loop, &async_, &Async::RequestRefreshBundle, this, &AdminServiceImpl::RefreshBundle);
  ServeUnary(loop, &async_, &Async::RequestSuspendCluster, this, &AdminServiceImpl::SuspendCluster);
  ServeUnary(loop, &async_, &Async::RequestBundleHistory, this, &AdminServiceImpl::BundleHistory);
  ServeUnary(loop, &async_, &Async::RequestPinBundle, this, &AdminServiceImpl::PinBundle);
  ServeUnary(loop, &async_, &Async::RequestAdoptCluster, this, &AdminServiceImpl::AdoptCluster);
  ServeUnary(loop, &async_, &Async::RequestWhoAmI, this, &AdminServiceImpl::WhoAmI);
  ServeUnary(loop, &async_, &Async::RequestForgetBundle, this, &AdminServiceImpl::ForgetBundle);
  ServeUnary(loop, &async_, &Async::RequestRegisterCluster, this,
             &AdminServiceImpl::RegisterCluster);
  ServeUnary(loop, &async_, &Async::RequestLabelCluster, this, &AdminServiceImpl::LabelCluster);
  ServeUnary(loop, &async_, &Async::RequestRotateClusterToken, this,
             &AdminServiceImpl::RotateClusterToken);
  ServeUnary(loop, &async_, &Async::RequestRemoveCluster, this, &AdminServiceImpl::RemoveCluster);
  ServeServerStream(loop, &async_, &Async::RequestWatchEvents, this,
                    &AdminServiceImpl::WatchEvents);
  ServeServerStream(loop, &async_, &Async::RequestBackup, this, &AdminServiceImpl::Backup);
}

}  // namespace gitfleet
