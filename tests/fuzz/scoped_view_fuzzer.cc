// A text the control plane wrote for the whole fleet, as a team reads it (`ScopedView`):
// a rollout's message, an error, a render's error quoting a repository, all of it any bytes.
// The first byte picks which names the caller sent (asked). Whatever the text, the team's
// view names no cluster outside its scope (b-dev, b.prod_1) and, in the fleet's own texts,
// no bundle outside it (web), unless it asked for it; a name it may see stays; and the
// lookups stay bounded (each word at most once).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "controlplane/api/scoped_view.h"

namespace {

bool NameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// Whether `text` holds `name` as a word of its own (trailing dots aside), as Hide reads
// words.
bool HoldsWord(const std::string& text, const std::string& name) {
  for (size_t at = text.find(name); at != std::string::npos; at = text.find(name, at + 1)) {
    const bool starts = at == 0 || !NameChar(text[at - 1]);
    size_t end = at + name.size();
    while (end < text.size() && text[end] == '.') ++end;
    const bool ends = end >= text.size() || !NameChar(text[end]);
    if (starts && ends) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t pick = data[0];
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const std::map<std::string, gitfleet::LabelMap> kClusters = {
      {"a-dev", {{"team", "a"}}}, {"b-dev", {{"team", "b"}}}, {"b.prod_1", {{"team", "b"}}}};
  auto scope = std::make_shared<gitfleet::Scope>();
  scope->bundles = {"team-a-*"};
  scope->clusters = *gitfleet::LabelSelector::Parse("team=a");
  int lookups = 0;
  gitfleet::ScopedView::Lookups lookups_of;
  lookups_of.cluster_labels =
      [&lookups](const std::string& name) -> std::optional<gitfleet::LabelMap> {
    ++lookups;
    auto it = kClusters.find(name);
    if (it == kClusters.end()) return std::nullopt;
    return it->second;
  };
  lookups_of.bundle_defined = [](const std::string& name) {
    return name == "web" || name == "team-a-app";
  };
  gitfleet::ScopedView view(scope, lookups_of);
  const bool asked_b = pick & 1;
  const bool asked_web = pick & 2;
  if (asked_b) view.Asked("cluster b-dev");
  if (asked_web) view.Asked("web");
  const auto names = (pick & 4) ? gitfleet::ScopedView::Names::kClustersAndBundles
                                : gitfleet::ScopedView::Names::kClusters;
  const std::string shown = view.Hide(text, names);
  if (!asked_b && HoldsWord(shown, "b-dev")) abort();
  if (HoldsWord(shown, "b.prod_1")) abort();
  if (names == gitfleet::ScopedView::Names::kClustersAndBundles && !asked_web &&
      HoldsWord(shown, "web")) {
    abort();
  }
  if (HoldsWord(text, "a-dev") && !HoldsWord(shown, "a-dev")) abort();
  // Each distinct word looked up once: never more lookups than the text has words (and
  // their dot-less forms).
  if (lookups > static_cast<int>(2 * text.size() + 2)) abort();
  // Seen again, the view's answer holds nothing more to hide.
  if (view.Hide(shown, names) != shown) abort();
  return 0;
}
