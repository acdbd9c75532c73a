#include "controlplane/render/chart_fetcher.h"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/manifest/yaml.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/sync.h"
#include "controlplane/render/archive.h"
#include "controlplane/source/git_credentials.h"
#include "controlplane/source/repo_url.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// A semantic version as helm's semver library reads one: "v" allowed, minor and patch
// optional, a pre-release after "-", build metadata after "+" (ignored).
struct Semver {
  int64_t major = 0, minor = 0, patch = 0;
  std::string pre;
  int parts = 0;  // how many of major.minor.patch were written (a wildcard ends them)
};

std::optional<Semver> ParseSemver(absl::string_view text, bool wildcards) {
  text = absl::StripAsciiWhitespace(text);
  absl::ConsumePrefix(&text, "v");
  Semver v;
  if (size_t plus = text.find('+'); plus != absl::string_view::npos) text = text.substr(0, plus);
  if (size_t dash = text.find('-'); dash != absl::string_view::npos) {
    v.pre = std::string(text.substr(dash + 1));
    text = text.substr(0, dash);
    if (v.pre.empty()) return std::nullopt;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.empty() || parts.size() > 3) return std::nullopt;
  int64_t* fields[] = {&v.major, &v.minor, &v.patch};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (wildcards && (parts[i] == "x" || parts[i] == "X" || parts[i] == "*")) break;
    if (parts[i].empty() || !absl::SimpleAtoi(parts[i], fields[i]) || *fields[i] < 0) {
      return std::nullopt;
    }
    v.parts = static_cast<int>(i) + 1;
  }
  if (!wildcards && v.parts == 0) return std::nullopt;
  return v;
}

// Semver's precedence: -1, 0, 1.
// Whether `constraint` names one version exactly (a whole version, no operator): that
// version alone, pre-release or not.
bool ExactVersion(const std::string& constraint) {
  std::optional<Semver> exact = ParseSemver(constraint, false);
  return exact.has_value() && exact->parts == 3 &&
         constraint.find_first_of("<>=!~^*xX ,|") == std::string::npos;
}

int Compare(const Semver& a, const Semver& b) {
  auto key = [](const Semver& v) { return std::tie(v.major, v.minor, v.patch); };
  if (key(a) != key(b)) return key(a) < key(b) ? -1 : 1;
  if (a.pre == b.pre) return 0;
  if (a.pre.empty()) return 1;  // a release follows its pre-releases
  if (b.pre.empty()) return -1;
  std::vector<absl::string_view> x = absl::StrSplit(a.pre, '.');
  std::vector<absl::string_view> y = absl::StrSplit(b.pre, '.');
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    int64_t m, n;
    const bool xm = absl::SimpleAtoi(x[i], &m), yn = absl::SimpleAtoi(y[i], &n);
    if (xm && yn) {
      if (m != n) return m < n ? -1 : 1;
    } else if (xm != yn) {
      return xm ? -1 : 1;  // numbers before words
    } else if (x[i] != y[i]) {
      return x[i] < y[i] ? -1 : 1;
    }
  }
  if (x.size() == y.size()) return 0;
  return x.size() < y.size() ? -1 : 1;
}

// One comparison of a constraint: an operator and a (possibly partial) version.
struct Bound {
  std::string op;  // =, !=, >, >=, <, <=
  Semver v;
};

Semver Bump(const Semver& v, int part) {  // the first version past v's part
  Semver next;
  next.major = v.major + (part == 0);
  next.minor = part == 0 ? 0 : v.minor + (part == 1);
  next.patch = part <= 1 ? 0 : v.patch + 1;
  next.pre = "";
  next.parts = 3;
  return next;
}

// The bounds one term of a constraint ("^1.2", ">=1.0", "1.x") puts on a version.
absl::StatusOr<std::vector<Bound>> ReadTerm(absl::string_view term) {
  std::string op;
  for (const char* candidate : {">=", "=>", "<=", "=<", "!=", ">", "<", "=", "~>", "~", "^"}) {
    if (absl::ConsumePrefix(&term, candidate)) {
      op = candidate;
      break;
    }
  }
  if (op == "=>") op = ">=";
  if (op == "=<") op = "<=";
  if (op == "~>") op = "~";
  std::optional<Semver> v = ParseSemver(term, /*wildcards=*/true);
  if (!v.has_value()) return absl::InvalidArgumentError(absl::StrCat("\"", term, "\""));
  Semver low = *v;
  if (v->parts == 0) return std::vector<Bound>{};  // *, x: anything
  if (op == "^") {
    // The leftmost non-zero part may not change (with 0s as written).
    int part = v->major != 0 || v->parts == 1 ? 0 : (v->minor != 0 || v->parts == 2 ? 1 : 2);
    return std::vector<Bound>{{">=", low}, {"<", Bump(*v, part)}};
  }
  if (op == "~") {
    return std::vector<Bound>{{">=", low}, {"<", Bump(*v, v->parts == 1 ? 0 : 1)}};
  }
  if (v->parts < 3) {  // a partial version is a range of its own
    const Semver next = Bump(*v, v->parts - 1);
    if (op.empty() || op == "=") return std::vector<Bound>{{">=", low}, {"<", next}};
    if (op == ">") return std::vector<Bound>{{">=", next}};
    if (op == "<=") return std::vector<Bound>{{"<", next}};
    if (op == "!=") return std::vector<Bound>{{"!<>", low}, {"!<>", next}};
  }
  return std::vector<Bound>{{op.empty() ? "=" : op, low}};
}

bool Holds(const Semver& version, const std::vector<Bound>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    const Bound& b = bounds[i];
    const int c = Compare(version, b.v);
    if (b.op == "!<>") {  // outside [b.v, next.v): the pair written for a partial !=
      const bool inside = c >= 0 && Compare(version, bounds[i + 1].v) < 0;
      if (inside) return false;
      ++i;
      continue;
    }
    const bool ok = b.op == "="    ? c == 0
                    : b.op == "!=" ? c != 0
                    : b.op == ">"  ? c > 0
                    : b.op == ">=" ? c >= 0
                    : b.op == "<"  ? c < 0
                                   : c <= 0;
    if (!ok) return false;
  }
  return true;
}

std::string Lower(std::string s) {
  absl::AsciiStrToLower(&s);
  return s;
}

// `reference` (an index's archive URL) resolved against the repository's URL.
std::string Resolve(const std::string& repo, const std::string& reference) {
  if (absl::StrContains(reference, "://")) return reference;
  std::string base = repo;
  if (!absl::EndsWith(base, "/")) base += "/";
  if (absl::StartsWith(reference, "/")) {
    const size_t scheme = base.find("://");
    const size_t host_end = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    return base.substr(0, host_end) + reference;
  }
  return base + reference;
}

}  // namespace

bool ChartRefMoves(const ChartRef& ref) {
  const bool archive = !ref.url.empty() && !absl::StartsWith(ref.url, "oci://");
  return !archive && !ExactVersion(ref.version);
}

std::string ChartRef::Describe() const {
  if (!url.empty()) return version.empty() ? url : absl::StrCat(url, " ", version);
  return absl::StrCat(repo, " ", name, version.empty() ? "" : " ", version);
}

