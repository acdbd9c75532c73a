#include "controlplane/distribute/cluster_registry.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"
#include "common/logging.h"
#include "common/manifest/hash.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/thread_name.h"
#include "proto/gitfleet/v1/state.pb.h"

namespace gitfleet {
namespace {

constexpr char kRegistrations[] = "registrations";
constexpr size_t kMaxTokenBytes = 4096;
constexpr size_t kMaxRefusalsTracked = 10000;
// About 100,000 clusters' lines.
constexpr size_t kMaxFileBytes = 16 << 20;
// A --agent-tokens token field that is the token's SHA-256 in hex, not the token.
constexpr char kHashedTokenPrefix[] = "sha256:";

absl::StatusOr<std::string> NewToken() {
  std::string token = RandomToken("gfa_");
  if (token.empty()) return absl::InternalError("no randomness for a cluster token");
  return token;
}

}  // namespace

absl::StatusOr<ClusterRegistry::FileClusters> ClusterRegistry::ParseFile(
    const std::string& text, const std::string& origin) {
  FileClusters clusters;
  std::map<std::string, int> first_line;
  std::set<std::string> in_clear;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    auto where = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", line_number, ": ", what));
    };
    if (fields.size() != 2 && fields.size() != 3) {
      return where(absl::StrCat("want \"cluster token [labels]\", got ", fields.size(), " fields"));
    }
    if (absl::Status s = ValidateClusterName(fields[0]); !s.ok()) return where(s.message());
    Entry entry;
    if (absl::StartsWith(fields[1], kHashedTokenPrefix)) {
      // The token's SHA-256: the file then holds nothing an agent could present.
      std::optional<std::string> hash =
          Sha256FromHex(absl::string_view(fields[1]).substr(strlen(kHashedTokenPrefix)));
      if (!hash.has_value()) {
        return where(absl::StrCat("cluster ", fields[0], ": ", kHashedTokenPrefix,
                                  " must be followed by the 64 hex digits of the token's SHA-256 "
                                  "(printf %s \"$TOKEN\" | sha256sum)"));
      }
      entry.token_sha256 = *std::move(hash);
    } else {
      entry.token_sha256 = Sha256Bytes(fields[1]);
      in_clear.insert(fields[0]);
    }
    if (fields.size() == 3) {
      absl::StatusOr<LabelMap> labels = ParseLabels(fields[2]);
      if (!labels.ok()) return where(labels.status().message());
      entry.labels = *std::move(labels);
      entry.has_labels = true;
    }
    auto [it, added] = clusters.emplace(fields[0], entry);
    if (!added) {
      // Two lines: the cluster's agent is moving to the later line's token, and both
      // work until the earlier line is removed. Never three, and never two that disagree
      // on what the cluster is.
      Entry& first = it->second;
      const std::string lines = absl::StrCat("lines ", first_line[fields[0]], " and ", line_number);
      if (!first.previous_sha256.empty()) {
        return where(absl::StrCat("cluster ", fields[0],
                                  " is listed a third time; two lines (its token and the one "
                                  "replacing it) are the most"));
      }
      if (first.has_labels != entry.has_labels || first.labels != entry.labels) {
        return where(absl::StrCat("cluster ", fields[0], " is listed twice (", lines,
                                  ") with different labels; while its agent moves to the later "
                                  "line's token, both lines must give the same labels"));
      }
      if (first.token_sha256 == entry.token_sha256) {
        return where(
            absl::StrCat("cluster ", fields[0], " is listed twice (", lines, ") with one token"));
      }
      first.previous_sha256 = std::move(first.token_sha256);
      first.previous_until = absl::InfiniteFuture();  // until the line goes
      first.token_sha256 = std::move(entry.token_sha256);
      continue;
    }
    first_line[fields[0]] = line_number;
    if (clusters.size() > kMaxClusters) {
      return where(
          absl::StrCat("more than ", kMaxClusters, " clusters, the most one control plane takes"));
    }
  }
  if (!in_clear.empty()) {
    GF_LOG(WARNING) << origin << " holds the agent tokens themselves of " << in_clear.size()
                    << " clusters ("
                    << ListNames(std::vector<std::string>(in_clear.begin(), in_clear.end()))
                    << "): whoever reads the file can act as them. Write each as "
                    << kHashedTokenPrefix << "HEX, its SHA-256 (printf %s \"$TOKEN\" | sha256sum)";
  }
  return clusters;
}

