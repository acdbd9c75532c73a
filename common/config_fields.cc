#include "common/config_fields.h"

#include <utility>

namespace gitfleet {

absl::StatusOr<std::vector<std::string>> ConfigFields(absl::string_view line) {
  std::vector<std::string> fields;
  std::string field;
  bool in_field = false;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      in_field = true;
    } else if (!quoted && (c == ' ' || c == '\t')) {
      if (in_field) fields.push_back(std::move(field));
      field.clear();
      in_field = false;
    } else {
      field.push_back(c);
      in_field = true;
    }
  }
  if (quoted) return absl::InvalidArgumentError("a double quote is not closed");
  if (in_field) fields.push_back(std::move(field));
  return fields;
}

}  // namespace gitfleet