absl::StatusOr<bool> SemverSatisfies(const std::string& version, const std::string& constraint) {
  std::optional<Semver> v = ParseSemver(version, /*wildcards=*/false);
  if (!v.has_value()) return false;  // not a version: never chosen
  const bool wants_pre = absl::StrContains(constraint, "-");
  bool any = false;
  for (absl::string_view alternative : absl::StrSplit(constraint, "||")) {
    // Terms are separated by commas or spaces; "1.2 - 1.4" is a range.
    std::vector<std::string> terms;
    std::vector<std::string> words =
        absl::StrSplit(alternative, absl::ByAnyChar(", "), absl::SkipEmpty());
    for (size_t i = 0; i < words.size(); ++i) {
      if (i + 2 < words.size() && words[i + 1] == "-") {
        terms.push_back(">=" + words[i]);
        std::optional<Semver> high = ParseSemver(words[i + 2], true);
        terms.push_back((high.has_value() && high->parts < 3 ? "<" : "<=") +
                        (high.has_value() && high->parts < 3
                             ? absl::StrCat(Bump(*high, high->parts - 1).major, ".",
                                            Bump(*high, high->parts - 1).minor, ".",
                                            Bump(*high, high->parts - 1).patch)
                             : words[i + 2]));
        i += 2;
        continue;
      }
      // ">= 1.2": an operator written apart from its version.
      if (i + 1 < words.size() && words[i].find_first_not_of("<>=!~^") == std::string::npos) {
        terms.push_back(words[i] + words[i + 1]);
        ++i;
        continue;
      }
      terms.push_back(words[i]);
    }
    bool holds = true;
    for (const std::string& term : terms) {
      absl::StatusOr<std::vector<Bound>> bounds = ReadTerm(term);
      if (!bounds.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("version constraint \"", constraint.substr(0, 128),
                         "\": ", bounds.status().message(), " is not a version or range"));
      }
      holds = holds && Holds(*v, *bounds);
    }
    any = any || holds;
  }
  // A pre-release is chosen only by a constraint that names one.
  return any && (v->pre.empty() || wants_pre);
}

absl::StatusOr<ChartIndex> ReadChartIndex(const std::string& text, const std::string& repo,
                                          const std::string& url) {
  ChartIndex index;
  // A served index is bounded as any YAML is, before a node is built: an alias bomb from a
  // broken or hostile server is refused, never walked. Big public indexes write millions of
  // nodes plainly, so the bound grows with the text (a node takes at least two bytes
  // written out): only aliases can go past it.
  YamlLimits limits;
  limits.max_expanded_nodes = std::max<uint64_t>(limits.max_expanded_nodes, text.size());
  GF_ASSIGN_OR_RETURN(const YAML::Node doc, LoadBoundedYaml(text, url, limits));
  try {
    const YAML::Node entries = doc.IsMap() ? doc["entries"] : YAML::Node();
    if (!entries.IsDefined() || !entries.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(url, " is not a chart repository's index (it has no entries)"));
    }
    for (const auto& chart : entries) {
      if (!chart.first.IsScalar() || !chart.second.IsSequence()) continue;
      std::vector<ChartVersion>& versions = index[chart.first.Scalar()];
      for (const YAML::Node& entry : chart.second) {
        if (!entry.IsMap()) continue;
        const YAML::Node version = entry["version"];
        const YAML::Node urls = entry["urls"];
        if (!version.IsDefined() || !version.IsScalar() || !urls.IsDefined() ||
            !urls.IsSequence() || urls.size() == 0 || !urls[0].IsScalar()) {
          continue;
        }
        const YAML::Node digest = entry["digest"];
        versions.push_back({version.Scalar(), Resolve(repo, urls[0].Scalar()),
                            digest.IsDefined() && digest.IsScalar() ? Lower(digest.Scalar()) : ""});
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(url, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  return index;
}

absl::StatusOr<ChartVersion> ChooseChartVersion(const ChartIndex& index, const std::string& repo,
                                                const std::string& name,
                                                const std::string& constraint) {
  auto it = index.find(name);
  if (it == index.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("the chart repository ", repo, " has no chart ", name));
  }
  // A constraint that is a whole version names it exactly, pre-release or not.
  const std::string wanted = std::string(absl::StripAsciiWhitespace(constraint));
  std::optional<Semver> exact = ParseSemver(wanted, false);
  const bool is_exact = ExactVersion(wanted);
  std::optional<Semver> best;
  ChartVersion chosen;
  std::vector<Semver> seen;
  for (const ChartVersion& entry : it->second) {
    std::optional<Semver> v = ParseSemver(entry.version, false);
    if (!v.has_value()) continue;
    seen.push_back(*v);
    bool ok;
    if (is_exact) {
      ok = Compare(*v, *exact) == 0;
    } else {
      GF_ASSIGN_OR_RETURN(ok, SemverSatisfies(entry.version, wanted));
    }
    if (!ok || (best.has_value() && Compare(*v, *best) <= 0)) continue;
    best = v;
    chosen = entry;
  }
  if (!best.has_value()) {
    std::sort(seen.begin(), seen.end(),
              [](const Semver& a, const Semver& b) { return Compare(a, b) > 0; });
    std::vector<std::string> newest;
    for (size_t i = 0; i < seen.size() && i < 5; ++i) {
      newest.push_back(absl::StrCat(seen[i].major, ".", seen[i].minor, ".", seen[i].patch,
                                    seen[i].pre.empty() ? "" : "-", seen[i].pre));
    }
    return absl::NotFoundError(absl::StrCat(
        "the chart repository ", repo, " has no version of ", name, " that \"", wanted,
        "\" allows (the newest: ", newest.empty() ? "none" : absl::StrJoin(newest, ", "), ")"));
  }
  return chosen;
}

absl::StatusOr<std::vector<RepoFile>> UnpackChartArchive(const std::string& archive,
                                                         size_t max_bytes, size_t max_files,
                                                         absl::string_view folder) {
  absl::StatusOr<std::vector<RepoFile>> files = UnpackArchive(archive, {max_bytes, max_files});
  if (!files.ok()) {
    return absl::Status(files.status().code(),
                        absl::StrCat("not a chart archive: ", files.status().message()));
  }
  auto has_chart_yaml = [&files] {
    return std::any_of(files->begin(), files->end(),
                       [](const RepoFile& f) { return f.path == "Chart.yaml"; });
  };
  if (!folder.empty()) {
    // go-getter's `URL//FOLDER`: the chart is that folder of the archive.
    files = ArchiveFolder(*std::move(files), folder);
    if (!files.ok()) return files.status();
    if (!has_chart_yaml()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the archive's folder ", folder.substr(0, 256), " holds no Chart.yaml"));
    }
    return files;
  }
  if (has_chart_yaml()) return files;  // the chart at the archive's top
  // What `helm package` writes: the chart in the archive's one top folder.
  std::string top;
  for (const RepoFile& file : *files) {
    const size_t slash = file.path.find('/');
    if (slash == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a chart archive: it holds ", file.path.substr(0, 256),
                       " outside a chart's folder, and no Chart.yaml beside it"));
    }
    const std::string folder_of = file.path.substr(0, slash);
    if (top.empty()) top = folder_of;
    if (folder_of != top) {
      return absl::InvalidArgumentError(absl::StrCat(
          "not a chart archive: it holds both ", top, "/ and ", folder_of.substr(0, 256),
          "/ (name the chart's folder after \"//\" in its URL, as go-getter reads it)"));
    }
  }
  for (RepoFile& file : *files) file.path.erase(0, top.size() + 1);
  if (!has_chart_yaml()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a chart archive: it holds no Chart.yaml",
                     top.empty() ? "" : absl::StrCat(" in ", top.substr(0, 256), "/")));
  }
  return files;
}

namespace {

constexpr absl::string_view kHelmChartLayer = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

// Keeps the headers a registry's answer is read by (the last response's, after redirects).
// The URL of a Link header's rel="next" (`</v2/web/tags/list?last=1.2.0>; rel="next"`),
// resolved against `url`; "" when there is none.
std::string NextPage(const std::string& url, const std::string& link) {
  const size_t open = link.find('<');
  const size_t close = link.find('>', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos ||
      link.find("rel=\"next\"", close) == std::string::npos) {
    return "";
  }
  const std::string target = link.substr(open + 1, close - open - 1);
  if (absl::StartsWith(target, "https://") || absl::StartsWith(target, "http://")) return target;
  if (!absl::StartsWith(target, "/")) return "";
  const size_t scheme = url.find("://");
  return url.substr(0, url.find('/', scheme + 3)) + target;
}

}  // namespace

