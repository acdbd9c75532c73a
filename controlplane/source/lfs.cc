#include "controlplane/source/lfs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/http.h"
#include "controlplane/source/repo_url.h"
#include "nlohmann/json.hpp"

namespace gitfleet {
namespace {

using json = nlohmann::json;

constexpr size_t kBatchSize = 100;
constexpr size_t kMaxBatchAnswerBytes = 4 << 20;
constexpr size_t kMaxHeaders = 16;

bool IsHex64(absl::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

// Whether a password or an object may go to `url`: https, or http on this machine.
bool SafeScheme(absl::string_view url) {
  if (absl::StartsWith(url, "https://")) return true;
  return absl::StartsWith(url, "http://") && IsLoopbackHost(UrlAuthority(url));
}

std::string Shown(absl::string_view text) {
  std::string out(text.substr(0, 256));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

std::string CachePath(const LfsOptions& options, const std::string& oid) {
  return absl::StrCat(options.cache_dir, "/", oid.substr(0, 2), "/", oid);
}

std::optional<std::string> ReadCached(const LfsOptions& options, const LfsPointer& pointer) {
  std::ifstream in(CachePath(options, pointer.oid), std::ios::binary);
  if (!in) return std::nullopt;
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (static_cast<int64_t>(content.size()) != pointer.size) return std::nullopt;
  // Used now: the last the cache's bound deletes.
  std::error_code ignored;
  std::filesystem::last_write_time(CachePath(options, pointer.oid),
                                   std::filesystem::file_time_type::clock::now(), ignored);
  return content;
}

// Deletes the objects used longest ago until the cache is within its bound.
void BoundCache(const LfsOptions& options) {
  struct Entry {
    std::filesystem::file_time_type used;
    std::filesystem::path path;
    uintmax_t size;
  };
  std::vector<Entry> entries;
  uintmax_t total = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(options.cache_dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    const uintmax_t size = it->file_size(error);
    if (error) continue;
    entries.push_back({it->last_write_time(error), it->path(), size});
    total += size;
  }
  if (total <= static_cast<uintmax_t>(options.max_cache_bytes)) return;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const Entry& entry : entries) {
    if (total <= static_cast<uintmax_t>(options.max_cache_bytes)) break;
    if (std::filesystem::remove(entry.path, error)) total -= entry.size;
  }
}

absl::Status WriteCached(const LfsOptions& options, const LfsPointer& pointer,
                         const std::string& content) {
  const std::string path = CachePath(options, pointer.oid);
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", error.message()));
  }
  const std::string temporary = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", temporary));
  }
  std::filesystem::rename(temporary, path, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", error.message()));
  }
  return absl::OkStatus();
}

std::string Who(const LfsLogin* login) {
  if (login != nullptr && !login->headers.empty()) {
    return absl::StrCat("with what git-lfs-authenticate gave over SSH for credential ",
                        login->name);
  }
  return login == nullptr || login->username.empty()
             ? "without a credential"
             : absl::StrCat("with credential ", login->name);
}

// A header a request may carry as given: a token name and a value on one line.
bool CarriableHeader(absl::string_view name, absl::string_view value) {
  if (name.empty() || name.size() > 256 || value.size() > 8192) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return value.find_first_of("\r\n") == absl::string_view::npos;
}

// One object's download, as the batch answer names it.
absl::StatusOr<std::string> Download(const std::string& endpoint, const LfsLogin* login,
                                     const LfsPointer& pointer, const json& action,
                                     const LfsOptions& options) {
  const std::string href = action.value("href", "");
  if (!SafeScheme(href)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the LFS server ", endpoint, " sends object ", pointer.oid.substr(0, 12),
                     " to be fetched from ", Shown(href),
                     ", which is not https (plain http only on this machine)"));
  }
  HttpFetchOptions request;
  request.max_bytes = static_cast<size_t>(options.max_object_bytes);
  request.timeout = options.timeout;
  bool authorized = false;
  if (const json headers = action.value("header", json::object()); headers.is_object()) {
    for (const auto& [name, value] : headers.items()) {
      if (request.headers.size() >= kMaxHeaders || !value.is_string()) continue;
      const std::string text = value.get<std::string>();
      if (name.find_first_of(":\r\n") != std::string::npos ||
          text.find_first_of("\r\n") != std::string::npos) {
        continue;
      }
      authorized |= absl::EqualsIgnoreCase(name, "Authorization");
      request.headers.push_back(absl::StrCat(name, ": ", text));
    }
  }
  // The credential goes to the LFS server's own host only, and only when the answer names
  // no authorization of its own for the download.
  if (login != nullptr && !authorized && UrlAuthority(href) == UrlAuthority(endpoint)) {
    request.username = login->username;
    request.password = login->password;
    for (const std::string& header : login->headers) {
      if (request.headers.size() < kMaxHeaders) request.headers.push_back(header);
    }
  }
  if (login != nullptr) {
    request.ca_pem = login->ca_pem;
    request.client_cert_pem = login->client_cert_pem;
    request.client_key_pem = login->client_key_pem;
  }
  if (absl::Status waiting = WaitingOutRateLimit(href); !waiting.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot fetch LFS object ",
                                               pointer.oid.substr(0, 12), ": ", waiting.message()));
  }
  absl::StatusOr<HttpAnswer> answer = HttpFetch(href, request);
  if (answer.ok()) NoteRateLimit(href, *answer);
  if (absl::IsResourceExhausted(answer.status())) {
    return absl::ResourceExhaustedError(absl::StrCat("LFS object ", pointer.oid.substr(0, 12),
                                                     " is larger than ", options.max_object_bytes,
                                                     " bytes"));
  }
  if (!answer.ok()) return answer.status();
  if (answer->status != 200) {
    return absl::UnavailableError(absl::StrCat("cannot fetch LFS object ",
                                               pointer.oid.substr(0, 12), ": HTTP ", answer->status,
                                               " from ", Shown(href)));
  }
  const std::string digest = absl::BytesToHexString(crypto::Sha256(answer->body));
  if (digest != pointer.oid || static_cast<int64_t>(answer->body.size()) != pointer.size) {
    return absl::DataLossError(
        absl::StrCat("LFS object ", pointer.oid.substr(0, 12), " from ", Shown(href),
                     " is not what its pointer says (", answer->body.size(), " bytes, sha256 ",
                     digest.substr(0, 12), "; the pointer says ", pointer.size, " bytes)"));
  }
  return std::move(answer->body);
}

}  // namespace

