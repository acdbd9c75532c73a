#include "controlplane/source/submodules.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gitfleet {
namespace {

constexpr size_t kMaxGitmodulesBytes = 64 << 10;
constexpr size_t kMaxSections = 1000;

// Git's config syntax, read from `text` by one cursor. Only what .gitmodules needs is
// kept: the [submodule "NAME"] sections' path and url.
class ConfigReader {
 public:
  explicit ConfigReader(absl::string_view text) : text_(text) {}

  absl::StatusOr<std::vector<Submodule>> Read() {
    while (true) {
      SkipBlank();
      if (AtEnd()) break;
      const char c = text_[pos_];
      if (c == '#' || c == ';') {
        SkipLine();
      } else if (c == '[') {
        if (absl::Status s = Header(); !s.ok()) return s;
      } else if (absl::Status s = KeyValue(); !s.ok()) {
        return s;
      }
    }
    std::vector<Submodule> out;
    for (Submodule& s : sections_) {
      if (!s.path.empty() && !s.url.empty()) out.push_back(std::move(s));
    }
    return out;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }

  void SkipBlank() {
    while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' ||
                        text_[pos_] == '\n')) {
      if (text_[pos_] == '\n') ++line_;
      ++pos_;
    }
  }

  void SkipSpaces() {
    while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r')) ++pos_;
  }

  void SkipLine() {
    while (!AtEnd() && text_[pos_] != '\n') ++pos_;
  }

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(".gitmodules line ", line_, ": ", what));
  }

  static bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.'; }

  // [section], [section "subsection"] or the old [section.subsection].
  absl::Status Header() {
    ++pos_;  // '['
    std::string name;
    while (!AtEnd() && IsNameChar(text_[pos_])) name += absl::ascii_tolower(text_[pos_++]);
    std::string sub;
    bool has_sub = false;
    SkipSpaces();
    if (!AtEnd() && text_[pos_] == '"') {
      ++pos_;
      has_sub = true;
      while (true) {
        if (AtEnd() || text_[pos_] == '\n') return Error("a section name's quote is not closed");
        char c = text_[pos_++];
        if (c == '"') break;
        if (c == '\\') {
          if (AtEnd() || text_[pos_] == '\n') return Error("a section name ends in a backslash");
          c = text_[pos_++];
        }
        sub += c;
      }
    } else if (size_t dot = name.find('.'); dot != std::string::npos) {
      sub = name.substr(dot + 1);
      name.resize(dot);
      has_sub = true;
    }
    if (AtEnd() || text_[pos_] != ']') return Error("a section header without its ']'");
    ++pos_;
    if (name.empty()) return Error("a section header without a name");
    current_ = -1;
    if (name == "submodule" && has_sub) {
      auto it = std::find_if(sections_.begin(), sections_.end(),
                             [&sub](const Submodule& s) { return s.name == sub; });
      if (it == sections_.end()) {
        if (sections_.size() >= kMaxSections) {
          return Error(absl::StrCat("more than ", kMaxSections, " submodules"));
        }
        sections_.push_back({sub, "", "", ""});
        it = sections_.end() - 1;
      }
      current_ = static_cast<int>(it - sections_.begin());
    }
    in_section_ = true;
    return absl::OkStatus();
  }

  // key = value, or a key alone (a boolean).
  absl::Status KeyValue() {
    if (!absl::ascii_isalpha(text_[pos_])) {
      return Error(absl::StrCat("unexpected '", std::string(1, text_[pos_]), "'"));
    }
    if (!in_section_) return Error("a key before any [section]");
    std::string key;
    while (!AtEnd() && (absl::ascii_isalnum(text_[pos_]) || text_[pos_] == '-')) {
      key += absl::ascii_tolower(text_[pos_++]);
    }
    SkipSpaces();
    std::string value;
    if (!AtEnd() && text_[pos_] == '=') {
      ++pos_;
      if (absl::Status s = Value(&value); !s.ok()) return s;
    } else if (!AtEnd() && text_[pos_] != '\n' && text_[pos_] != '#' && text_[pos_] != ';') {
      return Error(absl::StrCat("key \"", key, "\" is followed by neither '=' nor the line's end"));
    }
    if (current_ >= 0) {
      if (key == "path") {
        // As Git reads it: "vendor/lib/" and "./vendor/lib" name vendor/lib.
        absl::string_view path = value;
        while (absl::ConsumePrefix(&path, "./")) {
        }
        while (absl::ConsumeSuffix(&path, "/")) {
        }
        sections_[current_].path = std::string(path);
      }
      if (key == "url") sections_[current_].url = value;
      if (key == "update") sections_[current_].update = value;
    }
    return absl::OkStatus();
  }

  absl::Status Value(std::string* out) {
    SkipSpaces();
    bool quoted = false;
    size_t kept = 0;  // length without trailing blanks outside quotes
    while (!AtEnd()) {
      char c = text_[pos_];
      if (c == '\n') {
        if (quoted) return Error("a value's quote is not closed");
        break;
      }
      ++pos_;
      if (c == '\\') {
        if (AtEnd()) return Error("a value ends in a backslash");
        char e = text_[pos_++];
        if (e == '\r' && !AtEnd() && text_[pos_] == '\n') e = text_[pos_++];
        if (e == '\n') {  // continued on the next line
          ++line_;
          continue;
        }
        switch (e) {
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'b':
            c = '\b';
            break;
          case '"':
            c = '"';
            break;
          case '\\':
            c = '\\';
            break;
          default:
            return Error(absl::StrCat("unknown escape \\", std::string(1, e), " in a value"));
        }
        out->push_back(c);
        kept = out->size();
        continue;
      }
      if (c == '"') {
        quoted = !quoted;
        kept = out->size();
        continue;
      }
      if (!quoted && (c == '#' || c == ';')) {
        SkipLine();
        break;
      }
      out->push_back(c);
      if (quoted || (c != ' ' && c != '\t' && c != '\r')) kept = out->size();
    }
    out->resize(kept);
    return absl::OkStatus();
  }

  const absl::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  bool in_section_ = false;
  int current_ = -1;  // index into sections_ of the submodule section being read
  std::vector<Submodule> sections_;
};