absl::StatusOr<UrlChecksum> SplitUrlChecksum(const std::string& url) {
  UrlChecksum out{url, "", ""};
  const size_t question = url.find('?');
  if (question == std::string::npos) return out;
  const std::string fragment =
      url.find('#', question) == std::string::npos ? "" : url.substr(url.find('#', question));
  const absl::string_view query =
      absl::string_view(url).substr(question + 1, url.size() - question - 1 - fragment.size());
  std::vector<std::string> kept;
  std::string value;
  for (absl::string_view pair : absl::StrSplit(query, '&')) {
    if (absl::StartsWith(pair, "checksum=")) {
      value = std::string(pair.substr(sizeof("checksum=") - 1));
    } else if (!pair.empty()) {
      kept.emplace_back(pair);
    }
  }
  if (value.empty()) return out;
  out.url = absl::StrCat(url.substr(0, question), kept.empty() ? "" : "?", absl::StrJoin(kept, "&"),
                         fragment);
  const std::string shown = value.substr(0, 160);
  absl::StrReplaceAll({{"%3A", ":"}, {"%3a", ":"}}, &value);
  if (absl::StartsWith(value, "file:")) {
    return absl::InvalidArgumentError(absl::StrCat("its checksum ", shown,
                                                   " is in a file, which gitfleet does not fetch: "
                                                   "give the digest itself (checksum=sha256:HEX)"));
  }
  std::string hex = value;
  if (const size_t colon = value.find(':'); colon != std::string::npos) {
    out.algorithm = absl::AsciiStrToLower(value.substr(0, colon));
    hex = value.substr(colon + 1);
  }
  hex = absl::AsciiStrToLower(hex);
  const bool is_hex =
      !hex.empty() && hex.find_first_not_of("0123456789abcdef") == std::string::npos;
  const std::map<std::string, size_t> kLengths = {
      {"md5", 32}, {"sha1", 40}, {"sha256", 64}, {"sha512", 128}};
  if (out.algorithm.empty()) {
    for (const auto& [algorithm, length] : kLengths) {
      if (hex.size() == length) out.algorithm = algorithm;
    }
  }
  auto known = kLengths.find(out.algorithm);
  if (!is_hex || known == kLengths.end() || known->second != hex.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("its checksum ", shown,
                     " is not one gitfleet reads (md5, sha1, sha256 or sha512, as hex: "
                     "checksum=sha256:HEX)"));
  }
  out.hex = std::move(hex);
  return out;
}

absl::StatusOr<ArchiveUrl> SplitArchiveUrl(const std::string& url) {
  ArchiveUrl out{url, ""};
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return out;
  const size_t query_at = std::min(url.find_first_of("?#", scheme + 3), url.size());
  std::string path = url.substr(0, query_at);
  std::string query = url.substr(query_at);
  bool archive_named = false;
  if (absl::StartsWith(query, "?")) {
    const size_t hash = query.find('#');
    const std::string fragment = hash == std::string::npos ? "" : query.substr(hash);
    std::vector<std::string> kept;
    for (absl::string_view pair :
         absl::StrSplit(absl::string_view(query).substr(1, query.size() - 1 - fragment.size()), '&',
                        absl::SkipEmpty())) {
      if (!absl::StartsWith(pair, "archive=")) {
        kept.emplace_back(pair);
        continue;
      }
      if (absl::EqualsIgnoreCase(pair.substr(8), "false")) {
        return absl::InvalidArgumentError(
            "its archive=false makes it a file, not an archive, and a chart is an archive");
      }
      archive_named = true;
    }
    query = absl::StrCat(kept.empty() ? "" : "?", absl::StrJoin(kept, "&"), fragment);
  }
  const size_t host_end = path.find('/', scheme + 3);
  const size_t split =
      host_end == std::string::npos ? std::string::npos : path.find("//", host_end);
  if (split != std::string::npos) {
    if (archive_named || NamesArchive(path.substr(host_end, split - host_end))) {
      out.folder = path.substr(split + 2);
      path.resize(split);
    }
  }
  out.url = path + query;
  return out;
}

namespace {

// Whether `url` carries user information (a username, a password) before its host.
bool HasUserInfo(absl::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return false;
  url.remove_prefix(scheme + 3);
  return url.substr(0, url.find_first_of("/?#")).find('@') != absl::string_view::npos;
}

std::string Escape(const std::string& text) {
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr) return "";
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

// The files and name of the chart in `archive`, fetched from `url`.
absl::StatusOr<std::shared_ptr<FetchedChart>> ChartFromArchive(
    const std::string& archive, const std::string& url, const std::string& digest,
    const std::string& version, const ChartFetchOptions& options, const std::string& folder = "") {
  absl::StatusOr<std::vector<RepoFile>> files =
      UnpackChartArchive(archive, options.max_chart_bytes, options.max_chart_files, folder);
  if (!files.ok()) {
    return absl::Status(files.status().code(), absl::StrCat(url, ": ", files.status().message()));
  }
  auto chart = std::make_shared<FetchedChart>();
  chart->url = url;
  chart->digest = digest;
  chart->version = version;
  for (const RepoFile& file : *files) {
    if (file.path != "Chart.yaml") continue;
    absl::StatusOr<YAML::Node> loaded = LoadBoundedYaml(file.content, url + ": Chart.yaml");
    if (!loaded.ok()) return loaded.status();
    try {
      const YAML::Node& meta = *loaded;
      if (meta.IsMap() && meta["name"].IsDefined() && meta["name"].IsScalar()) {
        chart->name = meta["name"].Scalar();
      }
      if (chart->version.empty() && meta.IsMap() && meta["version"].IsDefined() &&
          meta["version"].IsScalar()) {
        chart->version = meta["version"].Scalar();
      }
    } catch (const YAML::Exception&) {
      // helm says what is wrong with it
    }
  }
  chart->files = *std::move(files);
  return chart;
}

ChartFetchOptions WithWholeHosts(ChartFetchOptions options) {
  for (std::string& prefix : options.allowed) prefix = WholeHostPrefix(std::move(prefix));
  for (auto& [prefix, name] : options.credentials) prefix = WholeHostPrefix(std::move(prefix));
  return options;
}

// Whether `url` is under one of `allowed` (an http(s) or oci:// URL).
bool UnderPrefixes(const std::string& url, const std::vector<std::string>& allowed) {
  if (!absl::StartsWith(url, "https://") && !absl::StartsWith(url, "http://") &&
      !absl::StartsWith(url, "oci://")) {
    return false;
  }
  for (const std::string& prefix : allowed) {
    if (prefix == "*" || absl::StartsWith(url, WholeHostPrefix(prefix))) return true;
  }
  return false;
}

// What a registry or chart server that refused a request (401 or 403) wants, in words;
// `url` is what was fetched (an http(s) URL, or the chart's oci:// reference).
std::string RefusedBy(const std::optional<ChartLogin>& login, absl::string_view where,
                      absl::string_view url) {
  if (login.has_value()) {
    return absl::StrCat(where, " refused credential ", login->name,
                        !login->username.empty()       ? ""
                        : login->github_app            ? "'s GitHub App token"
                        : !login->bearer_token.empty() ? "'s bearerToken"
                                                       : " (it holds no username and password)");
  }
  const size_t scheme = url.find("://");
  const absl::string_view host =
      scheme == absl::string_view::npos ? "" : url.substr(0, url.find('/', scheme + 3));
  return absl::StrCat(where,
                      " asks for credentials: give the control plane one with "
                      "--chart-credentials=",
                      host.substr(0, 256),
                      "/=NAME (a folder in --credentials-dir; a longer "
                      "prefix gives it to less)");
}
}  // namespace