std::optional<LfsPointer> ParseLfsPointer(absl::string_view content) {
  if (content.size() > 1024) return std::nullopt;
  if (!absl::StartsWith(content, "version https://git-lfs.github.com/spec/v1\n") &&
      !absl::StartsWith(content, "version https://hawser.github.com/spec/v1\n")) {
    return std::nullopt;
  }
  LfsPointer pointer;
  bool sized = false;
  for (absl::string_view line : absl::StrSplit(content, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "oid sha256:")) {
      if (!IsHex64(line)) return std::nullopt;
      pointer.oid = std::string(line);
    } else if (absl::ConsumePrefix(&line, "size ")) {
      if (!absl::SimpleAtoi(line, &pointer.size) || pointer.size < 0) return std::nullopt;
      sized = true;
    }
  }
  if (pointer.oid.empty() || !sized) return std::nullopt;
  return pointer;
}

std::string LfsConfigUrl(absl::string_view lfsconfig) {
  // As git-lfs finds the endpoint in it: lfs.url, else remote.origin.lfsurl (the source
  // is the remote, named origin as a clone names it); as in Git's config, a key given
  // again replaces the value before.
  enum class Section { kOther, kLfs, kOrigin } section = Section::kOther;
  std::string lfs_url, origin_url;
  for (absl::string_view line : absl::StrSplit(lfsconfig, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      const absl::string_view header =
          absl::StripAsciiWhitespace(line.substr(1, line.find(']') - 1));
      section = Section::kOther;
      if (absl::EqualsIgnoreCase(header, "lfs")) {
        section = Section::kLfs;
      } else if (const size_t space = header.find_first_of(" \t");
                 space != absl::string_view::npos &&
                 absl::EqualsIgnoreCase(header.substr(0, space), "remote")) {
        // [remote "origin"]: the subsection is case-sensitive, as in Git.
        section = absl::StripAsciiWhitespace(header.substr(space)) == "\"origin\""
                      ? Section::kOrigin
                      : Section::kOther;
      } else if (absl::EqualsIgnoreCase(header, "remote.origin")) {  // Git's older form
        section = Section::kOrigin;
      }
      continue;
    }
    if (section == Section::kOther) continue;
    const size_t equals = line.find('=');
    if (equals == absl::string_view::npos) continue;
    const absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, equals));
    if (!absl::EqualsIgnoreCase(key, section == Section::kLfs ? "url" : "lfsurl")) continue;
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(equals + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    (section == Section::kLfs ? lfs_url : origin_url) = std::string(value);
  }
  return lfs_url.empty() ? origin_url : lfs_url;
}

