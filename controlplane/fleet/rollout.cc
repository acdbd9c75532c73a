#include "controlplane/fleet/rollout.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/model/cluster_group.h"
#include "common/model/label_selector.h"
#include "common/proto_time.h"

namespace gitfleet {
namespace {

// "N" or "P%" of `total`. Sizes round up (a partition has at least one cluster),
// allowances down (5% of 10 clusters lets none be unavailable).
absl::StatusOr<int> Count(const std::string& flag, const std::string& text, int total,
                          bool round_up) {
  absl::string_view number = text;
  const bool percent = absl::ConsumeSuffix(&number, "%");
  int value = 0;
  if (!absl::SimpleAtoi(number, &value) || value < 0 || (percent && value > 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, "=", text, ": want a count (5) or a percentage of the clusters (25%)"));
  }
  if (!percent) return value;
  return round_up ? (value * total + 99) / 100 : value * total / 100;
}

}  // namespace

absl::Status ValidateMaxPrune(const std::string& max_prune) {
  if (max_prune.empty() || max_prune == "all") return absl::OkStatus();
  absl::string_view number = max_prune;
  const bool percent = absl::ConsumeSuffix(&number, "%");
  int value = 0;
  if (number.empty() || number.size() > 9 ||
      !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(number, &value) || (percent && value > 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-prune=", max_prune.substr(0, 64),
                     ": want a count (20), a percentage of the bundle's objects (25%), or all"));
  }
  return absl::OkStatus();
}

std::string PruneHeld(const std::string& max_prune, size_t dropped, size_t before) {
  if (dropped == 0 || max_prune == "all" || !ValidateMaxPrune(max_prune).ok()) return "";
  absl::string_view number = max_prune;
  const bool percent = max_prune.empty() || absl::ConsumeSuffix(&number, "%");
  int value = 50;
  if (!max_prune.empty()) (void)absl::SimpleAtoi(number, &value);
  const bool over = percent ? dropped * 100 > static_cast<size_t>(value) * before
                            : dropped > static_cast<size_t>(value);
  if (!over || (max_prune.empty() && dropped < kDefaultPruneFloor)) return "";
  return absl::StrCat("held by the prune guard: this render would delete ", dropped, " of the ",
                      before, " objects the fleet runs (more than ",
                      max_prune.empty() ? "half, the default" : max_prune,
                      "); gitfleetctl rollout promote lets it through, or fix the commit "
                      "(--max-prune=all turns the guard off)");
}

std::string StreamPruneHeld(size_t dropped, size_t before, size_t own, size_t bundles,
                            const std::string& sources) {
  if (own == 0 || dropped < kDefaultPruneFloor || dropped * 2 <= before) return "";
  return absl::StrCat("held by the prune guard: this commit would delete ", dropped, " of the ",
                      before, " objects the bundles of ", sources,
                      " run (more than half, the default), across ", bundles, " bundles, ", own,
                      " of them this bundle's; gitfleetctl rollout "
                      "promote lets this bundle's part through, or fix the commit (a bundle "
                      "with its own --max-prune is judged alone; all turns its guard off)");
}

std::string ClusterPruneHeld(const std::string& cluster, size_t alike, size_t dropped,
                             size_t before, size_t own, size_t bundles,
                             const std::string& sources) {
  if (own == 0 || dropped < kDefaultPruneFloor || dropped * 2 <= before) return "";
  return absl::StrCat(
      "held by the prune guard: this commit would delete ", dropped, " of the ", before,
      " objects the bundles of ", sources, " run on cluster ", cluster,
      alike > 0 ? absl::StrCat(" (and ", alike, " more alike)") : "",
      " (more than half, the default), across ", bundles, " bundles, ", own,
      " of them this bundle's; gitfleetctl rollout promote lets this bundle's part through, "
      "or fix the commit (a bundle with its own --max-prune is judged alone; all turns its "
      "guard off)");
}

bool Progressive(const v1::RolloutStrategy& strategy) {
  return !strategy.partitions().empty() || !strategy.partition_size().empty();
}