absl::StatusOr<ChartLogin> LoadChartLogin(const std::string& dir, const std::string& name) {
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("chart credential ", name.substr(0, 64),
                     " is named, but the control plane has no --credentials-dir to find it in"));
  }
  GF_ASSIGN_OR_RETURN(GitCredential credential, LoadGitCredential(dir, name));
  if (credential.has_ssh_key()) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential ", name,
                     " holds an SSH key: chart repositories and registries are spoken to over "
                     "HTTPS, with a username and password (a token as the password)"));
  }
  if (!credential.github_app.has_value() &&
      credential.username.empty() != credential.password.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "credential ", name, " holds a ", credential.username.empty() ? "password" : "username",
        " without a ", credential.username.empty() ? "username" : "password",
        ": a chart repository or registry takes both"));
  }
  if (credential.username.find_first_of("\r\n:") != std::string::npos ||
      credential.password.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential ", name,
                     "'s username holds a colon or a line break, or its password a line "
                     "break: HTTP basic auth cannot carry it"));
  }
  return ChartLogin{credential.name,         credential.username,     credential.password,
                    credential.ca_pem,       credential.bearer_token, credential.github_app,
                    credential.tls_cert_pem, credential.tls_key_pem};
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseChartCredentials(
    const std::vector<std::string>& entries, const std::vector<std::string>& allowed) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> prefixes;
  for (const std::string& entry : entries) {
    GF_ASSIGN_OR_RETURN(auto split, SplitCredentialEntry(entry));
    const auto& [prefix, name] = split;
    const std::string shown = RedactUrl(entry).substr(0, 256);
    if (prefix == "*") {
      return absl::InvalidArgumentError(
          absl::StrCat(shown, ": a credential is given to the URL prefixes it names, never to *"));
    }
    if (absl::Status valid = CheckChartPrefixes({prefix}); !valid.ok()) return valid;
    if (!UnderPrefixes(WholeHostPrefix(prefix), allowed)) {
      return absl::InvalidArgumentError(absl::StrCat(
          shown, ": ", prefix.substr(0, 256),
          " is not under any of --chart-repositories, so no chart is fetched from it"));
    }
    if (!prefixes.insert(WholeHostPrefix(prefix)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown, ": ", prefix.substr(0, 256), " is given a credential twice"));
    }
    out.emplace_back(prefix, name);
  }
  return out;
}

absl::Status CheckChartPrefixes(const std::vector<std::string>& prefixes) {
  for (const std::string& prefix : prefixes) {
    if (prefix == "*") continue;
    if (HasUserInfo(prefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          RedactUrl(prefix).substr(0, 256),
          " holds credentials in its URL: give them with --chart-credentials instead"));
    }
    const size_t scheme = prefix.find("://");
    const std::string name = scheme == std::string::npos ? "" : prefix.substr(0, scheme);
    if ((name != "https" && name != "http" && name != "oci") || prefix.size() <= scheme + 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix.substr(0, 256), " is not an http(s) or oci:// URL prefix (or *)"));
    }
  }
  return absl::OkStatus();
}

ChartFetcher::ChartFetcher(ChartFetchOptions options)
    : options_(WithWholeHosts(std::move(options))) {}

std::optional<std::string> ChartFetcher::RepositoryNamed(const std::string& name) const {
  auto found = options_.repository_names.find(name);
  if (found == options_.repository_names.end()) return std::nullopt;
  return found->second;
}

absl::StatusOr<std::map<std::string, std::string>> ParseChartRepositoryNames(
    const std::vector<std::string>& entries) {
  if (entries.size() > 100) {
    return absl::InvalidArgumentError(absl::StrCat(entries.size(), " names; at most 100"));
  }
  std::map<std::string, std::string> out;
  for (const std::string& entry : entries) {
    const size_t eq = entry.find('=');
    const std::string name = entry.substr(0, eq);
    const std::string url = eq == std::string::npos ? "" : entry.substr(eq + 1);
    const bool good_name =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                 c == '-';
        });
    const bool good_url = url.size() <= 2048 &&
                          (absl::StartsWith(url, "https://") || absl::StartsWith(url, "http://") ||
                           absl::StartsWith(url, "oci://")) &&
                          url.find_first_of(" \t\n\r") == std::string::npos &&
                          url.find("://") + 3 < url.size();
    if (eq == std::string::npos || !good_name || !good_url) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", entry.substr(0, 128),
          "\": want NAME=URL (a name of letters, digits, '.', '_' and '-'; an https://, http:// "
          "or oci:// URL)"));
    }
    if (!out.emplace(name, url).second) {
      return absl::InvalidArgumentError(absl::StrCat("the name ", name, " is given twice"));
    }
  }
  return out;
}

void ChartFetcher::FetchAllAgain() {
  MutexLock lock(&mu_);
  indexes_.clear();
  layers_.clear();
}

void ChartFetcher::FetchAgain(const std::set<std::string>& repos) {
  MutexLock lock(&mu_);
  // A chart repository's index is kept by its URL as written; a push names it normalized.
  for (auto it = indexes_.begin(); it != indexes_.end();) {
    it = repos.count(it->first) > 0 || repos.count(NormalizeRepoUrl(it->first)) > 0
             ? indexes_.erase(it)
             : std::next(it);
  }
  for (auto it = layers_.begin(); it != layers_.end();) {
    const std::string& key = it->first;
    const size_t colon = key.rfind(':');
    it = colon != std::string::npos && repos.count(key.substr(0, colon)) > 0 ? layers_.erase(it)
                                                                             : std::next(it);
  }
}

bool ChartFetcher::Allowed(const std::string& url) const {
  return UnderPrefixes(url, options_.allowed);
}

absl::StatusOr<std::optional<ChartLogin>> ChartFetcher::LoginFor(const std::string& url) const {
  const std::pair<std::string, std::string>* best = nullptr;
  for (const auto& credential : options_.credentials) {
    if (absl::StartsWith(url, credential.first) &&
        (best == nullptr || credential.first.size() > best->first.size())) {
      best = &credential;
    }
  }
  if (best == nullptr) return std::nullopt;
  absl::StatusOr<ChartLogin> login = LoadChartLogin(options_.credentials_dir, best->second);
  if (!login.ok()) {
    return absl::Status(login.status().code(), absl::StrCat("--chart-credentials for ", best->first,
                                                            ": ", login.status().message()));
  }
  return *std::move(login);
}

namespace {

// The request itself, whatever a host said before.
absl::StatusOr<HttpAnswer> HttpGetUnlimited(const std::string& url, const HttpOptions& options) {
  HttpFetchOptions request;
  request.max_bytes = options.max_bytes;
  request.timeout = options.timeout;
  request.headers = options.headers;
  request.ca_file = options.ca_file;
  if (const ChartLogin* login = options.login; login != nullptr) {
    request.ca_pem = login->ca_pem;
    request.client_cert_pem = login->client_cert_pem;
    request.client_key_pem = login->client_key_pem;
    if (options.basic && login->github_app.has_value()) {
      // The App's installation token (kept while it lasts), as GitHub takes it.
      absl::StatusOr<GitHubAppToken> token =
          FetchGitHubAppToken(*login->github_app, options.timeout);
      if (!token.ok()) {
        return absl::Status(token.status().code(), absl::StrCat("credential ", login->name, ": ",
                                                                token.status().message()));
      }
      request.username = "x-access-token";
      request.password = token->token;
    } else if (options.basic && !login->bearer_token.empty()) {
      // curl keeps an Authorization header from any other host a redirect leads to.
      request.headers.push_back("Authorization: Bearer " + login->bearer_token);
    } else if (options.basic) {
      request.username = login->username;
      request.password = login->password;
    }
  }
  return HttpFetch(url, request);
}

}  // namespace

absl::StatusOr<HttpAnswer> HttpGet(const std::string& url, const HttpOptions& options) {
  if (absl::Status waiting = WaitingOutRateLimit(url); !waiting.ok()) {
    return absl::UnavailableError(
        absl::StrCat(waiting.message(), "; ", RedactUrl(url), " is fetched then"));
  }
  absl::StatusOr<HttpAnswer> answer = HttpGetUnlimited(url, options);
  if (answer.ok()) NoteRateLimit(url, *answer);
  return answer;
}