absl::StatusOr<std::string> LfsEndpoint(const std::string& url, const std::string& lfs_url) {
  std::string endpoint;
  if (!lfs_url.empty()) {
    endpoint = lfs_url;
    while (absl::EndsWith(endpoint, "/")) endpoint.pop_back();
  } else {
    std::string host_and_path;  // "host/org/app"
    absl::string_view rest = url;
    if (absl::ConsumePrefix(&rest, "https://") || absl::ConsumePrefix(&rest, "http://")) {
      host_and_path = std::string(url.substr(0, url.find("://") + 3)) + std::string(rest);
    } else if (absl::ConsumePrefix(&rest, "ssh://")) {
      if (size_t at = rest.find('@'); at != absl::string_view::npos && at < rest.find('/')) {
        rest.remove_prefix(at + 1);
      }
      const size_t slash = rest.find('/');
      if (slash == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(Shown(url), " names no repository path"));
      }
      absl::string_view host = rest.substr(0, slash);
      if (size_t colon = host.rfind(':');
          colon != absl::string_view::npos && host.find(']') == absl::string_view::npos) {
        host = host.substr(0, colon);  // git-lfs drops the SSH port
      }
      host_and_path = absl::StrCat("https://", host, rest.substr(slash));
    } else if (rest.find("://") == absl::string_view::npos && rest.find(':') != 0 &&
               rest.find(':') != absl::string_view::npos && !absl::StartsWith(rest, "/")) {
      // scp-like: [user@]host:org/app
      const size_t colon = rest.find(':');
      absl::string_view host = rest.substr(0, colon);
      if (size_t at = host.find('@'); at != absl::string_view::npos) host.remove_prefix(at + 1);
      absl::string_view path = rest.substr(colon + 1);
      absl::ConsumePrefix(&path, "/");
      host_and_path = absl::StrCat("https://", host, "/", path);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "the LFS server of ", Shown(url),
          " cannot be found from its URL: name it in the repository's .lfsconfig (lfs.url)"));
    }
    while (absl::EndsWith(host_and_path, "/")) host_and_path.pop_back();
    if (!absl::EndsWith(host_and_path, ".git")) host_and_path += ".git";
    endpoint = host_and_path + "/info/lfs";
  }
  if (!SafeScheme(endpoint)) {
    return absl::InvalidArgumentError(absl::StrCat("the LFS server ", Shown(endpoint),
                                                   " is not https (plain http only on this "
                                                   "machine)"));
  }
  return endpoint;
}

absl::StatusOr<std::string> LfsAuthenticateCommand(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "ssh://")) {
    return absl::InvalidArgumentError(absl::StrCat(Shown(url), " is not an ssh:// URL"));
  }
  const size_t slash = rest.find('/');
  absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash + 1);
  if (path.empty() || path.size() > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(Shown(url), " names no repository path"));
  }
  for (char c : path) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("/._-~+@").find(c) == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("the path of ", Shown(url), " holds ", Shown(std::string(1, c)),
                       ", which a remote shell would read: name the LFS server in the repository's "
                       ".lfsconfig (lfs.url)"));
    }
  }
  return absl::StrCat("git-lfs-authenticate ", path, " download");
}

