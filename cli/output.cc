#include "cli/output.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
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
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
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
  return row;
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