absl::StatusOr<std::unique_ptr<ClusterRegistry>> ClusterRegistry::Create(
    Store* store, Hub* hub, const std::string& tokens_text, const std::string& origin,
    bool allow_any_agent, Clock* clock) {
  absl::StatusOr<FileClusters> file = ParseFile(tokens_text, origin);
  if (!file.ok()) return file.status();
  return Install(store, hub, *std::move(file), allow_any_agent, clock);
}

absl::StatusOr<std::unique_ptr<ClusterRegistry>> ClusterRegistry::Install(Store* store, Hub* hub,
                                                                          FileClusters file,
                                                                          bool allow_any_agent,
                                                                          Clock* clock) {
  std::unique_ptr<ClusterRegistry> registry(
      new ClusterRegistry(store, hub, allow_any_agent, clock));
  bool grace_running = false;
  std::map<std::string, Entry> clusters = file;
  // Registrations made through the API win over file lines of the same name.
  if (store != nullptr) {
    absl::StatusOr<std::vector<Store::Entry>> stored = store->List(kRegistrations);
    if (!stored.ok()) return stored.status();
    for (const Store::Entry& row : *stored) {
      v1::ClusterRegistration registration;
      if (!registration.ParseFromString(row.value) || registration.name() != row.key ||
          registration.token_sha256().size() != SHA256_DIGEST_LENGTH ||
          (!registration.previous_token_sha256().empty() &&
           registration.previous_token_sha256().size() != SHA256_DIGEST_LENGTH)) {
        // Skipping it would let anyone claim the cluster under --allow-any-agent: refuse
        // to start instead, naming the row.
        return absl::DataLossError(absl::StrCat("stored registration of cluster \"", row.key,
                                                "\" is corrupt; remove or restore it"));
      }
      Entry entry;
      entry.labels = LabelMap(registration.labels().begin(), registration.labels().end());
      entry.has_labels = true;
      entry.token_sha256 = registration.token_sha256();
      entry.from_api = true;
      if (!registration.previous_token_sha256().empty()) {
        entry.previous_sha256 = registration.previous_token_sha256();
        entry.previous_until = FromProtoTime(registration.previous_valid_until());
        // No agent is connected yet: a grace still running ends with the thread's help.
        entry.grace_over = entry.previous_until <= clock->Now();
        grace_running = grace_running || !entry.grace_over;
      }
      clusters[row.key] = std::move(entry);
    }
  }
  MutexLock writer(&registry->writer_mu_);
  registry->applied_file_ = std::make_shared<const FileClusters>(std::move(file));
  {
    MutexLock lock(&registry->mu_);
    registry->clusters_ = clusters;
  }
  for (const auto& [name, entry] : clusters) registry->PublishLocked(name, &entry);
  if (grace_running) registry->WakeExpiry();
  return registry;
}

absl::StatusOr<std::unique_ptr<ClusterRegistry>> ClusterRegistry::Load(
    Store* store, Hub* hub, const std::string& tokens_path, bool allow_any_agent,
    WatchedFilesOptions options) {
  if (tokens_path.empty()) return Create(store, hub, "", "", allow_any_agent, options.clock);
  options.max_bytes = kMaxFileBytes;
  absl::StatusOr<std::unique_ptr<WatchedFiles<FileClusters>>> file =
      WatchedFiles<FileClusters>::Open(
          {{"--agent-tokens", tokens_path}},
          [tokens_path](const std::vector<std::string>& contents) {
            return ParseFile(contents[0], tokens_path);
          },
          options,
          [tokens_path](const FileClusters& before, const FileClusters& after) {
            // An emptied file is what a truncated write looks like; retiring every cluster
            // it listed takes a file that says so (a comment line will do).
            if (!before.empty() && after.empty()) {
              absl::StatusOr<std::string> text =
                  ReadWatchedFile("--agent-tokens", tokens_path, kMaxFileBytes);
              if (text.ok() && absl::StripAsciiWhitespace(*text).empty()) {
                return absl::InvalidArgumentError(
                    absl::StrCat("--agent-tokens: ", tokens_path, " is empty; to retire all ",
                                 before.size(), " clusters it listed, leave a comment line in it"));
              }
            }
            return absl::OkStatus();
          });
  if (!file.ok()) return file.status();
  absl::StatusOr<std::unique_ptr<ClusterRegistry>> registry =
      Install(store, hub, *(*file)->Current(), allow_any_agent, options.clock);
  if (!registry.ok()) return registry.status();
  (*registry)->file_ = *std::move(file);
  return registry;
}