absl::StatusOr<LfsSshAccess> ParseLfsAuthenticate(absl::string_view answer) {
  const json parsed = json::parse(answer, nullptr, false);
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("git-lfs-authenticate answered no JSON object: ",
                                                   Shown(std::string(answer.substr(0, 80)))));
  }
  LfsSshAccess access;
  if (parsed.contains("href")) {
    if (!parsed["href"].is_string()) {
      return absl::InvalidArgumentError("git-lfs-authenticate's href is not a string");
    }
    access.href = parsed["href"].get<std::string>();
    while (absl::EndsWith(access.href, "/")) access.href.pop_back();
    if (!access.href.empty() && !SafeScheme(access.href)) {
      return absl::InvalidArgumentError(
          absl::StrCat("git-lfs-authenticate names the LFS server ", Shown(access.href),
                       ", which is not https (plain http only on this machine)"));
    }
  }
  const json headers = parsed.value("header", json::object());
  if (!headers.is_object()) {
    return absl::InvalidArgumentError("git-lfs-authenticate's header is not an object");
  }
  for (const auto& [name, value] : headers.items()) {
    if (!value.is_string() || !CarriableHeader(name, value.get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "git-lfs-authenticate gives header ", Shown(name), ", which a request cannot carry"));
    }
    if (access.headers.size() == kMaxHeaders) {
      return absl::InvalidArgumentError(
          absl::StrCat("git-lfs-authenticate gives more than ", kMaxHeaders, " headers"));
    }
    access.headers.push_back(absl::StrCat(name, ": ", value.get<std::string>()));
  }
  return access;
}