bool HasControlCharacter(absl::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

}  // namespace

absl::StatusOr<std::vector<Submodule>> ParseGitmodules(absl::string_view text) {
  if (text.size() > kMaxGitmodulesBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        ".gitmodules is ", text.size(), " bytes, over the limit of ", kMaxGitmodulesBytes));
  }
  return ConfigReader(text).Read();
}

absl::StatusOr<std::string> SubmoduleUrl(absl::string_view base, absl::string_view url) {
  if (url.empty()) return absl::InvalidArgumentError("its URL is empty");
  if (HasControlCharacter(url)) {
    return absl::InvalidArgumentError("its URL holds a control character");
  }
  if (absl::StartsWith(url, "./") || absl::StartsWith(url, "../")) {
    std::string resolved(base);
    while (absl::EndsWith(resolved, "/")) resolved.pop_back();
    // The part of `base` that names the host (or the root, for a local path), which a
    // "../" may not take off.
    size_t floor = 0;
    if (size_t scheme = resolved.find("://"); scheme != std::string::npos) {
      size_t slash = resolved.find('/', scheme + 3);
      floor = slash == std::string::npos ? resolved.size() : slash;
    }
    absl::string_view rest = url;
    while (true) {
      if (absl::ConsumePrefix(&rest, "./")) continue;
      if (absl::ConsumePrefix(&rest, "../")) {
        size_t slash = resolved.rfind('/');
        if (slash == std::string::npos || slash < floor || resolved.size() <= floor) {
          return absl::InvalidArgumentError(
              absl::StrCat("its URL \"", url, "\" climbs above the host of ", base));
        }
        resolved.resize(slash);
        continue;
      }
      break;
    }
    if (rest == "..")
      return absl::InvalidArgumentError(absl::StrCat("its URL \"", url, "\" names no repository"));
    return rest.empty() ? resolved : absl::StrCat(resolved, "/", rest);
  }
  // scp-like: [user@]host:path, with no scheme and no slash before the colon.
  const size_t colon = url.find(':');
  const size_t slash = url.find('/');
  if (url.find("://") == absl::string_view::npos && colon != absl::string_view::npos && colon > 0 &&
      (slash == absl::string_view::npos || colon < slash) &&
      !absl::StartsWith(url.substr(colon), "::")) {  // transport::address: a remote helper
    absl::string_view path = url.substr(colon + 1);
    absl::ConsumePrefix(&path, "/");
    return absl::StrCat("ssh://", url.substr(0, colon), "/", path);
  }
  return std::string(url);
}

std::string UrlHost(absl::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos || absl::StartsWith(url, "file://")) return "";
  absl::string_view rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != absl::string_view::npos) rest.remove_prefix(at + 1);
  if (absl::StartsWith(rest, "[")) {
    rest = rest.substr(0, rest.find(']') + 1);
  } else {
    rest = rest.substr(0, rest.find(':'));
  }
  return absl::AsciiStrToLower(rest);
}

}  // namespace gitfleet