absl::StatusOr<HttpAnswer> ChartFetcher::Request(const std::string& url, size_t max_bytes,
                                                 const std::vector<std::string>& headers,
                                                 const ChartLogin* login, bool basic) const {
  return HttpGet(url, {max_bytes, options_.timeout, headers, options_.ca_file, login, basic});
}

absl::StatusOr<std::string> ChartFetcher::Get(const std::string& url, size_t max_bytes) const {
  GF_ASSIGN_OR_RETURN(std::optional<ChartLogin> login, LoginFor(url));
  GF_ASSIGN_OR_RETURN(HttpAnswer answer,
                      Request(url, max_bytes, {}, login.has_value() ? &*login : nullptr, true));
  if (answer.status == 401 || answer.status == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot fetch ", url, ": ",
                     RefusedBy(login, absl::StrCat("the server (HTTP ", answer.status, ")"), url)));
  }
  if (answer.status >= 400) {
    return absl::UnavailableError(
        absl::StrCat("cannot fetch ", url, ": the server answered HTTP ", answer.status));
  }
  return std::move(answer.body);
}

absl::StatusOr<std::shared_ptr<const FetchedChart>> ChartFetcher::Fetch(const ChartRef& ref,
                                                                        const FetchScope& scope) {
  const std::string& where = ref.url.empty() ? ref.repo : ref.url;
  GF_RETURN_IF_ERROR(scope.Check(where, ref.url.empty() ? "the chart repository" : "the chart"));
  if (HasUserInfo(where)) {
    // Never sent, nor shown: a password in a repository's file is a leak already.
    return absl::InvalidArgumentError(absl::StrCat(
        RedactUrl(where).substr(0, 256),
        " holds credentials in its URL, which gitfleet never sends: give the control plane "
        "the credential with --chart-credentials, and take it out of the repository"));
  }
  if (!Allowed(where)) {
    return absl::FailedPreconditionError(
        absl::StrCat("it is fetched from ", where.substr(0, 256),
                     ", which the control plane does not fetch charts from: start it with "
                     "--chart-repositories=",
                     where.substr(0, 256),
                     " to trust it (renders have no network; the control plane "
                     "fetches charts only from the repositories it is told to)"));
  }
  if (absl::StartsWith(ref.url, "oci://")) return FetchOci(ref, scope);
  ChartVersion chosen;
  UrlChecksum checksum;
  std::string folder;
  if (!ref.url.empty()) {
    // go-getter's folder (URL//FOLDER) and archive parameter, then its checksum parameter:
    // taken off the URL; the folder is the chart's, the checksum checked.
    absl::StatusOr<ArchiveUrl> archive_url = SplitArchiveUrl(ref.url);
    absl::StatusOr<UrlChecksum> split =
        archive_url.ok() ? SplitUrlChecksum(archive_url->url) : archive_url.status();
    if (archive_url.ok()) folder = archive_url->folder;
    if (!split.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the chart ", ref.url.substr(0, 256), ": ", split.status().message()));
    }
    checksum = *std::move(split);
    chosen.url = checksum.url;
  } else {
    // A chart repository's index lists new releases: a push naming the repository (its
    // Pages site's Git repository, or a pipeline's post) renders the bundle again.
    if (scope.repos_read != nullptr) scope.repos_read->push_back(ref.repo);
    std::shared_ptr<const ChartIndex> charts;
    const absl::Time now = RealClock().Now();
    {
      MutexLock lock(&mu_);
      auto it = indexes_.find(ref.repo);
      if (it != indexes_.end() && now - it->second.read < options_.index_ttl) {
        charts = it->second.charts;
      }
    }
    if (charts == nullptr) {
      const std::string index_url = Resolve(ref.repo, "index.yaml");
      GF_ASSIGN_OR_RETURN(std::string text, Get(index_url, options_.max_index_bytes));
      GF_ASSIGN_OR_RETURN(ChartIndex read, ReadChartIndex(text, ref.repo, index_url));
      charts = std::make_shared<const ChartIndex>(std::move(read));
      MutexLock lock(&mu_);
      indexes_[ref.repo] = {now, charts};
    }
    GF_ASSIGN_OR_RETURN(chosen, ChooseChartVersion(*charts, ref.repo, ref.name, ref.version));
    GF_RETURN_IF_ERROR(scope.Check(chosen.url, absl::StrCat("the archive the index lists for ",
                                                            ref.name, " ", chosen.version, ",")));
    if (HasUserInfo(chosen.url)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the chart repository ", ref.repo, " lists ",
                       RedactUrl(chosen.url).substr(0, 256), " for ", ref.name, " ", chosen.version,
                       ", a URL with credentials in it, which gitfleet never sends"));
    }
    if (!absl::StartsWith(chosen.url, "https://") && !absl::StartsWith(chosen.url, "http://")) {
      return absl::InvalidArgumentError(
          absl::StrCat("the chart repository ", ref.repo, " lists ", chosen.url.substr(0, 256),
                       " for ", ref.name, " ", chosen.version, ", which is not an http(s) URL"));
    }
  }
  // An archive the index gives a digest for is that archive for good; one without, at a
  // URL, is read again after index_ttl.
  const std::string key =
      absl::StrCat(chosen.url, "#", chosen.digest, checksum.algorithm, checksum.hex, "//", folder);
  const absl::Time now = RealClock().Now();
  {
    MutexLock lock(&mu_);
    if (auto it = charts_.find(key);
        it != charts_.end() && (!chosen.digest.empty() || !checksum.hex.empty() ||
                                now - it->second.fetched < options_.index_ttl)) {
      return it->second.chart;
    }
  }
  GF_ASSIGN_OR_RETURN(std::string archive, Get(chosen.url, options_.max_archive_bytes));
  if (!chosen.digest.empty()) {
    const std::string digest = absl::BytesToHexString(crypto::Sha256(archive));
    if (digest != chosen.digest) {
      return absl::InvalidArgumentError(absl::StrCat(
          chosen.url, " is not the archive the chart repository's index lists (its sha256 is ",
          digest, ", the index says ", chosen.digest, ")"));
    }
  }
  if (!checksum.hex.empty()) {
    std::optional<std::string> got = crypto::DigestNamed(checksum.algorithm, archive);
    const std::string hex = got.has_value() ? absl::BytesToHexString(*got) : "";
    if (hex != checksum.hex) {
      return absl::InvalidArgumentError(absl::StrCat(
          chosen.url, " is not the archive its checksum names (its ", checksum.algorithm, " is ",
          hex.empty() ? "unknown here" : hex, ", the URL's checksum says ", checksum.hex, ")"));
    }
  }
  GF_ASSIGN_OR_RETURN(
      std::shared_ptr<const FetchedChart> chart,
      ChartFromArchive(
          archive, chosen.url,
          chosen.digest.empty() && checksum.algorithm == "sha256" ? checksum.hex : chosen.digest,
          chosen.version, options_, folder));
  Remember(key, chart, now);
  return chart;
}

void ChartFetcher::Remember(const std::string& key, std::shared_ptr<const FetchedChart> chart,
                            absl::Time now) {
  MutexLock lock(&mu_);
  if (charts_.insert_or_assign(key, Cached{std::move(chart), now}).second) {
    chart_order_.push_back(key);
  }
  while (chart_order_.size() > options_.max_cached_charts) {
    charts_.erase(chart_order_.front());
    chart_order_.erase(chart_order_.begin());
  }
}

