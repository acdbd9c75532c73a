#include "cli/output.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/manifest/object.h"
#include "common/manifest/yaml.h"
#include "common/proto_time.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet::cli {

std::string Short(const std::string& id) { return id.substr(0, 12); }

std::string FormatTime(const google::protobuf::Timestamp& ts) {
  absl::Time t = FromProtoTime(ts);
  if (t == absl::InfinitePast()) return "";
  return FormatUtc(t);
}

std::string Words(const std::string& enum_name, const std::string& prefix) {
  // SYNC_STATE_OUT_OF_SYNC -> OutOfSync
  std::string name = enum_name.substr(std::min(prefix.size(), enum_name.size()));
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out.push_back(upper ? c : static_cast<char>(std::tolower(c)));
    upper = false;
  }
  return out;
}

StatusRow ToRow(const v1::BundleStatus& s) {
  StatusRow row;
  row.set_cluster(s.cluster());
  row.set_bundle(s.bundle());
  row.set_sync_state(Words(v1::SyncState_Name(s.sync_state()), "SYNC_STATE_"));
  row.set_health(Words(v1::HealthState_Name(s.health()), "HEALTH_STATE_"));
  row.set_desired_commit(s.desired_commit());
  row.set_applied_commit(s.applied_commit());
  row.set_revision(s.desired_revision());
  row.set_applied_revision(s.applied_revision());
  row.set_message(s.message());
  for (const v1::ResourceHealth& r : s.unhealthy_resources()) {
    row.add_unhealthy_resources(absl::StrCat(
        r.key().kind(), " ", r.key().namespace_().empty() ? "" : r.key().namespace_() + "/",
        r.key().name(), ": ", Words(v1::HealthState_Name(r.health()), "HEALTH_STATE_"),
        r.message().empty() ? "" : " (" + r.message() + ")"));
  }
  row.set_committed_time(FormatTime(s.committed_time()));
  row.set_seen_time(FormatTime(s.seen_time()));
  row.set_applied_time(FormatTime(s.applied_time()));
  row.set_orphaned(s.orphaned());
  row.set_held_back(s.held_back());
  row.set_source_error(s.source_error());
  row.set_left_unmanaged_count(s.left_unmanaged_count());
  for (const v1::ObjectKey& key : s.left_unmanaged()) row.add_left_unmanaged(KeyDisplay(key));
  if (s.orphaned()) row.set_sync_state("Orphaned");
  if (s.not_deployed()) row.set_sync_state("NotDeployed");
  return row;
}

