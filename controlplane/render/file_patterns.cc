#include "controlplane/render/file_patterns.h"

#include <fnmatch.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxPatternBytes = 256;
constexpr size_t kMaxIgnoreFileBytes = 64 << 10;
constexpr size_t kMaxIgnoreRules = 1000;

// One name against one part of a pattern (no '/' in either).
bool NameMatches(const std::string& part, absl::string_view name) {
  if (part == "*") return !name.empty();
  std::string owned(name);
  return fnmatch(part.c_str(), owned.c_str(), 0) == 0;
}

// Whether every name of `names` is matched by `parts`, "**" standing for any number of
// names. Dynamic programming over (part, name): no pattern makes it exponential.
bool PartsMatch(const std::vector<std::string>& parts,
                const std::vector<absl::string_view>& names) {
  const size_t p = parts.size(), n = names.size();
  // reach[j]: parts[0..i) can match names[0..j).
  std::vector<char> reach(n + 1, 0), next(n + 1, 0);
  reach[0] = 1;
  for (size_t i = 0; i < p; ++i) {
    std::fill(next.begin(), next.end(), 0);
    if (parts[i] == "**") {
      bool any = false;
      for (size_t j = 0; j <= n; ++j) {
        any = any || reach[j];
        next[j] = any;
      }
    } else {
      for (size_t j = 0; j < n; ++j) {
        if (reach[j] && NameMatches(parts[i], names[j])) next[j + 1] = 1;
      }
    }
    std::swap(reach, next);
  }
  return reach[n] != 0;
}

}  // namespace

absl::StatusOr<PathPattern> PathPattern::Parse(absl::string_view text, absl::string_view what) {
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, " pattern \"", text.substr(0, 80),
                                                   text.size() > 80 ? "..." : "", "\": ", why));
  };
  if (text.size() > kMaxPatternBytes) {
    return refuse(absl::StrCat("over ", kMaxPatternBytes, " bytes"));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return refuse("a control character");
  }
  PathPattern pattern;
  pattern.text_ = std::string(text);
  absl::string_view rest = text;
  while (absl::ConsumePrefix(&rest, "./")) {
  }
  if (absl::ConsumeSuffix(&rest, "/")) pattern.folders_only_ = true;
  if (absl::ConsumePrefix(&rest, "/")) pattern.anchored_ = true;
  if (rest.empty()) return refuse("names nothing");
  pattern.anchored_ = pattern.anchored_ || absl::StrContains(rest, '/');
  for (absl::string_view part : absl::StrSplit(rest, '/')) {
    if (part.empty()) return refuse("an empty name (two slashes)");
    if (part == "." || part == "..") return refuse("a . or .. name: patterns stay in the folder");
    // A class left open would match nothing and say nothing: refused instead.
    const size_t open = part.find('[');
    if (open != absl::string_view::npos && part.find(']', open + 1) == absl::string_view::npos) {
      return refuse("a [ with no ]");
    }
    pattern.parts_.emplace_back(absl::StrContains(part, "**") && part != "**"
                                    ? absl::StrReplaceAll(part, {{"**", "*"}})
                                    : std::string(part));
  }
  return pattern;
}

bool PathPattern::Matches(absl::string_view relative) const {
  std::vector<absl::string_view> names = absl::StrSplit(relative, '/', absl::SkipEmpty());
  if (names.empty()) return false;
  // The file itself (unless only folders are meant), or any folder on its way.
  const size_t last = folders_only_ ? names.size() - 1 : names.size();
  if (!anchored_) {
    for (size_t i = 0; i < last; ++i) {
      if (NameMatches(parts_[0], names[i])) return true;
    }
    return false;
  }
  std::vector<absl::string_view> prefix;
  prefix.reserve(names.size());
  for (size_t k = 0; k < last; ++k) {
    prefix.push_back(names[k]);
    if (PartsMatch(parts_, prefix)) return true;
  }
  return false;
}

absl::StatusOr<PathPatterns> PathPatterns::Parse(const std::vector<std::string>& texts,
                                                 absl::string_view what) {
  if (texts.size() > kMaxPatterns) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", texts.size(), " patterns; at most ", kMaxPatterns));
  }
  PathPatterns patterns;
  for (const std::string& text : texts) {
    absl::StatusOr<PathPattern> pattern = PathPattern::Parse(text, what);
    if (!pattern.ok()) return pattern.status();
    patterns.patterns_.push_back(*std::move(pattern));
  }
  return patterns;
}