std::map<std::string, std::string> ReadBearerChallenge(const std::string& header) {
  std::map<std::string, std::string> out;
  constexpr absl::string_view kBearer = "bearer ";
  if (header.size() > 4096 || header.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(header).substr(0, kBearer.size()), kBearer)) {
    return out;
  }
  absl::string_view rest = absl::string_view(header).substr(kBearer.size());
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (absl::ConsumePrefix(&rest, ",")) continue;
    const size_t equals = rest.find('=');
    if (equals == absl::string_view::npos) break;
    const std::string name = Lower(std::string(absl::StripAsciiWhitespace(rest.substr(0, equals))));
    rest.remove_prefix(equals + 1);
    std::string value;
    if (absl::ConsumePrefix(&rest, "\"")) {
      size_t i = 0;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      rest.remove_prefix(std::min(rest.size(), i + 1));
    } else {
      const size_t comma = std::min(rest.find(','), rest.size());
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, comma)));
      rest.remove_prefix(comma);
    }
    if (!name.empty()) out[name] = value;
  }
  return out;
}

absl::StatusOr<std::string> ChartFetcher::RegistryGet(const std::string& url,
                                                      const std::string& accept, size_t max_bytes,
                                                      RegistryAuth* auth, std::string* next) const {
  const ChartLogin* login = auth->login.has_value() ? &*auth->login : nullptr;
  const std::string registry = absl::StrCat("the registry at ", UrlAuthority(url));
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> headers = {"Accept: " + accept};
    if (!auth->token.empty()) headers.push_back("Authorization: Bearer " + auth->token);
    GF_ASSIGN_OR_RETURN(HttpAnswer answer, Request(url, max_bytes, headers, login, auth->basic));
    if (answer.status == 401 && attempt == 0) {
      const std::string oci = absl::StrCat("oci://", UrlAuthority(url), "/");
      if (absl::StartsWithIgnoreCase(answer.www_authenticate, "basic")) {
        // Basic auth with the credential itself (as Amazon ECR and some Artifactory ask).
        if (login == nullptr || login->username.empty()) {
          return absl::PermissionDeniedError(
              absl::StrCat("cannot fetch ", url, ": ", RefusedBy(std::nullopt, registry, oci)));
        }
        auth->basic = true;
        continue;
      }
      // A token from the registry's token service: anonymous, as helm gets one for a
      // public chart, or granted for the credential.
      std::map<std::string, std::string> challenge = ReadBearerChallenge(answer.www_authenticate);
      const std::string realm = challenge["realm"];
      if (realm.empty()) {
        return absl::UnavailableError(absl::StrCat(
            url, " asks for credentials in a way gitfleet does not answer (",
            answer.www_authenticate.substr(0, 128), "): it answers Bearer and Basic challenges"));
      }
      if (!absl::StartsWith(realm, "https://") &&
          !(absl::StartsWith(realm, "http://") && IsLoopbackHost(UrlAuthority(realm)))) {
        return absl::UnavailableError(absl::StrCat(
            registry, " names a token service that is not https: ", realm.substr(0, 256)));
      }
      std::string token_url = realm;
      char separator = realm.find('?') == std::string::npos ? '?' : '&';
      for (const char* field : {"service", "scope"}) {
        if (challenge[field].empty()) continue;
        absl::StrAppend(&token_url, std::string(1, separator), field, "=",
                        Escape(challenge[field]));
        separator = '&';
      }
      // The credential goes to the token service the registry names (on a host of its own
      // for Docker Hub), as Docker sends it; https only (checked above).
      GF_ASSIGN_OR_RETURN(HttpAnswer granted, Request(token_url, 1 << 20, {}, login, true));
      if (granted.status == 401 || granted.status == 403) {
        return absl::PermissionDeniedError(absl::StrCat(
            "cannot fetch ", url, ": ",
            RefusedBy(
                auth->login,
                absl::StrCat("the token service of ", registry, " (HTTP ", granted.status, ")"),
                oci)));
      }
      if (granted.status != 200) {
        return absl::UnavailableError(absl::StrCat("the token service of ", registry,
                                                   " gives no token (HTTP ", granted.status, ")"));
      }
      const nlohmann::json reply = nlohmann::json::parse(granted.body, nullptr, false);
      std::string given;
      for (const char* field : {"token", "access_token"}) {
        if (reply.is_object() && reply.contains(field) && reply[field].is_string()) {
          given = reply[field].get<std::string>();
          break;
        }
      }
      if (given.empty() || given.size() > 16384 ||
          given.find_first_of("\r\n") != std::string::npos) {
        return absl::UnavailableError(
            absl::StrCat("the token service of ", registry, " answered no token gitfleet can use"));
      }
      auth->token = std::move(given);
      continue;
    }
    if (answer.status == 401 || answer.status == 403) {
      // Refused with what it asked for: the credential (or no credential) may not pull this.
      return absl::PermissionDeniedError(
          absl::StrCat("cannot fetch ", url, ": ",
                       RefusedBy(auth->login, absl::StrCat(registry, " (HTTP ", answer.status, ")"),
                                 absl::StrCat("oci://", UrlAuthority(url), "/"))));
    }
    if (answer.status == 404) {
      return absl::NotFoundError(absl::StrCat(url, ": the registry has no such thing (HTTP 404)"));
    }
    if (answer.status >= 400 || answer.status == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot fetch ", url, ": the registry answered HTTP ", answer.status));
    }
    if (next != nullptr) *next = NextPage(url, answer.link);
    return std::move(answer.body);
  }
}