void ClusterRegistry::Refresh() {
  if (file_ == nullptr) return;
  std::shared_ptr<const FileClusters> now = file_->Current();
  MutexLock writer(&writer_mu_);
  if (now == applied_file_) return;
  ApplyFileLocked(*applied_file_, *now);
  applied_file_ = std::move(now);
}

void ClusterRegistry::ApplyFileLocked(const FileClusters& before, const FileClusters& after) {
  std::set<std::string> names;
  for (const auto& [name, entry] : before) names.insert(name);
  for (const auto& [name, entry] : after) names.insert(name);
  for (const std::string& name : names) {
    auto was = before.find(name);
    auto is = after.find(name);
    if (was != before.end() && is != after.end() &&
        was->second.token_sha256 == is->second.token_sha256 &&
        was->second.previous_sha256 == is->second.previous_sha256 &&
        was->second.has_labels == is->second.has_labels &&
        was->second.labels == is->second.labels) {
      continue;
    }
    std::optional<Entry> current;
    {
      MutexLock lock(&mu_);
      auto it = clusters_.find(name);
      if (it != clusters_.end()) {
        if (it->second.from_api) continue;  // the API's registration wins
        current = it->second;
      }
    }
    if (is == after.end()) {
      if (!current.has_value()) continue;
      {
        MutexLock lock(&mu_);
        clusters_.erase(name);
      }
      PublishLocked(name, nullptr);
      if (hub_ != nullptr) {
        hub_->CloseCluster(name, absl::UnauthenticatedError("this cluster was removed from the "
                                                            "control plane's --agent-tokens"));
      }
      GF_LOG(INFO) << "cluster " << name
                   << " removed from --agent-tokens; what its agent holds stays applied";
      continue;
    }
    // The token the agent was let in with (as far as the registry knows: the current one
    // unless it connected with the earlier line's), and where it stands now.
    enum { kKept, kNowEarlier, kStopped } agent = kKept;
    bool was_earlier = false;
    {
      MutexLock lock(&mu_);
      clusters_[name] = is->second;
      if (current.has_value()) {
        was_earlier = on_previous_.count(name) > 0;
        const std::string& held = was_earlier ? current->previous_sha256 : current->token_sha256;
        if (!held.empty() && held == is->second.token_sha256) {
          on_previous_.erase(name);
        } else if (!held.empty() && held == is->second.previous_sha256) {
          agent = kNowEarlier;
          on_previous_.insert(name);
        } else {
          agent = kStopped;
          on_previous_.erase(name);
        }
      }
    }
    if (!current.has_value() || current->has_labels != is->second.has_labels ||
        current->labels != is->second.labels) {
      PublishLocked(name, &is->second);
    }
    if (hub_ != nullptr) {
      // `cluster list` says which agents are still on an earlier line's token.
      if (agent == kStopped) {
        hub_->CloseCluster(
            name, absl::UnauthenticatedError("this cluster's token changed in the control plane's "
                                             "--agent-tokens; reconnect with the new one"));
      } else if (agent == kNowEarlier) {
        hub_->SetOldToken(name, absl::InfiniteFuture());
      } else if (was_earlier) {
        hub_->SetOldToken(name, absl::InfinitePast());
      }
    }
    const char* what = " added from --agent-tokens";
    if (current.has_value()) {
      const Entry& is_entry = is->second;
      if (current->token_sha256 == is_entry.token_sha256 &&
          current->previous_sha256 == is_entry.previous_sha256) {
        what = "'s labels changed in --agent-tokens";
      } else if (!is_entry.previous_sha256.empty() &&
                 is_entry.previous_sha256 == current->token_sha256) {
        what =
            " is listed with a second token in --agent-tokens; both work until the earlier "
            "line is removed";
      } else if (is_entry.previous_sha256.empty() && !current->previous_sha256.empty() &&
                 is_entry.token_sha256 == current->token_sha256) {
        what = agent == kStopped ? "'s earlier token was removed from --agent-tokens; its agent, "
                                   "still on it, was disconnected"
                                 : "'s earlier token was removed from --agent-tokens";
      } else {
        what = "'s token changed in --agent-tokens";
      }
    }
    GF_LOG(INFO) << "cluster " << name << what;
  }
}

void ClusterRegistry::WatchFile(absl::Duration every) {
  if (file_ == nullptr || watcher_.joinable()) return;
  watcher_ = std::thread([this, every] {
    NameThisThread("gf-agent-tokens");
    while (true) {
      Refresh();
      MutexLock lock(&watch_mu_);
      if (watch_mu_.AwaitWithTimeout(
              [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_) { return stopping_; }, every)) {
        return;
      }
    }
  });
}