absl::Status ValidateRolloutStrategy(const v1::RolloutStrategy& strategy) {
  if (strategy.partitions_size() > 100) {
    return absl::InvalidArgumentError("--partition: at most 100 partitions");
  }
  std::set<std::string> seen;
  for (const std::string& selector : strategy.partitions()) {
    if (selector.empty()) return absl::InvalidArgumentError("--partition: empty selector");
    absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(selector);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--partition=", selector, ": ", parsed.status().message()));
    }
    // A partition takes the clusters its selector matches of those left, so a repeat would
    // never hold one: a slip, most likely, for the selector meant.
    if (!seen.insert(std::string(absl::StripAsciiWhitespace(selector))).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--partition=", selector, " is given twice; the second would never hold a cluster"));
    }
  }
  if (!strategy.partition_size().empty()) {
    absl::StatusOr<int> size =
        Count("--partition-size", strategy.partition_size(), 100, /*round_up=*/true);
    if (!size.ok()) return size.status();
    if (*size < 1) return absl::InvalidArgumentError("--partition-size must be at least 1");
  }
  if (!strategy.max_unavailable_partitions().empty()) {
    absl::StatusOr<int> allowed =
        Count("maxUnavailablePartitions", strategy.max_unavailable_partitions(), 100, false);
    if (!allowed.ok()) return allowed.status();
  }
  if (!strategy.max_unavailable().empty()) {
    absl::StatusOr<int> allowed =
        Count("--max-unavailable", strategy.max_unavailable(), 100, /*round_up=*/false);
    if (!allowed.ok()) return allowed.status();
  }
  if (strategy.progress_deadline_seconds() < 0 ||
      strategy.progress_deadline_seconds() > 7 * 24 * 3600) {
    return absl::InvalidArgumentError("--progress-deadline: between 1s and 168h");
  }
  if (strategy.bake_seconds() < 0 || strategy.bake_seconds() > 7 * 24 * 3600) {
    return absl::InvalidArgumentError("--bake-time: between 1s and 168h");
  }
  if (!Progressive(strategy) && (!strategy.max_unavailable().empty() ||
                                 strategy.progress_deadline_seconds() != 0 || strategy.paced())) {
    return absl::InvalidArgumentError(
        "--max-unavailable, --paced and --progress-deadline need partitions (--partition or "
        "--partition-size)");
  }
  return absl::OkStatus();
}

v1::RolloutStrategy FleetRolloutStrategy(const FleetRollout& read, const std::string& file) {
  v1::RolloutStrategy out;
  if (!read.declared) return out;
  out.set_declared_in(file);
  out.set_max_unavailable(read.max_unavailable);
  out.set_max_unavailable_partitions(read.max_unavailable_partitions);
  for (const FleetRollout::Partition& partition : read.partitions) {
    out.add_partitions(partition.selector);
    v1::PartitionOptions* options = out.add_partition_options();
    options->set_name(partition.name);
    options->set_cluster_name(partition.cluster_name);
    options->set_max_unavailable(partition.max_unavailable);
    options->set_cluster_group(partition.group);
    options->set_cluster_group_selector(partition.group_selector);
    options->set_cluster_group_selector_set(partition.has_group_selector);
  }
  if (read.partitions.empty() && !read.auto_partition_size.empty()) {
    out.set_partition_size(read.auto_partition_size);
    out.set_partition_size_from(kFleetAutoPartitionFrom);
  }
  // Fleet gives a partition's clusters the revision no more at a time than its
  // maxUnavailable (or the strategy's) lets be not ready.
  const bool bounded =
      (!read.max_unavailable.empty() && read.max_unavailable != "100%") ||
      std::any_of(read.partitions.begin(), read.partitions.end(),
                  [](const FleetRollout::Partition& p) {
                    return !p.max_unavailable.empty() && p.max_unavailable != "100%";
                  });
  if (bounded) {
    out.set_paced(true);
    // Without partitions or autoPartitionSize (0 turns it off), one partition of every
    // cluster, paced.
    if (!Progressive(out)) out.set_partition_size("100%");
  }
  return out;
}

std::string DescribeRolloutStrategy(const v1::RolloutStrategy& strategy) {
  auto limit = [&](const std::string& own) {
    const std::string& text = own.empty() ? strategy.max_unavailable() : own;
    const bool none = text.empty() || text == "0" || text == "0%";
    return absl::StrCat(
        none ? std::string("none") : text, " may be not ready",
        strategy.paced() && (!text.empty() || strategy.declared_in().empty())
            ? absl::StrCat(", given to ", none ? std::string("1") : text, " at a time")
            : "");
  };
  std::vector<std::string> parts;
  for (int i = 0; i < strategy.partitions_size(); ++i) {
    const v1::PartitionOptions* options =
        i < strategy.partition_options_size() ? &strategy.partition_options(i) : nullptr;
    std::vector<std::string> what;
    if (options != nullptr && !options->cluster_name().empty()) {
      what.push_back(absl::StrCat("cluster ", options->cluster_name()));
    }
    if (!strategy.partitions(i).empty()) what.push_back(strategy.partitions(i));
    if (options != nullptr && !options->cluster_group().empty()) {
      what.push_back(absl::StrCat("cluster group ", options->cluster_group()));
    }
    if (options != nullptr && options->cluster_group_selector_set()) {
      what.push_back(options->cluster_group_selector().empty()
                         ? std::string("any cluster group")
                         : absl::StrCat("cluster groups ", options->cluster_group_selector()));
    }
    if (what.empty()) what.push_back("every cluster left");
    what.push_back(limit(options != nullptr ? options->max_unavailable() : ""));
    parts.push_back(absl::StrCat(
        i + 1,
        options != nullptr && !options->name().empty() ? absl::StrCat(" ", options->name()) : "",
        " (", absl::StrJoin(what, ", "), ")"));
  }
  if (!strategy.partition_size().empty()) {
    parts.push_back(absl::StrCat(
        parts.empty() ? "the clusters" : "then the clusters left", " in partitions of ",
        strategy.partition_size(),
        strategy.partition_size_from() > 0
            ? absl::StrCat(" from ", strategy.partition_size_from(), " clusters on (fewer: one)")
            : "",
        ", ", limit("")));
  } else if (!parts.empty()) {
    parts.push_back(absl::StrCat("then the clusters left (", limit(""), ")"));
  }
  if (strategy.bake_seconds() > 0 && !parts.empty()) {
    parts.push_back(absl::StrCat("each ready for ", absl::FormatDuration(BakeTime(strategy)),
                                 " before the next starts"));
  }
  return absl::StrJoin(parts, ", ");
}