absl::StatusOr<std::shared_ptr<const FetchedChart>> ChartFetcher::FetchOci(
    const ChartRef& ref, const FetchScope& scope) {
  const absl::string_view reference = absl::string_view(ref.url).substr(6);  // after oci://
  const size_t slash = reference.find('/');
  const std::string host(reference.substr(0, slash));
  const std::string repository(slash == absl::string_view::npos ? "" : reference.substr(slash + 1));
  bool valid = !host.empty() && host.size() <= 253 && !repository.empty() &&
               repository.size() <= 255 &&
               host.find_first_not_of(
                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") ==
                   std::string::npos;
  for (absl::string_view part : absl::StrSplit(repository, '/')) {
    valid &= !part.empty() && part != "." && part != ".." &&
             part.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") ==
                 absl::string_view::npos;
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat(ref.url.substr(0, 256),
                     " is not a chart in an OCI registry (oci://HOST/PATH/NAME, lower-case path)"));
  }
  const std::string name = repository.substr(repository.rfind('/') + 1);
  const std::string base =
      absl::StrCat(IsLoopbackHost(host) ? "http://" : "https://", host, "/v2/", repository);
  RegistryAuth auth;
  GF_ASSIGN_OR_RETURN(auth.login, LoginFor(ref.url));
  // The tag: the version itself, or the newest the constraint allows of those listed (helm
  // writes a version's "+" as "_" in a tag).
  const std::string wanted(absl::StripAsciiWhitespace(ref.version));
  std::string version = wanted;
  const std::string repository_key = OciRepositoryKey(host, repository);
  if (scope.repos_read != nullptr) scope.repos_read->push_back(repository_key);
  const absl::Time now = RealClock().Now();
  std::shared_ptr<const ChartIndex> listed_tags;
  if (!ExactVersion(wanted)) {
    MutexLock lock(&mu_);
    auto it = indexes_.find(repository_key);
    if (it != indexes_.end() && now - it->second.read < options_.index_ttl) {
      listed_tags = it->second.charts;
    }
  }
  if (!ExactVersion(wanted) && listed_tags == nullptr) {
    // Every page of the tag list, as a registry pages it (Link headers), bounded.
    ChartIndex index;
    std::vector<ChartVersion>& versions = index[name];
    std::string page = base + "/tags/list";
    size_t read = 0;
    for (int pages = 0; !page.empty(); ++pages) {
      if (pages == 100 || read > options_.max_index_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat(base, "/tags/list runs past 100 pages or ", options_.max_index_bytes,
                         " bytes; name a version rather than a constraint"));
      }
      if (!absl::StartsWith(page, base.substr(0, base.find("/v2/") + 1))) {
        return absl::InvalidArgumentError(absl::StrCat(
            base, "/tags/list names its next page on another host: ", page.substr(0, 256)));
      }
      std::string next;
      GF_ASSIGN_OR_RETURN(
          std::string listed,
          RegistryGet(page, "application/json", options_.max_index_bytes - read, &auth, &next));
      read += listed.size();
      const nlohmann::json tags = nlohmann::json::parse(listed, nullptr, false);
      if (!tags.is_object() || !tags.contains("tags") ||
          !(tags["tags"].is_array() || tags["tags"].is_null())) {
        return absl::InvalidArgumentError(absl::StrCat(page, " is not a registry's list of tags"));
      }
      if (tags["tags"].is_array()) {
        for (const nlohmann::json& tag : tags["tags"]) {
          if (tag.is_string()) {
            versions.push_back({absl::StrReplaceAll(tag.get<std::string>(), {{"_", "+"}}), "", ""});
          }
        }
      }
      page = std::move(next);
    }
    listed_tags = std::make_shared<const ChartIndex>(std::move(index));
    MutexLock lock(&mu_);
    indexes_[repository_key] = {now, listed_tags};
  }
  if (listed_tags != nullptr) {
    GF_ASSIGN_OR_RETURN(ChartVersion chosen,
                        ChooseChartVersion(*listed_tags, ref.url, name, wanted));
    version = chosen.version;
  }
  const std::string tag = absl::StrReplaceAll(version, {{"+", "_"}});
  const std::string where = absl::StrCat(ref.url, ":", tag);
  const std::string layer_key = absl::StrCat(repository_key, ":", tag);
  // What a tag names is read again after index_ttl (a tag can be pushed again); what it
  // names, a layer, is its digest's for good.
  std::string digest;
  double size = -1;
  {
    MutexLock lock(&mu_);
    if (auto it = layers_.find(layer_key);
        it != layers_.end() && now - it->second.read < options_.index_ttl) {
      digest = it->second.digest;
    }
  }
  if (digest.empty()) {
    absl::StatusOr<std::string> got = RegistryGet(
        base + "/manifests/" + tag, "application/vnd.oci.image.manifest.v1+json", 4 << 20, &auth);
    // A tag the registry just listed may not be readable yet: Distribution lists (and
    // notifies of) a tag pushed while its manifest's link is still being written, and a
    // registry on an eventually consistent store lags. Asked again a few times, briefly.
    for (absl::Duration wait = absl::Milliseconds(250);
         listed_tags != nullptr && absl::IsNotFound(got.status()) && wait <= absl::Seconds(1);
         wait *= 2) {
      absl::SleepFor(wait);
      got = RegistryGet(base + "/manifests/" + tag, "application/vnd.oci.image.manifest.v1+json",
                        4 << 20, &auth);
    }
    if (!got.ok()) {
      if (listed_tags != nullptr && absl::IsNotFound(got.status())) {
        return absl::UnavailableError(
            absl::StrCat(got.status().message(), " (the registry lists the tag ", tag,
                         " but does not serve it yet; tried again for 2 s)"));
      }
      return got.status();
    }
    std::string manifest_text = *std::move(got);
    const nlohmann::json manifest = nlohmann::json::parse(manifest_text, nullptr, false);
    if (manifest.is_object() && manifest.contains("layers") && manifest["layers"].is_array()) {
      for (const nlohmann::json& layer : manifest["layers"]) {
        if (layer.is_object() && layer.contains("mediaType") &&
            layer["mediaType"] == std::string(kHelmChartLayer) && layer.contains("digest") &&
            layer["digest"].is_string()) {
          digest = layer["digest"].get<std::string>();
          if (layer.contains("size") && layer["size"].is_number()) {
            size = layer["size"].get<double>();
          }
          break;
        }
      }
    }
    if (digest.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " is not a helm chart (its manifest has no layer of type ", kHelmChartLayer, ")"));
    }
  }
  const std::string hex(absl::StripPrefix(digest, "sha256:"));
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(where, "'s chart layer has the digest ",
                                                   digest.substr(0, 100),
                                                   ", which is not a sha256 gitfleet can check"));
  }
  if (size > static_cast<double>(options_.max_archive_bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(where, "'s chart is ", size,
                                                     " bytes, more than the bound of ",
                                                     options_.max_archive_bytes));
  }
  {
    MutexLock lock(&mu_);
    if (layers_.size() >= 4 * options_.max_cached_charts) layers_.clear();
    layers_[layer_key] = {now, digest};
  }
  const std::string key = absl::StrCat("oci://", host, "/", repository, "@", digest);
  {
    MutexLock lock(&mu_);
    if (auto it = charts_.find(key); it != charts_.end()) return it->second.chart;
  }
  GF_ASSIGN_OR_RETURN(std::string archive,
                      RegistryGet(base + "/blobs/" + digest, std::string(kHelmChartLayer),
                                  options_.max_archive_bytes, &auth));
  if (absl::BytesToHexString(crypto::Sha256(archive)) != hex) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     ": the registry sent a chart that is not the layer its manifest names "
                     "(sha256 differs)"));
  }
  GF_ASSIGN_OR_RETURN(std::shared_ptr<const FetchedChart> chart,
                      ChartFromArchive(archive, where, hex, version, options_));
  Remember(key, chart, now);
  return chart;
}

// Dependencies fetched for one render, theirs included.
namespace {
constexpr int kMaxChartDependencies = 32;
}  // namespace