ClusterRegistry::~ClusterRegistry() {
  std::thread expirer;
  {
    MutexLock lock(&watch_mu_);
    stopping_ = true;
    expirer = std::move(expirer_);
  }
  if (watcher_.joinable()) watcher_.join();
  if (expirer.joinable()) expirer.join();
}

void ClusterRegistry::WakeExpiry() {
  MutexLock lock(&watch_mu_);
  expiry_woken_ = true;
  if (expirer_.joinable() || stopping_) return;
  expirer_ = std::thread([this] {
    NameThisThread("gf-token-grace");
    while (true) {
      bool woken;
      {
        MutexLock lock(&watch_mu_);
        if (stopping_) return;
        // Looked at with the lock held: a rotation installs its grace, then wakes us.
        expiry_woken_ = false;
        woken = clock_->AwaitWithDeadline(
            &watch_mu_,
            [this]()
                ABSL_EXCLUSIVE_LOCKS_REQUIRED(watch_mu_) { return stopping_ || expiry_woken_; },
            NextGraceEnd());
        if (stopping_) return;
      }
      if (!woken) ExpireGraces();
    }
  });
}

absl::Time ClusterRegistry::NextGraceEnd() const {
  absl::Time next = absl::InfiniteFuture();
  MutexLock lock(&mu_);
  for (const auto& [name, entry] : clusters_) {
    if (!entry.grace_over) next = std::min(next, entry.previous_until);
  }
  return next;
}

std::vector<std::string> ClusterRegistry::ExpireGraces() {
  std::vector<std::string> closed;
  {
    const absl::Time now = clock_->Now();
    MutexLock lock(&mu_);
    for (auto& [name, entry] : clusters_) {
      if (entry.grace_over || entry.previous_until > now) continue;
      entry.grace_over = true;
      if (on_previous_.erase(name) > 0) closed.push_back(name);
    }
  }
  for (const std::string& name : closed) {
    GF_LOG(INFO) << "cluster " << name
                 << ": the grace of the token a rotation replaced is over; its agent, still on "
                    "that token, is disconnected";
    if (hub_ != nullptr) {
      hub_->CloseCluster(
          name, absl::UnauthenticatedError("the grace of this cluster's old token is over (cluster "
                                           "rotate-token); reconnect with the new one"));
    }
  }
  return closed;
}

ClusterRegistry::Which ClusterRegistry::Matches(const std::string& cluster,
                                                const std::string& token,
                                                absl::Time* previous_until, bool note) const {
  const bool usable = !token.empty() && token.size() <= kMaxTokenBytes;
  const std::string digest = usable ? Sha256Bytes(token) : std::string();
  const absl::Time now = clock_->Now();
  MutexLock lock(&mu_);
  auto it = clusters_.find(cluster);
  if (it == clusters_.end()) return Which::kUnregistered;
  if (!usable) return Which::kNone;
  const Entry& entry = it->second;
  if (CRYPTO_memcmp(digest.data(), entry.token_sha256.data(), digest.size()) == 0) {
    if (note) on_previous_.erase(cluster);
    return Which::kCurrent;
  }
  if (entry.previous_sha256.size() != digest.size() ||
      CRYPTO_memcmp(digest.data(), entry.previous_sha256.data(), digest.size()) != 0) {
    return Which::kNone;
  }
  *previous_until = entry.previous_until;
  if (now >= entry.previous_until) return Which::kPreviousExpired;
  if (note) on_previous_.insert(cluster);
  return Which::kPreviousInGrace;
}

absl::Status ClusterRegistry::Check(const std::string& cluster, const std::string& token,
                                    absl::Time* old_until) const {
  if (old_until != nullptr) *old_until = absl::InfinitePast();
  absl::Time until;
  switch (Matches(cluster, token, &until, /*note=*/true)) {
    case Which::kUnregistered:
      if (allow_any_agent_) return absl::OkStatus();
      break;
    case Which::kCurrent:
      return absl::OkStatus();
    case Which::kPreviousInGrace:
      if (old_until != nullptr) *old_until = until;
      return absl::OkStatus();
    case Which::kNone:
    case Which::kPreviousExpired:
      break;
  }
  return absl::UnauthenticatedError(
      absl::StrCat("cluster \"", cluster, "\": unknown cluster, or missing or wrong token"));
}