namespace {

std::string Or(std::string text, const char* none = "(none)") { return text.empty() ? none : text; }

std::string JoinMap(const google::protobuf::Map<std::string, std::string>& map) {
  std::map<std::string, std::string> sorted(map.begin(), map.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

std::string Seconds(int64_t seconds, const char* none) {
  return seconds == 0 ? none : absl::FormatDuration(absl::Seconds(seconds));
}

void Compare(const char* flag, const std::string& before, const std::string& after,
             std::vector<std::string>* out) {
  if (before != after) out->push_back(absl::StrCat(flag, ": ", before, " -> ", after));
}

}  // namespace

std::vector<std::string> BundleChanges(const v1::Bundle& before, const v1::Bundle& after) {
  auto values = [](const v1::Bundle& b) { return Or(JoinMap(b.values())); };
  auto cluster_values = [](const v1::Bundle& b) {
    std::vector<std::string> rules;
    for (const v1::ClusterValues& rule : b.cluster_values()) {
      rules.push_back(absl::StrCat("'", rule.selector(), ";", JoinMap(rule.values()), "'"));
    }
    return Or(absl::StrJoin(rules, " "));
  };
  auto list = [](const google::protobuf::RepeatedPtrField<std::string>& items) {
    return Or(absl::StrJoin(items, ","));
  };
  auto flag = [](bool on) { return on ? std::string("true") : std::string("false"); };
  std::vector<std::string> out;
  Compare("--source", before.source(), after.source(), &out);
  Compare("--path", Or(before.path(), "(root)"), Or(after.path(), "(root)"), &out);
  Compare("--selector", Or(before.selector(), "(every cluster)"),
          Or(after.selector(), "(every cluster)"), &out);
  Compare("--namespace", Or(before.target_namespace()), Or(after.target_namespace()), &out);
  Compare("--engine", Or(before.engine(), "(detected)"), Or(after.engine(), "(detected)"), &out);
  Compare("--prune", flag(before.sync().prune()), flag(after.sync().prune()), &out);
  Compare("--self-heal", flag(before.sync().self_heal()), flag(after.sync().self_heal()), &out);
  Compare("--create-namespace", flag(before.sync().create_namespace()),
          flag(after.sync().create_namespace()), &out);
  Compare("--prune-last", flag(before.sync().prune_last()), flag(after.sync().prune_last()), &out);
  Compare("--service-account", Or(before.sync().service_account(), "(the agent)"),
          Or(after.sync().service_account(), "(the agent)"), &out);
  auto ignored = [](const v1::Bundle& b) {
    std::vector<std::string> rules;
    for (const v1::IgnoreDifference& rule : b.sync().ignore_differences()) {
      rules.push_back(DescribeIgnoreDifference(rule));
    }
    return Or(absl::StrJoin(rules, " "));
  };
  Compare("--ignore-difference", ignored(before), ignored(after), &out);
  Compare("--allow-empty", flag(before.allow_empty()), flag(after.allow_empty()), &out);
  Compare("--substitute", flag(before.substitute()), flag(after.substitute()), &out);
  Compare("--values", values(before), values(after), &out);
  Compare("--cluster-values", cluster_values(before), cluster_values(after), &out);
  Compare("--tla", list(before.jsonnet_tlas()), list(after.jsonnet_tlas()), &out);
  Compare("--values-file", list(before.helm_values_files()), list(after.helm_values_files()), &out);
  Compare("--partition", list(before.rollout().partitions()), list(after.rollout().partitions()),
          &out);
  Compare("--partition-size", Or(before.rollout().partition_size()),
          Or(after.rollout().partition_size()), &out);
  Compare("--max-unavailable", Or(before.rollout().max_unavailable(), "0"),
          Or(after.rollout().max_unavailable(), "0"), &out);
  Compare("--paced", before.rollout().paced() ? "true" : "false",
          after.rollout().paced() ? "true" : "false", &out);
  Compare("--progress-deadline", Seconds(before.rollout().progress_deadline_seconds(), "10m"),
          Seconds(after.rollout().progress_deadline_seconds(), "10m"), &out);
  Compare("--bake-time", Seconds(before.rollout().bake_seconds(), "(none)"),
          Seconds(after.rollout().bake_seconds(), "(none)"), &out);
  Compare("--depends-on", list(before.depends_on()), list(after.depends_on()), &out);
  Compare("--max-prune", Or(before.max_prune(), "(over half)"),
          Or(after.max_prune(), "(over half)"), &out);
  Compare("--include", list(before.include()), list(after.include()), &out);
  Compare("--exclude", list(before.exclude()), list(after.exclude()), &out);
  Compare("--decrypt", Or(before.decrypt()), Or(after.decrypt()), &out);
  Compare("--kube-version", Or(before.helm_kube_version(), "(helm's)"),
          Or(after.helm_kube_version(), "(helm's)"), &out);
  Compare("--api-versions", list(before.helm_api_versions()), list(after.helm_api_versions()),
          &out);
  Compare("--release", Or(before.helm_release(), "(the default)"),
          Or(after.helm_release(), "(the default)"), &out);
  Compare("--argocd-app", Or(before.argocd_app(), "(the bundle's name)"),
          Or(after.argocd_app(), "(the bundle's name)"), &out);
  return out;
}

std::vector<std::string> SourceChanges(const v1::Source& before, const v1::Source& after) {
  std::vector<std::string> out;
  Compare("--url", before.url(), after.url(), &out);
  Compare("--ref", Or(before.ref(), "(default branch)"), Or(after.ref(), "(default branch)"), &out);
  Compare("--interval", Seconds(before.poll_interval_seconds(), "(default)"),
          Seconds(after.poll_interval_seconds(), "(default)"), &out);
  Compare("--credentials", Or(before.credentials_ref()), Or(after.credentials_ref()), &out);
  Compare("--submodules", before.submodules() ? "true" : "false",
          after.submodules() ? "true" : "false", &out);
  Compare("--lfs", before.lfs() ? "true" : "false", after.lfs() ? "true" : "false", &out);
  Compare("--verify-commits", before.verify_commits(), after.verify_commits(), &out);
  Compare("--fleet-gitrepo", Or(before.fleet_gitrepo(), "(the source's name)"),
          Or(after.fleet_gitrepo(), "(the source's name)"), &out);
  return out;
}

void Table::Print(std::ostream& out) const {
  // A column is as wide as its cells up to kMaxPadded: a longer one (a paused rollout's
  // reason, say) runs on into its row, and every other row stays as narrow as it was.
  constexpr size_t kMaxPadded = 60;
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      if (row[i].size() <= kMaxPadded) widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(row[i].size() < widths[i] ? widths[i] - row[i].size() + 3 : 3, ' ');
      }
    }
    out << line << "\n";
  }
}

absl::Status PrintMessage(const google::protobuf::Message& message, const std::string& format,
                          std::ostream& out) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = format == "json";
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    return absl::InternalError("cannot format the response as JSON");
  }
  if (format == "json") {
    out << json;
    if (json.empty() || json.back() != '\n') out << "\n";
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> yaml = EmitBlockYaml(YAML::Load(json));
  out << (yaml.ok() ? *yaml : json + "\n");
  return absl::OkStatus();
}

absl::StatusOr<std::string> CompactJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    return absl::InternalError("cannot format the response as JSON");
  }
  return json;
}

}  // namespace gitfleet::cli