const PathPattern* PathPatterns::Match(absl::string_view relative) const {
  for (const PathPattern& pattern : patterns_) {
    if (pattern.Matches(relative)) return &pattern;
  }
  return nullptr;
}

const char* IgnoreFiles::FileName(Kind kind) {
  return kind == Kind::kFleet ? ".fleetignore" : ".sourceignore";
}

std::vector<std::string> IgnoreFiles::SourceIgnoresAbove(const std::string& path) {
  std::vector<std::string> above;
  if (path.empty()) return above;
  above.push_back(".sourceignore");
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    above.push_back(absl::StrCat(path.substr(0, slash), "/.sourceignore"));
  }
  return above;
}

absl::StatusOr<IgnoreFiles> IgnoreFiles::Read(const std::string& path,
                                              const std::vector<RepoFile>& files, Kind kind) {
  const std::string name = FileName(kind);
  const std::string prefix = path.empty() ? "" : path + "/";
  std::vector<std::string> above;
  if (kind == Kind::kFlux) above = SourceIgnoresAbove(path);
  std::vector<const RepoFile*> found;
  for (const RepoFile& file : files) {
    const bool here = absl::StartsWith(file.path, prefix) &&
                      (file.path == prefix + name || absl::EndsWith(file.path, "/" + name));
    if (here || std::find(above.begin(), above.end(), file.path) != above.end()) {
      found.push_back(&file);
    }
  }
  // Shallowest first: a deeper file's lines come later, and so win.
  std::stable_sort(found.begin(), found.end(), [](const RepoFile* a, const RepoFile* b) {
    return std::count(a->path.begin(), a->path.end(), '/') <
           std::count(b->path.begin(), b->path.end(), '/');
  });
  IgnoreFiles ignore;
  for (const RepoFile* file : found) {
    if (file->content.size() > kMaxIgnoreFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(file->path, " is ", file->content.size(),
                                                     " bytes; at most ", kMaxIgnoreFileBytes));
    }
    const size_t slash = file->path.rfind('/');
    const std::string folder = slash == std::string::npos ? "" : file->path.substr(0, slash);
    int line_number = 0;
    for (absl::string_view line : absl::StrSplit(file->content, '\n')) {
      ++line_number;
      absl::ConsumeSuffix(&line, "\r");
      // Trailing spaces are dropped, as Git drops them (unless escaped, which is rare).
      line = absl::StripTrailingAsciiWhitespace(line);
      if (line.empty() || line[0] == '#') continue;
      Rule rule{folder, file->path, PathPattern(), false};
      if (absl::ConsumePrefix(&line, "!")) rule.negated = true;
      if (absl::StartsWith(line, "\\#") || absl::StartsWith(line, "\\!")) line.remove_prefix(1);
      absl::StatusOr<PathPattern> pattern =
          PathPattern::Parse(line, absl::StrCat(file->path, ":", line_number, ":"));
      if (!pattern.ok()) return pattern.status();
      rule.pattern = *std::move(pattern);
      ignore.rules_.push_back(std::move(rule));
      if (ignore.rules_.size() > kMaxIgnoreRules) {
        return absl::InvalidArgumentError(absl::StrCat(
            file->path, ": over ", kMaxIgnoreRules, " patterns in the bundle's ", name, " files"));
      }
    }
  }
  return ignore;
}

std::string IgnoreFiles::Ignored(const std::string& repo_path) const {
  const Rule* decided = nullptr;
  for (const Rule& rule : rules_) {
    absl::string_view relative = repo_path;
    if (!rule.folder.empty()) {
      if (!absl::ConsumePrefix(&relative, rule.folder) || !absl::ConsumePrefix(&relative, "/")) {
        continue;
      }
    }
    if (rule.pattern.Matches(relative)) decided = &rule;
  }
  if (decided == nullptr || decided->negated) return "";
  return absl::StrCat(decided->file, ": ", decided->pattern.text());
}

}  // namespace gitfleet