absl::Duration BakeTime(const v1::RolloutStrategy& strategy) {
  return absl::Seconds(std::max<int64_t>(0, strategy.bake_seconds()));
}

absl::Duration ProgressDeadline(const v1::RolloutStrategy& strategy) {
  return strategy.progress_deadline_seconds() > 0
             ? absl::Seconds(strategy.progress_deadline_seconds())
             : kDefaultProgressDeadline;
}

std::vector<Partition> CutPartitions(const v1::RolloutStrategy& strategy,
                                     std::vector<std::pair<std::string, LabelMap>> clusters) {
  std::sort(clusters.begin(), clusters.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Partition> out;
  std::vector<bool> taken(clusters.size(), false);
  for (int p = 0; p < strategy.partitions_size(); ++p) {
    const std::string& text = strategy.partitions(p);
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
    if (!selector.ok()) continue;  // validated when the bundle was added
    Partition partition{text, {}};
    const v1::PartitionOptions* options =
        p < strategy.partition_options_size() ? &strategy.partition_options(p) : nullptr;
    if (options != nullptr) {
      partition.name = options->name();
      partition.max_unavailable = options->max_unavailable();
    }
    // Only a fleet.yaml's partition may have no selector (ReadFleetRollout); one from a
    // flag is never empty (ValidateRolloutStrategy).
    if (text.empty() && options == nullptr) continue;
    const std::string only = options != nullptr ? options->cluster_name() : "";
    const bool by_group = options != nullptr && (!options->cluster_group().empty() ||
                                                 options->cluster_group_selector_set());
    std::optional<LabelSelector> group_selector;
    if (by_group && options->cluster_group_selector_set()) {
      absl::StatusOr<LabelSelector> parsed =
          LabelSelector::Parse(options->cluster_group_selector());
      if (!parsed.ok()) continue;  // validated when read (ReadFleetRollout)
      group_selector = *std::move(parsed);
    }
    // As Fleet matches a partition once per group of the cluster: one of its groups
    // (carried beside its labels: AddGroupEntries) must be both named and matched.
    auto in_group = [&](const LabelMap& labels) {
      for (const ClusterGroupMembership& group : GroupEntries(labels)) {
        if ((options->cluster_group().empty() || group.name == options->cluster_group()) &&
            (!group_selector.has_value() || group_selector->Matches(group.labels))) {
          return true;
        }
      }
      return false;
    };
    for (size_t i = 0; i < clusters.size(); ++i) {
      if (taken[i] || !selector->Matches(clusters[i].second)) continue;
      if (!only.empty() && clusters[i].first != only) continue;
      if (by_group && !in_group(clusters[i].second)) continue;
      taken[i] = true;
      partition.clusters.push_back(clusters[i].first);
    }
    if (!partition.clusters.empty()) out.push_back(std::move(partition));
  }
  std::vector<std::string> rest;
  for (size_t i = 0; i < clusters.size(); ++i) {
    if (!taken[i]) rest.push_back(std::move(clusters[i].first));
  }
  if (rest.empty()) return out;
  size_t size = rest.size();
  if (!strategy.partition_size().empty() &&
      rest.size() >= static_cast<size_t>(std::max(0, strategy.partition_size_from()))) {
    absl::StatusOr<int> count = Count("--partition-size", strategy.partition_size(),
                                      static_cast<int>(rest.size()), /*round_up=*/true);
    if (count.ok() && *count >= 1) size = static_cast<size_t>(*count);
  }
  for (size_t begin = 0; begin < rest.size(); begin += size) {
    size_t end = std::min(rest.size(), begin + size);
    out.push_back({"", std::vector<std::string>(rest.begin() + begin, rest.begin() + end)});
  }
  return out;
}

std::vector<Partition> AdjustPartitions(const std::vector<Partition>& cut, int current,
                                        std::vector<std::pair<std::string, LabelMap>> clusters) {
  absl::flat_hash_set<std::string> targeted;
  targeted.reserve(clusters.size());
  for (const auto& cluster : clusters) targeted.insert(cluster.first);
  std::vector<Partition> out;
  out.reserve(cut.size() + 1);
  absl::flat_hash_set<std::string> placed;
  placed.reserve(clusters.size());
  for (const Partition& partition : cut) {
    Partition kept{partition.selector, {}, partition.name, partition.max_unavailable};
    for (const std::string& name : partition.clusters) {
      if (targeted.contains(name) && placed.insert(name).second) kept.clusters.push_back(name);
    }
    out.push_back(std::move(kept));
  }
  std::vector<std::string> joined;
  for (auto& cluster : clusters) {
    if (!placed.contains(cluster.first)) joined.push_back(std::move(cluster.first));
  }
  if (joined.empty()) return out;
  std::sort(joined.begin(), joined.end());
  // The last partition, unless it started (and is not done): then a new one after it.
  if (out.empty() || current == static_cast<int>(out.size()) - 1) out.push_back({"", {}});
  std::vector<std::string>& last = out.back().clusters;
  last.insert(last.end(), std::make_move_iterator(joined.begin()),
              std::make_move_iterator(joined.end()));
  return out;
}

namespace {
// Fleet's limit: a count as it is, a percentage of `size` rounded down; at least 1 here
// (Fleet's count of 0 would give nothing to any cluster).
int FleetLimit(const std::string& text, int size) {
  absl::StatusOr<int> limit = Count("maxUnavailable", text, size, /*round_up=*/false);
  return std::max(1, limit.ok() ? *limit : 1);
}
}  // namespace

int PaceOf(const v1::RolloutStrategy& strategy, const Partition& partition, int size) {
  if (!strategy.paced()) return 0;
  const std::string& text =
      partition.max_unavailable.empty() ? strategy.max_unavailable() : partition.max_unavailable;
  // Unset: Fleet's 100% (no pacing); the bundle's own --paced, gitfleet's 0 (one at a time).
  if (text.empty()) return strategy.declared_in().empty() ? 1 : 0;
  return FleetLimit(text, size);
}

int FleetPaceOf(const v1::RolloutStrategy& strategy, int total) {
  if (!strategy.paced() || strategy.declared_in().empty() || strategy.max_unavailable().empty()) {
    return 0;
  }
  return FleetLimit(strategy.max_unavailable(), total);
}

int AllowedUnavailablePartitions(const v1::RolloutStrategy& strategy, int partitions) {
  const std::string& text = strategy.max_unavailable_partitions();
  if (text.empty() || partitions == 0) return 0;
  absl::StatusOr<int> allowed =
      Count("maxUnavailablePartitions", text, partitions, /*round_up=*/false);
  if (!allowed.ok()) return 0;
  // As Fleet reads a percentage: at least one partition when it is above 0%.
  if (*allowed == 0 && absl::EndsWith(text, "%") && text != "0%") return 1;
  return *allowed;
}

int AllowedUnavailable(const v1::RolloutStrategy& strategy, const Partition& partition, int size) {
  const std::string& text =
      partition.max_unavailable.empty() ? strategy.max_unavailable() : partition.max_unavailable;
  if (text.empty()) return 0;
  absl::StatusOr<int> allowed = Count("--max-unavailable", text, size, /*round_up=*/false);
  return allowed.ok() ? *allowed : 0;
}

RolloutStep AdvanceRollout(v1::RolloutRecord& record, const std::vector<Partition>& partitions,
                           const v1::RolloutStrategy& strategy, absl::Time now,
                           const std::function<PartitionProgress(const Partition&)>& progress) {
  RolloutStep step;
  const absl::Duration deadline = ProgressDeadline(strategy);
  const absl::Duration bake = BakeTime(strategy);
  // Bounded: one pass per partition at most.
  while (record.partition() < static_cast<int>(partitions.size())) {
    const int index = record.partition();
    const Partition& partition = partitions[index];
    const std::string where =
        absl::StrCat("partition ", index + 1, "/", partitions.size(),
                     partition.name.empty() ? "" : absl::StrCat(" (", partition.name, ")"));
    const int size = static_cast<int>(partition.clusters.size());
    const int pace = PaceOf(strategy, partition, size);
    // Paused, no report moves it: only an operator or a new render does.
    if (record.paused_by_operator()) {
      // As an unpaced partition gets the render, a paced one's first clusters do.
      if (pace > 0 && record.admitted() == 0 && size > 0) {
        record.set_admitted(std::min(size, pace));
        *record.mutable_admitted_time() = ToProtoTime(now);
        step.changed = true;
      }
      step.message = absl::StrCat(where, ": paused by an operator (gitfleetctl rollout resume)");
      step.reports_needed = std::numeric_limits<int>::max();
      return step;
    }
    if (record.halted()) {
      step.message = absl::StrCat(where, ": paused: ", record.reason());
      step.reports_needed = std::numeric_limits<int>::max();
      return step;
    }
    // Paced (below): the clusters given it so far (in turn or out of turn) and those
    // waiting their turn, counted apart in one pass.
    PartitionProgress head_progress;  // of the clusters given it so far (paced)
    PartitionProgress tail_progress;  // of those waiting their turn (paced)
    PartitionProgress counted;
    const int admitted_before = std::min(record.admitted(), size);
    absl::flat_hash_set<std::string> out_of_turn;
    if (pace > 0 && admitted_before < size) {
      out_of_turn.insert(record.out_of_turn().begin(), record.out_of_turn().end());
      Partition head, tail;
      head.clusters.reserve(admitted_before + out_of_turn.size());
      head.clusters.assign(partition.clusters.begin(),
                           partition.clusters.begin() + admitted_before);
      tail.clusters.reserve(size - admitted_before);
      for (int i = admitted_before; i < size; ++i) {
        const std::string& cluster = partition.clusters[i];
        (out_of_turn.count(cluster) > 0 ? head : tail).clusters.push_back(cluster);
      }
      if (!head.clusters.empty()) head_progress = progress(head);
      tail_progress = progress(tail);
      counted = tail_progress;
      counted.down.clear();
      counted.total += head_progress.total;
      counted.not_ready += head_progress.not_ready;
      counted.failed += head_progress.failed;
      if (head_progress.first_failed.has_value()) counted.first_failed = head_progress.first_failed;
      if (head_progress.first_waiting.has_value()) {
        counted.first_waiting = head_progress.first_waiting;
      }
    } else {
      counted = progress(partition);
      if (pace > 0) head_progress = counted;  // all of it given
    }
    const int not_ready = counted.not_ready, failed = counted.failed;
    const v1::RolloutCluster* first_failed =
        counted.first_failed.has_value() ? &*counted.first_failed : nullptr;
    const v1::RolloutCluster* first_waiting =
        counted.first_waiting.has_value() ? &*counted.first_waiting : nullptr;
    const int allowed = AllowedUnavailable(strategy, partition, counted.total);
    const bool ready = not_ready <= allowed;
    bool pass = record.promoted() || ready;
    if (!pass && failed <= allowed && (pace == 0 || admitted_before >= size)) {
      // Fleet's maxUnavailablePartitions: gone past while, with this one, at most that many
      // partitions reached so far are not ready (one that failed pauses, as ever; a paced
      // one only once every cluster of it was given the revision).
      const int partitions_allowed =
          AllowedUnavailablePartitions(strategy, static_cast<int>(partitions.size()));
      int not_ready_partitions = 1;
      for (int i = 0; i < index && not_ready_partitions <= partitions_allowed; ++i) {
        const PartitionProgress before = progress(partitions[i]);
        if (before.not_ready > AllowedUnavailable(strategy, partitions[i], before.total)) {
          ++not_ready_partitions;
        }
      }
      pass = partitions_allowed > 0 && not_ready_partitions <= partitions_allowed;
    }
    // A bake: a partition ready (by its gate, not an operator's promote) holds the next
    // back until it stayed ready that long.
    if (pass && ready && !record.promoted() && bake > absl::ZeroDuration() &&
        index + 1 < static_cast<int>(partitions.size())) {
      if (!record.has_ready_since()) {
        *record.mutable_ready_since() = ToProtoTime(now);
        step.changed = true;
      }
      const absl::Time until = FromProtoTime(record.ready_since()) + bake;
      if (now < until) {
        // The end, not the time left: the message stays the same from one look to the next
        // (a watch prints a line when it changes).
        step.message = absl::StrCat(
            where, ": ready (", counted.total - not_ready, " of ", counted.total,
            " clusters); baking ", absl::FormatDuration(bake), " before partition ", index + 2,
            ", until ", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", until, absl::UTCTimeZone()),
            " (a cluster not ready meanwhile starts it again; rollout promote skips it)");
        step.recheck = until;
        step.reports_needed = 1;  // any report may end the bake
        return step;
      }
    }
    if (pass) {
      record.set_partition(index + 1);
      *record.mutable_partition_started() = ToProtoTime(now);
      record.set_promoted(false);
      record.set_admitted(0);
      record.clear_admitted_time();
      record.clear_out_of_turn();
      record.clear_ready_since();
      step.changed = true;
      continue;
    }
    std::string bake_broken;
    if (record.has_ready_since()) {
      // Ready, then not during the bake: it starts again once the partition is ready
      // again, which has the progress deadline again from now.
      bake_broken = absl::StrCat(
          "the bake started again (ready since ",
          absl::FormatTime("%H:%M:%SZ", FromProtoTime(record.ready_since()), absl::UTCTimeZone()),
          ", not now); ");
      record.clear_ready_since();
      *record.mutable_partition_started() = ToProtoTime(now);
      step.changed = true;
    }
    // Counts and examples may come from reports a moment apart: an example may be missing.
    if (failed > allowed) {
      record.set_halted(true);
      record.set_reason(
          first_failed != nullptr
              ? absl::StrCat("cluster ", first_failed->name(),
                             " failed to apply the revision: ", first_failed->detail())
              : absl::StrCat(failed, " clusters failed to apply the revision"));
      step.changed = true;
      step.message = absl::StrCat(where, ": paused: ", record.reason());
      step.reports_needed = std::numeric_limits<int>::max();
      return step;
    }
    absl::Time started = FromProtoTime(record.partition_started());
    // Paced, as Fleet paces: the clusters given it so far that are not ready yet hold back
    // the next ones (and, with the strategy's bound, those of the partitions before).
    std::string given_message;
    if (pace > 0) {
      int admitted = admitted_before;
      // As Fleet does, a cluster not ready on the older revision it runs gets this one at
      // once, out of turn: it is down anyway, and this one may be its fix. Like one given it
      // in turn, it counts as not ready until it is ready on this one, so while it is down
      // no other is taken down for its turn.
      int given_now = 0;
      for (const std::string& cluster : tail_progress.down) {
        if (!out_of_turn.insert(cluster).second) continue;
        record.add_out_of_turn(cluster);
        ++given_now;
      }
      // A cluster suspended for maintenance gets nothing new: it neither holds a place nor
      // waits for one (its turn passes; it gets the render once resumed).
      const absl::flat_hash_set<std::string> suspended(tail_progress.suspended.begin(),
                                                       tail_progress.suspended.end());
      const int in_flight =
          head_progress.not_ready - static_cast<int>(head_progress.suspended.size()) + given_now;
      int room = pace - in_flight;
      int total = 0;
      for (const Partition& p : partitions) total += static_cast<int>(p.clusters.size());
      if (const int fleet_pace = FleetPaceOf(strategy, total); fleet_pace > 0) {
        int fleet_in_flight = in_flight;
        for (int i = 0; i < index && fleet_in_flight < fleet_pace; ++i) {
          fleet_in_flight += progress(partitions[i]).not_ready;
        }
        room = std::min(room, fleet_pace - fleet_in_flight);
      }
      // In the cut's order, passing over those given it out of turn and those suspended.
      auto takes_place = [&](const std::string& cluster) {
        return out_of_turn.count(cluster) == 0 && suspended.count(cluster) == 0;
      };
      while (room > 0 && admitted < size) {
        if (takes_place(partition.clusters[admitted])) --room;
        ++admitted;
      }
      while (admitted < size && !takes_place(partition.clusters[admitted])) ++admitted;
      if (admitted != admitted_before) {
        record.set_admitted(admitted);
        // Those out of turn the frontier has passed are counted by it.
        if (record.out_of_turn_size() > 0) {
          const absl::flat_hash_set<std::string> passed(
              partition.clusters.begin() + admitted_before, partition.clusters.begin() + admitted);
          auto* kept = record.mutable_out_of_turn();
          kept->erase(std::remove_if(kept->begin(), kept->end(),
                                     [&](const std::string& c) { return passed.count(c) > 0; }),
                      kept->end());
        }
      }
      if (admitted != admitted_before || given_now > 0) {
        *record.mutable_admitted_time() = ToProtoTime(now);
        step.changed = true;
      }
      // The deadline counts from the last cluster given it: a paced partition takes longer.
      if (record.has_admitted_time()) {
        started = std::max(started, FromProtoTime(record.admitted_time()));
      }
      const int given = admitted + record.out_of_turn_size();
      given_message =
          absl::StrCat("; given to ", given, " of ", size, " so far",
                       record.out_of_turn_size() > 0
                           ? absl::StrCat(" (", record.out_of_turn_size(),
                                          " out of turn: not ready on the older revision ",
                                          record.out_of_turn_size() == 1 ? "it" : "they", " ran)")
                           : "",
                       ", at most ", pace, " not ready at a time");
    }
    const v1::RolloutCluster* example = first_waiting != nullptr ? first_waiting : first_failed;
    v1::RolloutCluster given_now;  // the first given it out of turn by this evaluation
    if (!head_progress.first_waiting.has_value() && !head_progress.first_failed.has_value() &&
        !tail_progress.down.empty() && pace > 0) {
      given_now.set_name(tail_progress.down.front());
      given_now.set_detail("given it out of turn: not ready on the older revision it ran");
      example = &given_now;
    } else if (head_progress.first_waiting.has_value()) {
      example = &*head_progress.first_waiting;  // one given it, not one waiting its turn
    } else if (head_progress.first_failed.has_value()) {
      example = &*head_progress.first_failed;
    }
    const std::string waiting =
        absl::StrCat(counted.total - not_ready, " of ", counted.total, " clusters ready",
                     allowed > 0 ? absl::StrCat(" (", allowed, " may be unavailable)") : "",
                     given_message, "; waiting for ",
                     example != nullptr ? absl::StrCat(example->name(), ": ", example->detail())
                                        : absl::StrCat(not_ready, " clusters' reports"));
    if (now - started >= deadline) {
      record.set_halted(true);
      record.set_reason(absl::StrCat("not ready within the progress deadline (",
                                     absl::FormatDuration(deadline), "): ", waiting));
      step.changed = true;
      step.message = absl::StrCat(where, ": paused: ", record.reason());
      step.reports_needed = std::numeric_limits<int>::max();
      return step;
    }
    step.message = absl::StrCat(where, ": ", bake_broken, waiting);
    step.recheck = started + deadline;
    // Paced: any report may make room for the next cluster; with partitions allowed to be
    // not ready, any report of an earlier partition may let this one be gone past.
    step.reports_needed = pace > 0 || !strategy.max_unavailable_partitions().empty()
                              ? 1
                              : std::max(1, not_ready - allowed);
    return step;
  }
  return step;
}

bool HaltOnRegressions(v1::RolloutRecord& record, const std::vector<Partition>& partitions,
                       const v1::RolloutStrategy& strategy,
                       const std::vector<std::string>& regressed,
                       const std::function<std::string(const std::string&)>& describe) {
  if (regressed.empty() || record.halted()) return false;
  const absl::flat_hash_set<std::string> broken(regressed.begin(), regressed.end());
  const int passed = std::min(record.partition(), static_cast<int>(partitions.size()));
  for (int i = 0; i < passed; ++i) {
    const Partition& partition = partitions[i];
    int count = 0;
    const std::string* first = nullptr;
    for (const std::string& cluster : partition.clusters) {
      if (broken.count(cluster) == 0) continue;
      if (count++ == 0) first = &cluster;
    }
    const int allowed =
        AllowedUnavailable(strategy, partition, static_cast<int>(partition.clusters.size()));
    if (count <= allowed) continue;
    record.set_halted(true);
    record.set_reason(absl::StrCat(
        "cluster ", *first, " of partition ", i + 1, "/", partitions.size(),
        ", which this revision had passed, broke on it: ", describe(*first),
        count > 1 ? absl::StrCat(" (", count, " clusters there)") : "",
        "; clusters not yet reached keep what they run (rollout resume or promote goes on)"));
    return true;
  }
  return false;
}

PartitionIndex IndexPartitions(const std::vector<Partition>& partitions) {
  PartitionIndex index;
  for (size_t i = 0; i < partitions.size(); ++i) {
    for (const std::string& cluster : partitions[i].clusters) {
      index.emplace(cluster, static_cast<int>(i));
    }
  }
  return index;
}

namespace {

// Partitions 0..upto of one cut, of the last the first `admitted` (all unless paced). Asking
// about a cluster is one hash lookup (two for the last partition's, when paced), and
// widening costs what is added: the indexes are shared by every gate of the cut.
class PartitionGate : public ClusterGate {
 public:
  using Index = PartitionIndex;
  // Each cluster -> its place in its partition: built once per cut, when paced.
  using Positions = absl::flat_hash_map<std::string, int>;
  // Of the last partition's clusters past `admitted`, those given it out of turn
  // (RolloutRecord.out_of_turn), when paced.
  using OutOfTurn = absl::flat_hash_set<std::string>;
  PartitionGate(std::shared_ptr<const std::vector<Partition>> partitions,
                std::shared_ptr<const Index> index, std::shared_ptr<const Positions> positions,
                int upto, int admitted, OutOfTurn out_of_turn)
      : partitions_(std::move(partitions)),
        index_(std::move(index)),
        positions_(std::move(positions)),
        upto_(upto),
        admitted_(Frontier(*partitions_, upto, positions_ != nullptr ? admitted : -1)),
        out_of_turn_(positions_ != nullptr ? std::move(out_of_turn) : OutOfTurn()) {}

  bool Allows(const std::string& cluster) const override {
    auto it = index_->find(cluster);
    if (it == index_->end() || it->second > upto_) return false;
    if (it->second < upto_ || admitted_ == Whole(upto_)) return true;
    auto place = positions_->find(cluster);
    return (place != positions_->end() && place->second < admitted_) ||
           (!out_of_turn_.empty() && out_of_turn_.count(cluster) > 0);
  }
  bool AddedTo(const ClusterGate* previous, std::vector<std::string>* added) const override {
    auto* before = dynamic_cast<const PartitionGate*>(previous);
    if (before == nullptr || before->index_ != index_ || before->upto_ > upto_ ||
        (before->upto_ == upto_ && before->admitted_ > admitted_)) {
      return false;
    }
    // Out of turn only grows within a partition, until the frontier passes it.
    if (before->upto_ == upto_) {
      for (const std::string& cluster : before->out_of_turn_) {
        if (!Allows(cluster)) return false;
      }
    }
    added->clear();
    for (int i = before->upto_; i <= upto_; ++i) {
      const std::vector<std::string>& clusters = (*partitions_)[i].clusters;
      const int from = i == before->upto_ ? before->admitted_ : 0;
      const int to = i == upto_ ? admitted_ : static_cast<int>(clusters.size());
      for (int j = from; j < to; ++j) {
        if (i == before->upto_ && before->out_of_turn_.count(clusters[j]) > 0) continue;
        added->push_back(clusters[j]);
      }
    }
    for (const std::string& cluster : out_of_turn_) {
      auto place = positions_->find(cluster);
      const bool in_frontier = place != positions_->end() && place->second < admitted_;
      if (!in_frontier && before->out_of_turn_.count(cluster) == 0) added->push_back(cluster);
    }
    return true;
  }
  bool SameAs(const ClusterGate& other) const override {
    auto* gate = dynamic_cast<const PartitionGate*>(&other);
    return gate != nullptr && gate->index_ == index_ && gate->upto_ == upto_ &&
           gate->admitted_ == admitted_ && gate->out_of_turn_ == out_of_turn_;
  }
  // Shared with the next gate when it covers the same cut.
  std::shared_ptr<const Index> IndexFor(
      const std::shared_ptr<const std::vector<Partition>>& partitions) const {
    return partitions == partitions_ ? index_ : nullptr;
  }
  std::shared_ptr<const Positions> PositionsFor(
      const std::shared_ptr<const std::vector<Partition>>& partitions) const {
    return partitions == partitions_ ? positions_ : nullptr;
  }

 private:
  int Whole(int partition) const {
    return static_cast<int>((*partitions_)[partition].clusters.size());
  }
  // How many of partition `upto`'s clusters are let through: `admitted` (paced), or all
  // for -1.
  static int Frontier(const std::vector<Partition>& partitions, int upto, int admitted) {
    const int size = static_cast<int>(partitions[upto].clusters.size());
    return admitted < 0 ? size : std::min(admitted, size);
  }

  const std::shared_ptr<const std::vector<Partition>> partitions_;
  const std::shared_ptr<const Index> index_;
  const std::shared_ptr<const Positions> positions_;  // null unless the last is paced
  const int upto_;
  const int admitted_;
  const OutOfTurn out_of_turn_;
};

}  // namespace

std::shared_ptr<const ClusterGate> GateOf(const v1::RolloutRecord& record,
                                          std::shared_ptr<const std::vector<Partition>> partitions,
                                          const ClusterGate* previous, bool paced) {
  if (partitions == nullptr || record.partition() >= static_cast<int>(partitions->size())) {
    return nullptr;
  }
  std::shared_ptr<const PartitionGate::Index> index;
  std::shared_ptr<const PartitionGate::Positions> positions;
  if (auto* before = dynamic_cast<const PartitionGate*>(previous)) {
    index = before->IndexFor(partitions);
    positions = before->PositionsFor(partitions);
  }
  if (index == nullptr) {
    index = std::make_shared<const PartitionIndex>(IndexPartitions(*partitions));
  }
  if (!paced) {
    positions = nullptr;
  } else if (positions == nullptr) {
    PartitionGate::Positions places;
    for (const Partition& partition : *partitions) {
      for (size_t i = 0; i < partition.clusters.size(); ++i) {
        places.emplace(partition.clusters[i], static_cast<int>(i));
      }
    }
    positions = std::make_shared<const PartitionGate::Positions>(std::move(places));
  }
  return std::make_shared<const PartitionGate>(
      std::move(partitions), std::move(index), std::move(positions), record.partition(),
      record.admitted(),
      PartitionGate::OutOfTurn(record.out_of_turn().begin(), record.out_of_turn().end()));
}

}  // namespace gitfleet
