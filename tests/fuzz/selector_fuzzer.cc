// Label selectors and label lists: from the API and agents' flags.
#include <cstdint>
#include <string>

#include "common/model/label_selector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<gitfleet::LabelSelector> selector = gitfleet::LabelSelector::Parse(text);
  absl::StatusOr<gitfleet::LabelMap> labels = gitfleet::ParseLabels(text);
  if (selector.ok()) {
    (void)selector->Matches({{"env", "prod"}, {"tier", "web"}});
    if (labels.ok()) (void)selector->Matches(*labels);
  }
  if (labels.ok()) (void)gitfleet::ValidateLabels(*labels);
  return 0;
}