absl::StatusOr<std::vector<std::string>> FetchLfsObjects(const std::string& endpoint,
                                                         const LfsLogin* login,
                                                         const std::vector<LfsPointer>& pointers,
                                                         const LfsOptions& options) {
  std::vector<std::string> contents(pointers.size());
  std::map<std::string, std::vector<size_t>> missing;  // oid: where it goes
  std::map<std::string, LfsPointer> wanted;
  for (size_t i = 0; i < pointers.size(); ++i) {
    const LfsPointer& pointer = pointers[i];
    if (!IsHex64(pointer.oid)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LFS pointer names ", Shown(pointer.oid), ", which is no sha256 object id"));
    }
    if (pointer.size > options.max_object_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("LFS object ", pointer.oid.substr(0, 12),
                                                       " is ", pointer.size, " bytes; at most ",
                                                       options.max_object_bytes));
    }
    if (std::optional<std::string> cached = ReadCached(options, pointer)) {
      contents[i] = *std::move(cached);
      continue;
    }
    missing[pointer.oid].push_back(i);
    wanted[pointer.oid] = pointer;
  }
  std::vector<LfsPointer> batch;
  auto run_batch = [&]() -> absl::Status {
    json request = {{"operation", "download"},
                    {"transfers", json::array({"basic"})},
                    {"hash_algo", "sha256"},
                    {"objects", json::array()}};
    for (const LfsPointer& pointer : batch) {
      request["objects"].push_back({{"oid", pointer.oid}, {"size", pointer.size}});
    }
    HttpFetchOptions post;
    post.method = "POST";
    post.body = request.dump();
    post.max_bytes = kMaxBatchAnswerBytes;
    post.timeout = options.timeout;
    post.headers = {"Accept: application/vnd.git-lfs+json",
                    "Content-Type: application/vnd.git-lfs+json"};
    if (login != nullptr) {
      post.username = login->username;
      post.password = login->password;
      post.ca_pem = login->ca_pem;
      post.client_cert_pem = login->client_cert_pem;
      post.client_key_pem = login->client_key_pem;
      for (const std::string& header : login->headers) post.headers.push_back(header);
    }
    const std::string batch_url = endpoint + "/objects/batch";
    if (absl::Status waiting = WaitingOutRateLimit(batch_url); !waiting.ok()) {
      return absl::UnavailableError(
          absl::StrCat("the LFS server ", endpoint, ": ", waiting.message()));
    }
    absl::StatusOr<HttpAnswer> answer = HttpFetch(batch_url, post);
    if (!answer.ok()) return answer.status();
    if (std::optional<absl::Duration> wait = RateLimitWait(*answer, absl::Now())) {
      // GitHub's secondary limit is a 403 too: not a refusal of the credential.
      NoteRateLimit(batch_url, *answer);
      return absl::UnavailableError(
          absl::StrCat("the LFS server ", endpoint, " answered with a rate limit (HTTP ",
                       answer->status, "): not asked again for ", absl::FormatDuration(*wait)));
    }
    if (answer->status == 401 || answer->status == 403) {
      return absl::PermissionDeniedError(absl::StrCat("the LFS server ", endpoint,
                                                      " refuses the control plane (HTTP ",
                                                      answer->status, ", ", Who(login), ")"));
    }
    if (answer->status == 404) {
      return absl::NotFoundError(absl::StrCat("no LFS server at ", endpoint,
                                              " (HTTP 404): name it in the repository's "
                                              ".lfsconfig (lfs.url)"));
    }
    if (answer->status != 200) {
      return absl::UnavailableError(
          absl::StrCat("the LFS server ", endpoint, " answered HTTP ", answer->status));
    }
    const json parsed = json::parse(answer->body, nullptr, false);
    if (!parsed.is_object() || !parsed.contains("objects") || !parsed["objects"].is_array()) {
      return absl::UnavailableError(
          absl::StrCat("the LFS server ", endpoint, " answered no batch of objects"));
    }
    const std::string transfer = parsed.value("transfer", "basic");
    if (transfer != "basic") {
      return absl::UnavailableError(absl::StrCat("the LFS server ", endpoint, " answers with the ",
                                                 Shown(transfer),
                                                 " transfer; gitfleet speaks basic"));
    }
    for (const json& object : parsed["objects"]) {
      if (!object.is_object()) continue;
      const std::string oid = object.value("oid", "");
      auto it = wanted.find(oid);
      if (it == wanted.end() || missing.count(oid) == 0) continue;
      const LfsPointer& pointer = it->second;
      if (object.contains("error")) {
        const json& error = object["error"];
        const int code = error.is_object() ? error.value("code", 0) : 0;
        const std::string message = error.is_object() ? error.value("message", "") : "";
        if (code == 404 || code == 410) {
          return absl::NotFoundError(absl::StrCat("the LFS server ", endpoint,
                                                  " does not have object ", oid.substr(0, 12), " (",
                                                  Shown(message), ")"));
        }
        return absl::UnavailableError(absl::StrCat("the LFS server ", endpoint,
                                                   " cannot give object ", oid.substr(0, 12), ": ",
                                                   code, " ", Shown(message)));
      }
      const json actions = object.value("actions", json::object());
      if (!actions.is_object() || !actions.contains("download") ||
          !actions["download"].is_object()) {
        return absl::NotFoundError(absl::StrCat(
            "the LFS server ", endpoint, " gives no download of object ", oid.substr(0, 12)));
      }
      absl::StatusOr<std::string> content =
          Download(endpoint, login, pointer, actions["download"], options);
      if (!content.ok()) return content.status();
      if (absl::Status kept = WriteCached(options, pointer, *content); !kept.ok()) return kept;
      for (size_t index : missing[oid]) contents[index] = *content;
      missing.erase(oid);
    }
    for (const LfsPointer& pointer : batch) {
      if (missing.count(pointer.oid) > 0) {
        return absl::NotFoundError(absl::StrCat("the LFS server ", endpoint,
                                                " does not answer for object ",
                                                pointer.oid.substr(0, 12)));
      }
    }
    return absl::OkStatus();
  };
  for (const auto& [oid, indexes] : std::map<std::string, std::vector<size_t>>(missing)) {
    batch.push_back(wanted[oid]);
    if (batch.size() == kBatchSize) {
      if (absl::Status s = run_batch(); !s.ok()) return s;
      batch.clear();
    }
  }
  if (!batch.empty()) {
    if (absl::Status s = run_batch(); !s.ok()) return s;
  }
  if (!wanted.empty()) BoundCache(options);
  return contents;
}

}  // namespace gitfleet