std::string ClusterRegistry::Explain(const std::string& cluster, const std::string& token) const {
  absl::Time until;
  switch (Matches(cluster, token, &until, /*note=*/false)) {
    case Which::kUnregistered:
      return allow_any_agent_ ? "accepted"
                              : "the cluster is not registered (gitfleetctl cluster add)";
    case Which::kCurrent:
    case Which::kPreviousInGrace:
      return "accepted";
    case Which::kPreviousExpired:
      return absl::StrCat("the token cluster rotate-token replaced, which worked until ",
                          FormatUtc(until), " (give the agent the new one)");
    case Which::kNone:
      break;
  }
  return token.empty() ? "no token sent" : "wrong token";
}

bool ClusterRegistry::FirstRefusal(const std::string& cluster) {
  MutexLock lock(&mu_);
  if (refused_.size() >= kMaxRefusalsTracked) refused_.clear();
  return refused_.insert(cluster).second;
}

absl::Status ClusterRegistry::PersistLocked(const std::string& name, const Entry& entry) {
  v1::ClusterRegistration registration;
  registration.set_name(name);
  registration.mutable_labels()->insert(entry.labels.begin(), entry.labels.end());
  registration.set_token_sha256(entry.token_sha256);
  if (!entry.previous_sha256.empty()) {
    registration.set_previous_token_sha256(entry.previous_sha256);
    *registration.mutable_previous_valid_until() = ToProtoTime(entry.previous_until);
  }
  return store_->Apply({Store::Put(kRegistrations, name, registration.SerializeAsString())});
}

absl::StatusOr<ClusterRegistry::Entry> ClusterRegistry::FindLocked(const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = clusters_.find(name);
  if (it == clusters_.end()) {
    return absl::NotFoundError(
        absl::StrCat("cluster \"", name, "\" is not registered (gitfleetctl cluster add)"));
  }
  return it->second;
}

absl::Status ClusterRegistry::SaveLocked(const std::string& name, const Entry& entry) {
  if (absl::Status s = PersistLocked(name, entry); !s.ok()) return s;
  MutexLock lock(&mu_);
  clusters_[name] = entry;
  return absl::OkStatus();
}

void ClusterRegistry::PublishLocked(const std::string& name, const Entry* entry) {
  if (hub_ == nullptr) return;
  if (entry == nullptr) {
    hub_->SetClusterIdentity(name, false, std::nullopt);
    return;
  }
  hub_->SetClusterIdentity(
      name, true, entry->has_labels ? std::optional<LabelMap>(entry->labels) : std::nullopt);
}

absl::StatusOr<std::string> ClusterRegistry::Register(const std::string& name,
                                                      const LabelMap& labels) {
  if (absl::Status s = ValidateClusterName(name); !s.ok()) return s;
  if (absl::Status s = ValidateLabels(labels); !s.ok()) return s;
  absl::StatusOr<std::string> token = NewToken();
  if (!token.ok()) return token.status();
  Entry entry;
  entry.labels = labels;
  entry.has_labels = true;
  entry.token_sha256 = Sha256Bytes(*token);
  entry.from_api = true;
  MutexLock writer(&writer_mu_);
  {
    MutexLock lock(&mu_);
    if (clusters_.count(name) > 0) {
      return absl::AlreadyExistsError(absl::StrCat(
          "cluster \"", name, "\" is registered already; cluster rotate-token issues a new token"));
    }
    if (clusters_.size() >= kMaxClusters) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cluster \"", name, "\": ", clusters_.size(),
                       " clusters are registered, the most one control plane takes; retire one "
                       "(cluster remove) first"));
    }
  }
  if (absl::Status s = SaveLocked(name, entry); !s.ok()) return s;
  PublishLocked(name, &entry);
  GF_LOG(INFO) << "cluster " << name << " registered";
  return token;
}

