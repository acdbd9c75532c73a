#ifndef GITFLEET_CLI_OUTPUT_H_
#define GITFLEET_CLI_OUTPUT_H_

// How gitfleetctl shows things: aligned tables, short ids and times, status rows, and any
// response as JSON or YAML (-o json|yaml).
//
//   Table table({"NAME", "COMMIT"});
//   table.Add({"web", Short(commit)});
//   table.Print(std::cout);
//   absl::Status printed = PrintMessage(response, "yaml", std::cout);

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/views.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/gitfleet/v1/admin.pb.h"

namespace gitfleet::cli {

// The first 12 characters of a commit or revision id.
std::string Short(const std::string& id);
// RFC 3339 in UTC; empty for an unset time.
std::string FormatTime(const google::protobuf::Timestamp& ts);
// SYNC_STATE_OUT_OF_SYNC with prefix SYNC_STATE_ -> OutOfSync.
std::string Words(const std::string& enum_name, const std::string& prefix);
// One `status` row, as tables and -o json|yaml show it.
StatusRow ToRow(const v1::BundleStatus& s);

// What a replacement changed, one "--flag: before -> after" line per flag that differs
// ("(none)" for an empty side), in the order `bundle add` / `source add` take them.
std::vector<std::string> BundleChanges(const v1::Bundle& before, const v1::Bundle& after);
std::vector<std::string> SourceChanges(const v1::Source& before, const v1::Source& after);

// Columns padded to their widest cell, three spaces apart.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// `message` as indented JSON (format "json") or block YAML (anything else).
absl::Status PrintMessage(const google::protobuf::Message& message, const std::string& format,
                          std::ostream& out);

// `message` as JSON on one line (for streams of them).
absl::StatusOr<std::string> CompactJson(const google::protobuf::Message& message);

}  // namespace gitfleet::cli

#endif  // GITFLEET_CLI_OUTPUT_H_