// The dependencies a chart's Chart.yaml lists (a v1 chart's requirements.yaml), with the
// versions its lock file (Chart.lock, requirements.lock) pins when it has one, as `helm
// dependency build` reads them. InvalidArgument naming the file that cannot be read.
absl::StatusOr<std::vector<ChartDependency>> ChartDependencies(
    const std::string& chart, const std::map<std::string, const RepoFile*>& files) {
  const std::string prefix = chart.empty() ? "" : chart + "/";
  auto read = [&](const char* name, const char* field, std::vector<ChartDependency>* out,
                  bool* found) -> absl::Status {
    auto it = files.find(prefix + name);
    *found = it != files.end();
    if (!*found) return absl::OkStatus();
    GF_RETURN_IF_ERROR(CheckYamlBounds(it->second->content, it->first));
    try {
      const YAML::Node doc = YAML::Load(it->second->content);
      if (!doc.IsMap() || !doc[field]) return absl::OkStatus();
      if (!doc[field].IsSequence()) {
        return absl::InvalidArgumentError(absl::StrCat(it->first, ": ", field, " is not a list"));
      }
      for (const YAML::Node& item : doc[field]) {
        if (!item.IsMap() || !item["name"] || !item["name"].IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(it->first, ": a dependency without a name"));
        }
        ChartDependency d{item["name"].Scalar(), "", ""};
        if (item["version"] && item["version"].IsScalar()) d.version = item["version"].Scalar();
        if (item["repository"] && item["repository"].IsScalar()) {
          d.repository = item["repository"].Scalar();
        }
        out->push_back(std::move(d));
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(it->first, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
    }
    return absl::OkStatus();
  };
  std::vector<ChartDependency> listed;
  bool found = false;
  GF_RETURN_IF_ERROR(read("Chart.yaml", "dependencies", &listed, &found));
  if (listed.empty())
    GF_RETURN_IF_ERROR(read("requirements.yaml", "dependencies", &listed, &found));
  if (listed.empty()) return listed;
  std::vector<ChartDependency> locked;
  GF_RETURN_IF_ERROR(read("Chart.lock", "dependencies", &locked, &found));
  if (!found) GF_RETURN_IF_ERROR(read("requirements.lock", "dependencies", &locked, &found));
  for (ChartDependency& d : listed) {
    for (const ChartDependency& l : locked) {
      if (l.name == d.name && l.repository == d.repository && !l.version.empty()) {
        d.version = l.version;  // the lock's exact version
      }
    }
  }
  return listed;
}

// Whether the chart at `chart` holds `name` in its charts/ folder (unpacked, or an archive
// NAME-VERSION.tgz), as helm looks for a dependency.
bool HasSubchart(const std::string& chart, const std::string& name,
                 const std::map<std::string, const RepoFile*>& files) {
  const std::string charts = absl::StrCat(chart.empty() ? "" : chart + "/", "charts/");
  if (files.count(absl::StrCat(charts, name, "/Chart.yaml"))) return true;
  for (auto it = files.lower_bound(absl::StrCat(charts, name, "-"));
       it != files.end() && absl::StartsWith(it->first, absl::StrCat(charts, name, "-")); ++it) {
    if (absl::EndsWith(it->first, ".tgz") &&
        it->first.find('/', charts.size()) == std::string::npos) {
      return true;
    }
  }
  return false;
}

// What `helm dependency build` would put in the charts/ folder of the chart at `chart`
// (and of the charts it adds): each dependency the folder lacks, from a chart repository or
// OCI registry (fetched by `charts`, at the version the lock pins, else the newest the
// constraint allows) or a file:// folder inside the bundle's files. Added to *files (and
// `by_path`), under CHART/charts/NAME/.
absl::Status AddChartDependencies(const std::string& chart, ChartFetcher* charts, int depth,
                                  std::vector<RepoFile>* files, int* fetched,
                                  std::vector<std::string>* notes, const ReadFolder& read_folder,
                                  std::vector<std::string>* read_paths, const FetchScope& scope,
                                  bool* read_remote) {
  std::map<std::string, const RepoFile*> by_path;
  for (const RepoFile& file : *files) by_path[file.path] = &file;
  GF_ASSIGN_OR_RETURN(std::vector<ChartDependency> dependencies, ChartDependencies(chart, by_path));
  std::vector<RepoFile> added;
  std::vector<std::string> subcharts;
  const std::string shown = chart.empty() ? "the chart" : chart;
  for (ChartDependency d : dependencies) {  // a copy: a named repository becomes its URL
    if (HasSubchart(chart, d.name, by_path)) continue;  // vendored, as helm takes it
    const std::string where = absl::StrCat(shown, "'s dependency ", d.name);
    if (d.name.empty() || d.name.find_first_of("/\\") != std::string::npos || d.name == "." ||
        d.name == "..") {
      return absl::InvalidArgumentError(absl::StrCat(where.substr(0, 256), ": not a chart's name"));
    }
    const std::string target = absl::StrCat(chart.empty() ? "" : chart + "/", "charts/", d.name);
    if (d.repository.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       " names no repository and is not in its charts/ folder: vendor it there, or "
                       "give its repository"));
    }
    if (absl::StartsWith(d.repository, "file://")) {
      // A chart folder beside it, as `helm dependency build` packages one: inside the
      // bundle's files only.
      std::string resolved;
      std::vector<std::string> parts;
      bool inside = true;
      for (absl::string_view p :
           absl::StrSplit(absl::StrCat(chart, "/", absl::StripPrefix(d.repository, "file://")), '/',
                          absl::SkipEmpty())) {
        if (p == ".") continue;
        if (p == "..") {
          if (parts.empty()) inside = false;
          if (!parts.empty()) parts.pop_back();
          continue;
        }
        parts.emplace_back(p);
      }
      resolved = absl::StrJoin(parts, "/");
      const std::string from = resolved + "/";
      if (!inside || resolved.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, " is at ", d.repository.substr(0, 256), ", which is outside the repository"));
      }
      if (by_path.count(from + "Chart.yaml") > 0) {
        for (auto it = by_path.lower_bound(from);
             it != by_path.end() && absl::StartsWith(it->first, from); ++it) {
          added.push_back(
              {absl::StrCat(target, "/", it->first.substr(from.size())), it->second->content});
        }
        subcharts.push_back(target);
        continue;
      }
      // A chart elsewhere in the repository (a monorepo's library chart beside the bundle's
      // folder), as helm reads it from a checkout: read at the same commit.
      if (read_folder == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, " is at ", d.repository.substr(0, 256),
            ", which is not a chart in the bundle's folder (a render reads only that folder): "
            "vendor it into charts/, or move it into the chart's folder"));
      }
      absl::StatusOr<std::vector<RepoFile>> folder = read_folder(resolved);
      if (!folder.ok()) {
        return absl::Status(folder.status().code(),
                            absl::StrCat(where, " at ", d.repository.substr(0, 256), ": ",
                                         folder.status().message()));
      }
      bool chart_file = false;
      for (RepoFile& file : *folder) {
        if (!absl::StartsWith(file.path, from)) continue;
        chart_file |= file.path == from + "Chart.yaml";
        added.push_back(
            {absl::StrCat(target, "/", file.path.substr(from.size())), std::move(file.content)});
      }
      if (!chart_file) {
        return absl::InvalidArgumentError(absl::StrCat(where, " is at ",
                                                       d.repository.substr(0, 256), " (", resolved,
                                                       "), which holds no Chart.yaml"));
      }
      if (read_paths != nullptr) read_paths->push_back(resolved);
      if (notes != nullptr) {
        notes->push_back(absl::StrCat("took the chart ", resolved, " for ", where,
                                      ", as helm dependency build does (",
                                      d.repository.substr(0, 256), ")"));
      }
      subcharts.push_back(target);
      continue;
    }
    if (absl::StartsWith(d.repository, "@") || absl::StartsWith(d.repository, "alias:")) {
      // A name helm's own repository list gives: the control plane's names it too.
      absl::string_view name = d.repository;
      if (!absl::ConsumePrefix(&name, "@")) absl::ConsumePrefix(&name, "alias:");
      std::optional<std::string> url =
          charts == nullptr ? std::nullopt : charts->RepositoryNamed(std::string(name));
      if (!url.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, " names the repository ", d.repository.substr(0, 128),
            " by a name helm's own repository list gives it; give the control plane that name "
            "(--chart-repository-names=",
            name.substr(0, 64), "=URL), or write its URL instead"));
      }
      if (notes != nullptr) {
        notes->push_back(absl::StrCat("took the repository ", d.repository.substr(0, 128), " for ",
                                      where, " to be ", *url, " (--chart-repository-names)"));
      }
      d.repository = *url;
    }
    if (UrlCarriesSecret(d.repository)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": its repository ",
                       SecretInUrlRefusal(d.repository, "--chart-credentials=PREFIX=NAME")));
    }
    if (charts == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " is in ", d.repository.substr(0, 256),
          ", and the control plane fetches no charts (start it with --chart-repositories)"));
    }
    if (++*fetched > kMaxChartDependencies) {
      return absl::ResourceExhaustedError(absl::StrCat(where, ": more than ", kMaxChartDependencies,
                                                       " dependencies to fetch, theirs included"));
    }
    const bool oci = absl::StartsWith(d.repository, "oci://");
    ChartRef ref{oci ? "" : d.repository, oci ? "" : d.name, d.version,
                 oci ? absl::StrCat(absl::StripSuffix(d.repository, "/"), "/", d.name) : ""};
    absl::StatusOr<std::shared_ptr<const FetchedChart>> got = charts->Fetch(ref, scope);
    if (!got.ok()) {
      return absl::Status(got.status().code(), absl::StrCat(where, ": ", got.status().message()));
    }
    if (read_remote != nullptr && ChartRefMoves(ref)) *read_remote = true;
    for (const RepoFile& file : (*got)->files) {
      added.push_back({absl::StrCat(target, "/", file.path), file.content});
    }
    subcharts.push_back(target);
    if (notes != nullptr) {
      notes->push_back(absl::StrCat(
          "fetched the chart ", (*got)->name, " ", (*got)->version, " from ", (*got)->url,
          (*got)->digest.empty() ? "" : " (sha256 checked)", " for ", where));
    }
  }
  for (RepoFile& file : added) files->push_back(std::move(file));
  if (depth < 3) {
    for (const std::string& subchart : subcharts) {
      GF_RETURN_IF_ERROR(AddChartDependencies(subchart, charts, depth + 1, files, fetched, notes,
                                              read_folder, read_paths, scope, read_remote));
    }
  }
  return absl::OkStatus();
}

}  // namespace gitfleet