absl::Status ClusterRegistry::SetLabels(const std::string& name, const LabelMap& labels,
                                        bool allow_removal) {
  if (absl::Status s = ValidateLabels(labels); !s.ok()) return s;
  MutexLock writer(&writer_mu_);
  absl::StatusOr<Entry> entry = FindLocked(name);
  if (!entry.ok()) return entry.status();
  if (!allow_removal && hub_ != nullptr) {
    std::vector<std::string> leaving = hub_->BundlesLeaving(name, labels);
    if (!leaving.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cluster \"", name, "\": these labels no longer match ",
          leaving.size() == 1 ? "bundle " : "bundles ", ListNames(leaving),
          ", which it holds; setting them would remove ", leaving.size() == 1 ? "it" : "them",
          " from the cluster (pruning the objects of each that prunes). Set them with "
          "--allow-removal to do that"));
    }
  }
  if (!entry->from_api && entry->previous_until == absl::InfiniteFuture()) {
    // The API's registration would keep the earlier line's token working for good.
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster \"", name,
        "\" is listed on two --agent-tokens lines while its agent moves to the later one's "
        "token; remove the earlier line first"));
  }
  entry->labels = labels;
  entry->has_labels = true;
  entry->from_api = true;  // overrides a file line from now on, token included
  if (absl::Status s = SaveLocked(name, *entry); !s.ok()) return s;
  PublishLocked(name, &*entry);
  GF_LOG(INFO) << "cluster " << name << " labels set";
  return absl::OkStatus();
}

absl::StatusOr<ClusterRegistry::Rotated> ClusterRegistry::RotateToken(const std::string& name,
                                                                      absl::Duration grace) {
  if (grace < absl::ZeroDuration() || grace > kMaxTokenGrace) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cluster \"", name, "\": a grace of ", absl::FormatDuration(grace),
        " for the old token; it must be between 0 and ", absl::FormatDuration(kMaxTokenGrace)));
  }
  absl::StatusOr<std::string> token = NewToken();
  if (!token.ok()) return token.status();
  Rotated rotated;
  rotated.token = *token;
  // Whether the agent is on a token that stops working now: the current one without a
  // grace, or, with one, the token an earlier rotation's grace still let in.
  bool close;
  {
    MutexLock writer(&writer_mu_);
    absl::StatusOr<Entry> entry = FindLocked(name);
    if (!entry.ok()) return entry.status();
    const absl::Time now = clock_->Now();
    entry->previous_sha256 = entry->token_sha256;
    entry->previous_until = now + grace;
    entry->grace_over = grace == absl::ZeroDuration();
    entry->token_sha256 = Sha256Bytes(*token);
    entry->from_api = true;
    if (absl::Status s = PersistLocked(name, *entry); !s.ok()) return s;
    MutexLock lock(&mu_);
    clusters_[name] = *entry;
    if (grace == absl::ZeroDuration()) {
      close = true;
      on_previous_.erase(name);
    } else {
      // On the replaced token, or on the one before it: that one stops now.
      close = !on_previous_.insert(name).second;
      rotated.old_valid_until = entry->previous_until;
    }
  }
  // A connected agent that stays is on the replaced token from now on; `cluster list`
  // says until when (a no-op for one not connected, or closed below).
  if (!close && hub_ != nullptr) hub_->SetOldToken(name, rotated.old_valid_until);
  if (close && hub_ != nullptr) {
    hub_->CloseCluster(name, absl::UnauthenticatedError(
                                 "this cluster's token was rotated; reconnect with the new one"));
  }
  if (grace > absl::ZeroDuration()) {
    WakeExpiry();
    GF_LOG(INFO) << "cluster " << name << " token rotated; the old one works for "
                 << absl::FormatDuration(grace) << " more";
  } else {
    GF_LOG(INFO) << "cluster " << name << " token rotated";
  }
  return rotated;
}

absl::Status ClusterRegistry::Remove(const std::string& name) {
  MutexLock writer(&writer_mu_);
  {
    MutexLock lock(&mu_);
    auto it = clusters_.find(name);
    if (it == clusters_.end()) {
      return absl::NotFoundError(absl::StrCat("cluster \"", name, "\" is not registered"));
    }
    if (!it->second.from_api) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cluster \"", name,
          "\" comes from --agent-tokens; remove its line there (read again within seconds)"));
    }
  }
  if (applied_file_->count(name) > 0) {
    // Retired here, it would be registered again from its line at the next start.
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster \"", name,
        "\" is also listed in --agent-tokens, which would register it again: remove its line "
        "there (read again within seconds)"));
  }
  if (absl::Status s = store_->Apply({Store::Delete(kRegistrations, name)}); !s.ok()) return s;
  {
    MutexLock lock(&mu_);
    clusters_.erase(name);
  }
  PublishLocked(name, nullptr);
  if (hub_ != nullptr) {
    hub_->CloseCluster(name, absl::UnauthenticatedError("this cluster was removed"));
  }
  GF_LOG(INFO) << "cluster " << name << " removed; what its agent holds stays applied";
  return absl::OkStatus();
}

size_t ClusterRegistry::size() const {
  MutexLock lock(&mu_);
  return clusters_.size();
}

}  // namespace gitfleet
