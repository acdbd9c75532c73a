#include "controlplane/render/sops.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/manifest/yaml.h"
#include "common/names.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

// SOPS's MAC over only the encrypted values starts with these bytes (sha256("sops")), so
// that it never equals a MAC over every value.
constexpr unsigned char kMacOnlyEncryptedInit[] = {
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69};
constexpr size_t kMaxFileBytes = 4 << 20;

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back as `v`,
// never an exponent.
std::string FormatFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[512];
  std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::fixed);
  return std::string(buffer, result.ptr);
}

// A YAML 1.2 float as yaml.v3 reads one (".5", "1e3", "-.inf").
std::optional<double> ParseYamlFloat(const std::string& plain) {
  static const LazyRE2 kFloat = {R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)"};
  if (plain == ".inf" || plain == ".Inf" || plain == ".INF" || plain == "+.inf" ||
      plain == "+.Inf" || plain == "+.INF") {
    return HUGE_VAL;
  }
  if (plain == "-.inf" || plain == "-.Inf" || plain == "-.INF") return -HUGE_VAL;
  if (plain == ".nan" || plain == ".NaN" || plain == ".NAN") return std::nan("");
  if (!RE2::FullMatch(plain, *kFloat)) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(plain.c_str(), &end);
  if (end != plain.c_str() + plain.size()) return std::nullopt;
  return v;
}

// Go's strconv.ParseInt(s, 0, 64): a sign, then 0x, 0o, 0b or a leading 0 (octal).
std::optional<int64_t> ParseGoInt(std::string s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s = s.substr(1);
  }
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s = s.substr(2);
  } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O')) {
    base = 8;
    s = s.substr(2);
  } else if (s.size() > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
    base = 2;
    s = s.substr(2);
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s = s.substr(1);
  }
  if (s.empty()) return std::nullopt;
  uint64_t value = 0;
  std::from_chars_result result = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (result.ec != std::errc() || result.ptr != s.data() + s.size()) return std::nullopt;
  if (negative) {
    if (value > static_cast<uint64_t>(INT64_MAX) + 1) return std::nullopt;
    return static_cast<int64_t>(0 - value);
  }
  if (value > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(value);
}

// What SOPS hashes for an unencrypted scalar: the value as yaml.v3 reads it, written as
// SOPS's ToBytes writes it; nullopt for a null (which SOPS skips).
std::optional<std::string> MacBytesOfScalar(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  const std::string& s = node.Scalar();
  if (tag == "!" || tag == "tag:yaml.org,2002:str" || tag == "tag:yaml.org,2002:binary") return s;
  if (tag != "?") {
    // Another explicit tag (!!int, !!bool, !!float, a custom one): read as its text.
    return s;
  }
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return std::nullopt;
  if (s == "true" || s == "True" || s == "TRUE") return std::string("True");
  if (s == "false" || s == "False" || s == "FALSE") return std::string("False");
  const std::string plain = absl::StrReplaceAll(s, {{"_", ""}});
  if (!plain.empty() &&
      (absl::ascii_isdigit(plain[0]) || plain[0] == '-' || plain[0] == '+' || plain[0] == '.')) {
    if (std::optional<int64_t> v = ParseGoInt(plain)) return absl::StrCat(*v);
    if (std::optional<double> v = ParseYamlFloat(plain)) return FormatFloat(*v);
  }
  return s;
}

// The keys one key group's share of the data key (or the data key itself, with one group)
// is encrypted for.
struct KeyGroup {
  std::vector<std::pair<std::string, std::string>> age;  // recipient, armored data key
  std::vector<std::pair<std::string, std::string>> pgp;  // fingerprint, armored data key
  std::vector<std::string> other_keys;                   // kms, ... that are set
};

struct Metadata {
  std::string last_modified;
  std::string mac;
  // The top-level lists as one group, or the key_groups the data key is split across
  // (Shamir's secret sharing), any shamir_threshold of which give it back.
  std::vector<KeyGroup> groups;
  size_t shamir_threshold = 0;
  std::string unencrypted_suffix;
  std::string encrypted_suffix;
  std::unique_ptr<RE2> unencrypted_regex;
  std::unique_ptr<RE2> encrypted_regex;
  bool mac_only_encrypted = false;
};

std::string ScalarOr(const YAML::Node& node, const std::string& fallback = "") {
  return node && node.IsScalar() ? node.Scalar() : fallback;
}

absl::StatusOr<Metadata> ReadMetadata(const YAML::Node& sops) {
  Metadata out;
  out.last_modified = ScalarOr(sops["lastmodified"]);
  out.mac = ScalarOr(sops["mac"]);
  if (out.mac.empty()) return absl::InvalidArgumentError("its sops metadata has no mac");
  for (const char* unread : {"unencrypted_comment_regex", "encrypted_comment_regex"}) {
    if (!ScalarOr(sops[unread]).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("it chooses its encrypted values by comments (", unread,
                       "), which gitfleet does not read: use encrypted_regex or a suffix instead"));
    }
  }
  // One group's keys, from the top level or an entry of key_groups.
  auto read_group = [](const YAML::Node& node) -> absl::StatusOr<KeyGroup> {
    KeyGroup group;
    if (const YAML::Node age = node["age"]; age && age.IsSequence()) {
      if (age.size() > 64) return absl::InvalidArgumentError("it has more than 64 age recipients");
      for (const auto& entry : age) {
        if (!entry.IsMap()) return absl::InvalidArgumentError("an age entry is not a mapping");
        group.age.emplace_back(ScalarOr(entry["recipient"], "(no recipient)"),
                               ScalarOr(entry["enc"]));
      }
    }
    if (const YAML::Node pgp = node["pgp"]; pgp && pgp.IsSequence()) {
      if (pgp.size() > 64) return absl::InvalidArgumentError("it has more than 64 PGP keys");
      for (const auto& entry : pgp) {
        if (!entry.IsMap()) return absl::InvalidArgumentError("a pgp entry is not a mapping");
        group.pgp.emplace_back(ScalarOr(entry["fp"], "(no fingerprint)"), ScalarOr(entry["enc"]));
      }
    }
    for (const char* kind : {"kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"}) {
      const YAML::Node keys = node[kind];
      if (keys && keys.IsSequence() && keys.size() > 0) group.other_keys.push_back(kind);
    }
    return group;
  };
  if (const YAML::Node groups = sops["key_groups"];
      groups && groups.IsSequence() && groups.size() > 0) {
    if (groups.size() > 32) return absl::InvalidArgumentError("it has more than 32 key groups");
    for (const auto& entry : groups) {
      if (!entry.IsMap()) return absl::InvalidArgumentError("a key group is not a mapping");
      absl::StatusOr<KeyGroup> group = read_group(entry);
      if (!group.ok()) return group.status();
      out.groups.push_back(*std::move(group));
    }
    // SOPS writes the threshold it split with; none means every group (its default).
    const std::string threshold = ScalarOr(sops["shamir_threshold"], "0");
    int value = 0;
    if (!absl::SimpleAtoi(threshold, &value) || value < 0 ||
        value > static_cast<int>(out.groups.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "its shamir_threshold (", threshold.substr(0, 16), ") is not a count of its key groups"));
    }
    out.shamir_threshold = value == 0 ? out.groups.size() : static_cast<size_t>(value);
  } else {
    absl::StatusOr<KeyGroup> group = read_group(sops);
    if (!group.ok()) return group.status();
    out.groups.push_back(*std::move(group));
  }
  out.unencrypted_suffix = ScalarOr(sops["unencrypted_suffix"]);
  out.encrypted_suffix = ScalarOr(sops["encrypted_suffix"]);
  for (auto [field, regex] : {std::pair{"unencrypted_regex", &out.unencrypted_regex},
                              std::pair{"encrypted_regex", &out.encrypted_regex}}) {
    const std::string pattern = ScalarOr(sops[field]);
    if (pattern.empty()) continue;
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(1 << 20);
    *regex = std::make_unique<RE2>(pattern, options);
    if (!(*regex)->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("its ", field, " is not a regular expression"));
    }
  }
  const std::string mac_only = absl::AsciiStrToLower(ScalarOr(sops["mac_only_encrypted"]));
  out.mac_only_encrypted = mac_only == "true";
  return out;
}

// SOPS's rule for whether the value at `path` (its map keys) is encrypted.
bool ShouldBeEncrypted(const Metadata& meta, const std::vector<std::string>& path) {
  bool encrypted = true;
  if (!meta.unencrypted_suffix.empty()) {
    for (const std::string& key : path) {
      if (absl::EndsWith(key, meta.unencrypted_suffix)) {
        encrypted = false;
        break;
      }
    }
  }
  if (!meta.encrypted_suffix.empty()) {
    encrypted = false;
    for (const std::string& key : path) {
      if (absl::EndsWith(key, meta.encrypted_suffix)) {
        encrypted = true;
        break;
      }
    }
  }
  if (meta.unencrypted_regex != nullptr) {
    for (const std::string& key : path) {
      if (RE2::PartialMatch(key, *meta.unencrypted_regex)) {
        encrypted = false;
        break;
      }
    }
  }
  if (meta.encrypted_regex != nullptr) {
    encrypted = false;
    for (const std::string& key : path) {
      if (RE2::PartialMatch(key, *meta.encrypted_regex)) {
        encrypted = true;
        break;
      }
    }
  }
  return encrypted;
}

struct EncryptedValue {
  std::string data, iv, tag, type;
};

// "ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]", as SOPS writes a value.
std::optional<EncryptedValue> ParseEncrypted(absl::string_view value) {
  static const LazyRE2 kFormat = {
      R"(ENC\[AES256_GCM,data:([^,]*),iv:([^,]+),tag:([^,]+),type:([a-z0-9]+)\])"};
  std::string data, iv, tag, type;
  if (!RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *kFormat, &data, &iv, &tag,
                      &type)) {
    return std::nullopt;
  }
  EncryptedValue out;
  out.type = type;
  if (!absl::Base64Unescape(data, &out.data) || !absl::Base64Unescape(iv, &out.iv) ||
      !absl::Base64Unescape(tag, &out.tag) || out.tag.size() != 16 || out.iv.empty()) {
    return std::nullopt;
  }
  return out;
}

absl::StatusOr<std::string> DecryptValue(const std::string& key, absl::string_view value,
                                         const std::string& aad) {
  std::optional<EncryptedValue> parsed = ParseEncrypted(value);
  if (!parsed.has_value()) {
    return absl::InvalidArgumentError("is not a value SOPS encrypted (ENC[AES256_GCM,...])");
  }
  absl::StatusOr<std::string> plain =
      crypto::AeadOpen(crypto::Aead::kAes256Gcm, key, parsed->iv, parsed->data, parsed->tag, aad);
  if (!plain.ok()) {
    return absl::InvalidArgumentError(
        "does not authenticate: it was changed, or moved from another key, after encryption");
  }
  return *std::move(plain);
}

// Walks one document's tree: decrypts what the rules say is encrypted, feeds the MAC, and
// builds the plaintext tree.
class Walker {
 public:
  Walker(const Metadata& meta, const std::string& key) : meta_(meta), key_(key) {
    if (meta_.mac_only_encrypted) {
      hashed_.append(reinterpret_cast<const char*>(kMacOnlyEncryptedInit),
                     sizeof(kMacOnlyEncryptedInit));
    }
  }

  absl::StatusOr<YAML::Node> Walk(const YAML::Node& node, std::vector<std::string>* path) {
    switch (node.Type()) {
      case YAML::NodeType::Map: {
        YAML::Node out(YAML::NodeType::Map);
        for (const auto& entry : node) {
          if (!entry.first.IsScalar()) {
            return absl::InvalidArgumentError("it has a key that is not a string");
          }
          if (path->empty() && entry.first.Scalar() == "sops") continue;
          path->push_back(entry.first.Scalar());
          absl::StatusOr<YAML::Node> value = Walk(entry.second, path);
          path->pop_back();
          if (!value.ok()) return value.status();
          out.force_insert(YAML::Clone(entry.first), *value);
        }
        return out;
      }
      case YAML::NodeType::Sequence: {
        YAML::Node out(YAML::NodeType::Sequence);
        for (const auto& item : node) {
          absl::StatusOr<YAML::Node> value = Walk(item, path);
          if (!value.ok()) return value.status();
          out.push_back(*value);
        }
        return out;
      }
      case YAML::NodeType::Scalar:
        return Leaf(node, *path);
      default:
        return YAML::Node(YAML::NodeType::Null);
    }
  }

  // The MAC SOPS computes over the values walked: upper-case hex of SHA-512.
  std::string Mac() const {
    return absl::AsciiStrToUpper(absl::BytesToHexString(crypto::Sha512(hashed_)));
  }

 private:
  absl::StatusOr<YAML::Node> Leaf(const YAML::Node& node, const std::vector<std::string>& path) {
    const bool encrypted = ShouldBeEncrypted(meta_, path);
    if (!encrypted) {
      if (!meta_.mac_only_encrypted) {
        if (std::optional<std::string> bytes = MacBytesOfScalar(node)) hashed_ += *bytes;
      }
      return YAML::Clone(node);
    }
    // SOPS leaves an empty string as it is.
    if (node.Scalar().empty() && node.Tag() == "!") {
      return YAML::Clone(node);
    }
    const std::string where = absl::StrJoin(path, ".");
    std::optional<EncryptedValue> parsed = ParseEncrypted(node.Scalar());
    absl::StatusOr<std::string> plain =
        DecryptValue(key_, node.Scalar(), absl::StrCat(absl::StrJoin(path, ":"), ":"));
    if (!plain.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the value at ", where.empty() ? "(top)" : where, " ", plain.status().message()));
    }
    YAML::Node out;
    std::string bytes;
    const std::string& type = parsed->type;
    if (type == "str" || type == "bytes") {
      bytes = *plain;
      out = YAML::Node(*plain);
      out.SetTag("!");  // a string, quoted when it would read as anything else
    } else if (type == "int" || type == "int64") {
      int64_t v = 0;
      if (!absl::SimpleAtoi(*plain, &v)) {
        return absl::InvalidArgumentError(absl::StrCat("the value at ", where, " is not an int"));
      }
      bytes = absl::StrCat(v);
      out = YAML::Node(bytes);
    } else if (type == "float") {
      double v = 0;
      if (!absl::SimpleAtod(*plain, &v)) {
        return absl::InvalidArgumentError(absl::StrCat("the value at ", where, " is not a float"));
      }
      bytes = FormatFloat(v);
      out = YAML::Node(bytes);
    } else if (type == "bool") {
      const std::string lower = absl::AsciiStrToLower(*plain);
      const bool truth = lower == "true" || lower == "t" || lower == "1";
      if (!truth && lower != "false" && lower != "f" && lower != "0") {
        return absl::InvalidArgumentError(absl::StrCat("the value at ", where, " is not a bool"));
      }
      bytes = truth ? "True" : "False";
      out = YAML::Node(truth ? "true" : "false");
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("the value at ", where, " has a type SOPS does not write (", type, ")"));
    }
    hashed_ += bytes;
    return out;
  }

  const Metadata& meta_;
  const std::string& key_;
  std::string hashed_;
};

// GF(2^8) multiplication modulo x^8 + x^4 + x^3 + x + 1, the field of the Shamir's secret
// sharing SOPS splits data keys with (HashiCorp Vault's).
uint8_t GfMultiply(uint8_t a, uint8_t b) {
  uint8_t out = 0;
  for (int i = 0; i < 8; ++i) {
    if (b & 1) out ^= a;
    const bool carry = a & 0x80;
    a = static_cast<uint8_t>(a << 1);
    if (carry) a ^= 0x1b;
    b >>= 1;
  }
  return out;
}

uint8_t GfInverse(uint8_t a) {  // a^254; a is never 0 here
  uint8_t out = 1;
  for (int i = 0; i < 254; ++i) out = GfMultiply(out, a);
  return out;
}

}  // namespace

absl::StatusOr<std::string> CombineShamirShares(const std::vector<std::string>& shares) {
  if (shares.size() < 2 || shares.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat(shares.size(), " shares; between 2 and 255 combine"));
  }
  const size_t size = shares[0].size();
  if (size < 2) return absl::InvalidArgumentError("a share is shorter than 2 bytes");
  std::vector<uint8_t> xs;
  for (const std::string& share : shares) {
    if (share.size() != size) return absl::InvalidArgumentError("the shares differ in length");
    const uint8_t x = static_cast<uint8_t>(share.back());  // its point, after the values
    if (x == 0 || std::find(xs.begin(), xs.end(), x) != xs.end()) {
      return absl::InvalidArgumentError("two shares are for the same point, or one for none");
    }
    xs.push_back(x);
  }
  // Lagrange interpolation at 0, byte by byte: in this field, subtraction is xor.
  std::vector<uint8_t> basis(xs.size(), 1);
  for (size_t i = 0; i < xs.size(); ++i) {
    for (size_t j = 0; j < xs.size(); ++j) {
      if (i != j) basis[i] = GfMultiply(basis[i], GfMultiply(xs[j], GfInverse(xs[i] ^ xs[j])));
    }
  }
  std::string secret(size - 1, '\0');
  for (size_t byte = 0; byte + 1 < size; ++byte) {
    uint8_t value = 0;
    for (size_t i = 0; i < shares.size(); ++i) {
      value ^= GfMultiply(static_cast<uint8_t>(shares[i][byte]), basis[i]);
    }
    secret[byte] = static_cast<char>(value);
  }
  return secret;
}

namespace {

// What one group's keys give (the data key, or the group's share of it: `size` bytes), from
// the first age entry, then PGP entry, one of `keys` opens (SOPS's own order). NotFound when
// none of `keys` is the group's; `theirs` gets the group's keys.
absl::StatusOr<std::string> GroupKey(const KeyGroup& group, const SopsKeys& keys, size_t size,
                                     std::vector<std::string>* theirs) {
  absl::Status broken;  // the first entry a key was for but could not open
  auto attempt = [&](const std::string& who,
                     absl::StatusOr<std::string> key) -> std::optional<std::string> {
    if (absl::IsNotFound(key.status())) return std::nullopt;
    if (key.ok() && key->size() != size) {
      key = absl::InvalidArgumentError(absl::StrCat("it is not ", size, " bytes"));
    }
    if (!key.ok()) {
      // Another entry may still open: a file is for several keys.
      if (broken.ok()) {
        broken = absl::InvalidArgumentError(
            absl::StrCat("its data key for ", who, ": ", key.status().message()));
      }
      return std::nullopt;
    }
    return *std::move(key);
  };
  for (const auto& [recipient, enc] : group.age) {
    theirs->push_back(recipient);
    if (keys.age == nullptr) continue;
    if (std::optional<std::string> key = attempt(recipient, keys.age->Decrypt(enc, 1024))) {
      return *std::move(key);
    }
  }
  for (const auto& [fingerprint, enc] : group.pgp) {
    theirs->push_back(absl::StrCat("PGP ", fingerprint));
    if (keys.pgp == nullptr) continue;
    if (std::optional<std::string> key = attempt(absl::StrCat("PGP ", fingerprint),
                                                 keys.pgp->Decrypt(enc, 1024, keys.pgp_only))) {
      return *std::move(key);
    }
  }
  if (!broken.ok()) return broken;
  return absl::NotFoundError("none of the control plane's keys");
}

// The data key: from the one group, or combined from the shares of shamir_threshold groups
// (as SOPS does: each group's share from the first of its keys that opens).
absl::StatusOr<std::string> DataKey(const Metadata& meta, const SopsKeys& keys) {
  std::vector<std::string> others;
  bool readable = false;
  for (const KeyGroup& group : meta.groups) {
    readable |= !group.age.empty() || !group.pgp.empty();
    others.insert(others.end(), group.other_keys.begin(), group.other_keys.end());
  }
  std::sort(others.begin(), others.end());
  others.erase(std::unique(others.begin(), others.end()), others.end());
  if (!readable) {
    return absl::InvalidArgumentError(absl::StrCat(
        "its data key is encrypted for ", others.empty() ? "no key" : absl::StrJoin(others, ", "),
        " only; gitfleet decrypts with age identities and PGP keys: add a recipient of the "
        "control plane's (sops updatekeys)"));
  }
  const bool split = meta.groups.size() > 1;
  std::vector<std::string> theirs;
  std::vector<std::string> shares;
  absl::Status broken;
  for (const KeyGroup& group : meta.groups) {
    absl::StatusOr<std::string> key = GroupKey(group, keys, split ? 33 : 32, &theirs);
    if (key.ok() && !split) return key;
    if (key.ok()) {
      shares.push_back(*std::move(key));
      if (shares.size() == meta.shamir_threshold) break;
    } else if (!absl::IsNotFound(key.status()) && broken.ok()) {
      broken = key.status();
    }
  }
  if (split && shares.size() >= meta.shamir_threshold) {
    absl::StatusOr<std::string> key = CombineShamirShares(shares);
    if (key.ok() && key->size() != 32) key = absl::InvalidArgumentError("it is not 32 bytes");
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("its data key, combined from the shares of ",
                                                     shares.size(),
                                                     " key groups: ", key.status().message()));
    }
    return key;
  }
  if (!broken.ok()) return broken;
  std::vector<std::string> ours;
  if (keys.age != nullptr) ours = keys.age->Recipients();
  if (keys.pgp != nullptr) {
    for (const std::string& fingerprint : keys.pgp->fingerprints()) {
      if (keys.pgp_only != nullptr && std::find(keys.pgp_only->begin(), keys.pgp_only->end(),
                                                fingerprint) == keys.pgp_only->end()) {
        continue;
      }
      ours.push_back(absl::StrCat("PGP ", fingerprint));
    }
  }
  const std::string said =
      split ? absl::StrCat("its data key is split across ", meta.groups.size(), " key groups, any ",
                           meta.shamir_threshold,
                           " of which open it (Shamir's secret sharing), and the control "
                           "plane's keys open ",
                           shares.size(), "; the groups are for ", ListNames(theirs, 5))
            : absl::StrCat("it is encrypted for ", ListNames(theirs, 5));
  return absl::NotFoundError(absl::StrCat(
      said, ", and the control plane's keys are ", ours.empty() ? "none" : ListNames(ours, 5),
      ": add one of them (sops updatekeys), or the file's key to --sops-age-key-file or "
      "--sops-pgp-key-file"));
}

// RFC 3339 as Go's time.Format(time.RFC3339) writes it back: fractional seconds dropped.
std::string MacAad(const std::string& last_modified) {
  static const LazyRE2 kFraction = {R"((T\d\d:\d\d:\d\d)\.\d+)"};
  std::string out = last_modified;
  RE2::Replace(&out, *kFraction, R"(\1)");
  return out;
}

}  // namespace

bool IsSopsFile(absl::string_view content) {
  if (!absl::StrContains(content, "sops") || !absl::StrContains(content, "mac") ||
      content.size() > kMaxFileBytes) {
    return false;
  }
  if (!CheckYamlBounds(content, "").ok()) return false;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(content));
    if (docs.empty() || !docs[0].IsMap()) return false;
    const YAML::Node& first = docs[0];
    const YAML::Node sops = first["sops"];
    return sops && sops.IsMap() && sops["mac"];
  } catch (const YAML::Exception&) {
    return false;
  }
}

namespace {

// The formats SOPS writes, by the file's name as SOPS and Flux choose them.
enum class Format { kYaml, kJson, kDotenv, kIni, kBinary };

Format FormatOf(absl::string_view path) {
  if (absl::EndsWith(path, ".yaml") || absl::EndsWith(path, ".yml")) return Format::kYaml;
  if (absl::EndsWith(path, ".json")) return Format::kJson;
  if (absl::EndsWith(path, ".env")) return Format::kDotenv;
  if (absl::EndsWith(path, ".ini")) return Format::kIni;
  return Format::kBinary;
}

// JSON in the node's key order, as SOPS writes a decrypted .json file: quoted scalars are
// strings, plain ones null, booleans or numbers when they read so.
void EmitJson(const YAML::Node& node, std::string* out) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      out->push_back('{');
      bool first = true;
      for (const auto& entry : node) {
        if (!first) out->push_back(',');
        first = false;
        out->append(nlohmann::json(entry.first.Scalar()).dump());
        out->push_back(':');
        EmitJson(entry.second, out);
      }
      out->push_back('}');
      return;
    }
    case YAML::NodeType::Sequence: {
      out->push_back('[');
      bool first = true;
      for (const auto& item : node) {
        if (!first) out->push_back(',');
        first = false;
        EmitJson(item, out);
      }
      out->push_back(']');
      return;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() != "!") {
        if (s == "true" || s == "false" || s == "null") {
          out->append(s);
          return;
        }
        const std::optional<double> number = ParseYamlFloat(s);
        if (ParseGoInt(s).has_value() || (number.has_value() && std::isfinite(*number))) {
          out->append(s);
          return;
        }
      }
      out->append(nlohmann::json(s).dump());
      return;
    }
    default:
      out->append("null");
  }
}

// A dotenv file as SOPS reads one: KEY=VALUE lines (a "\n" in a value is a newline), "#"
// comments (dropped here), and its metadata under sops_ keys, flattened
// ("sops_age__list_0__map_enc"). Returns the document and the metadata as YAML nodes.
absl::StatusOr<std::pair<YAML::Node, YAML::Node>> ParseDotenv(absl::string_view content) {
  YAML::Node doc(YAML::NodeType::Map);
  YAML::Node meta(YAML::NodeType::Map);
  int number = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("line ", number, " is not KEY=VALUE"));
    }
    const std::string key(line.substr(0, eq));
    const std::string value = absl::StrReplaceAll(line.substr(eq + 1), {{"\\n", "\n"}});
    if (!absl::StartsWith(key, "sops_")) {
      YAML::Node scalar(value);
      scalar.SetTag("!");
      doc.force_insert(YAML::Node(key), scalar);
      continue;
    }
    // Unflatten: "age__list_0__map_enc" is age[0].enc. (yaml-cpp's Node::operator=
    // writes through to the node assigned to; reset() moves the cursor.)
    std::vector<std::string> parts = absl::StrSplit(key.substr(5), "__");
    YAML::Node at = meta;
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool last = i + 1 == parts.size();
      std::string part = parts[i];
      if (absl::StartsWith(part, "list_")) {
        size_t index = 0;
        if (!absl::SimpleAtoi(part.substr(5), &index) || index > 64 || last || !at.IsSequence()) {
          return absl::InvalidArgumentError(absl::StrCat("line ", number, ": a bad sops_ key"));
        }
        while (at.size() <= index) at.push_back(YAML::Node(YAML::NodeType::Map));
        YAML::Node next = at[index];
        at.reset(next);
        continue;
      }
      if (absl::StartsWith(part, "map_")) part = part.substr(4);
      if (!at.IsMap() || part.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("line ", number, ": a bad sops_ key"));
      }
      if (last) {
        at[part] = value;
        break;
      }
      if (!at[part] || at[part].IsNull()) {
        const bool list_next = absl::StartsWith(parts[i + 1], "list_");
        at[part] = YAML::Node(list_next ? YAML::NodeType::Sequence : YAML::NodeType::Map);
      }
      YAML::Node next = at[part];
      at.reset(next);
    }
  }
  return std::make_pair(doc, meta);
}

}  // namespace

bool IsSopsFile(absl::string_view path, absl::string_view content) {
  switch (FormatOf(path)) {
    case Format::kDotenv:
      return absl::StrContains(content, "\nsops_mac=ENC[") ||
             absl::StartsWith(content, "sops_mac=ENC[");
    case Format::kIni:
      return absl::StrContains(content, "[sops]") && absl::StrContains(content, "mac = ENC[");
    case Format::kBinary:
      // {"data": ..., "sops": ...} and nothing else; other text that happens to hold a
      // SOPS document is not a binary file SOPS wrote.
      if (!IsSopsFile(content)) return false;
      try {
        const YAML::Node doc = YAML::Load(std::string(content));
        return doc.IsMap() && doc.size() == 2 && doc["data"] && doc["data"].IsScalar();
      } catch (const YAML::Exception&) {
        return false;
      }
    default:
      return IsSopsFile(content);
  }
}

absl::StatusOr<std::string> DecryptSopsFile(const std::string& path, absl::string_view content,
                                            const AgeIdentities& identities) {
  return DecryptSopsFile(path, content, SopsKeys{&identities, nullptr});
}

absl::StatusOr<std::string> DecryptSopsFile(const std::string& path, absl::string_view content,
                                            const SopsKeys& keys) {
  auto refuse = [&](const absl::Status& why) {
    return absl::Status(why.code(), absl::StrCat(path, " (SOPS): ", why.message()));
  };
  if (content.size() > kMaxFileBytes) {
    return refuse(
        absl::InvalidArgumentError(absl::StrCat("it is larger than ", kMaxFileBytes, " bytes")));
  }
  const Format format = FormatOf(path);
  if (format == Format::kIni) {
    return refuse(absl::InvalidArgumentError(
        "it is in SOPS's INI format, which gitfleet does not read: encrypt it as YAML, JSON, "
        "dotenv or binary"));
  }
  std::vector<YAML::Node> docs;
  YAML::Node metadata;
  try {
    if (format == Format::kDotenv) {
      absl::StatusOr<std::pair<YAML::Node, YAML::Node>> parsed = ParseDotenv(content);
      if (!parsed.ok()) return refuse(parsed.status());
      docs.push_back(parsed->first);
      metadata = parsed->second;
    } else {
      if (absl::Status bounded = CheckYamlBounds(content, path); !bounded.ok()) return bounded;
      try {
        docs = YAML::LoadAll(std::string(content));
      } catch (const YAML::Exception& e) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
      }
      if (docs.empty() || !docs[0].IsMap()) {
        return refuse(absl::InvalidArgumentError("it has no sops metadata"));
      }
      metadata = docs[0]["sops"];
    }
    if (!metadata || !metadata.IsMap() || metadata.size() == 0) {
      return refuse(absl::InvalidArgumentError("it has no sops metadata"));
    }
    absl::StatusOr<Metadata> meta = ReadMetadata(metadata);
    if (!meta.ok()) return refuse(meta.status());
    absl::StatusOr<std::string> key = DataKey(*meta, keys);
    if (!key.ok()) return refuse(key.status());
    Walker walker(*meta, *key);
    std::vector<YAML::Node> plain_docs;
    for (const YAML::Node& doc : docs) {
      if (doc.IsNull()) continue;
      if (!doc.IsMap()) {
        return refuse(absl::InvalidArgumentError("a document is not a mapping"));
      }
      std::vector<std::string> keys;
      absl::StatusOr<YAML::Node> plain = walker.Walk(doc, &keys);
      if (!plain.ok()) return refuse(plain.status());
      plain_docs.push_back(*std::move(plain));
    }
    // The document's integrity: the MAC, encrypted with the data key and bound to the time
    // it was written.
    absl::StatusOr<std::string> stored = DecryptValue(*key, meta->mac, MacAad(meta->last_modified));
    if (!stored.ok()) {
      return refuse(absl::InvalidArgumentError(
          absl::StrCat("its mac ", stored.status().message(), " (or its lastmodified was)")));
    }
    if (!crypto::SecureEquals(*stored, walker.Mac())) {
      return refuse(absl::InvalidArgumentError(
          "its MAC does not match its values: a value was changed, added, removed or reordered "
          "after encryption (sops edit re-encrypts it properly)"));
    }
    // Written back in the file's own format, as `sops --decrypt` writes it: a
    // kustomization's secretGenerator reads it as it is.
    std::string out;
    switch (format) {
      case Format::kYaml: {
        std::vector<std::string> texts;
        for (const YAML::Node& doc : plain_docs) {
          absl::StatusOr<std::string> text = EmitBlockYaml(doc);
          if (!text.ok()) return refuse(text.status());
          texts.push_back(*std::move(text));
        }
        return absl::StrJoin(texts, "---\n");
      }
      case Format::kJson:
        if (plain_docs.size() != 1) {
          return refuse(absl::InvalidArgumentError("a JSON file holds one document"));
        }
        EmitJson(plain_docs[0], &out);
        return out + "\n";
      case Format::kDotenv:
        for (const auto& entry : plain_docs[0]) {
          absl::StrAppend(&out, entry.first.Scalar(), "=",
                          absl::StrReplaceAll(entry.second.Scalar(), {{"\n", "\\n"}}), "\n");
        }
        return out;
      case Format::kBinary:
        // SOPS keeps a binary file as the one value of {"data": ...}.
        if (plain_docs.size() != 1 || !plain_docs[0]["data"] || !plain_docs[0]["data"].IsScalar()) {
          return refuse(absl::InvalidArgumentError(
              "it is not SOPS's binary format (one \"data\" value beside the metadata)"));
        }
        return plain_docs[0]["data"].Scalar();
      case Format::kIni:
        break;
    }
    return refuse(absl::InternalError("an unknown format"));
  } catch (const YAML::Exception& e) {
    return refuse(absl::InvalidArgumentError(absl::StrCat("cannot be read: ", e.what())));
  }
}

absl::Status DecryptSopsFiles(const std::string& path, const AgeIdentities& identities,
                              std::vector<RepoFile>* files, std::vector<std::string>* notes) {
  return DecryptSopsFiles(path, SopsKeys{&identities, nullptr}, files, notes);
}

absl::Status DecryptSopsFiles(const std::string& path, const SopsKeys& keys,
                              std::vector<RepoFile>* files, std::vector<std::string>* notes) {
  const std::string prefix = path.empty() ? "" : path + "/";
  std::vector<std::string> decrypted;
  for (RepoFile& file : *files) {
    if (!IsSopsFile(file.path, file.content)) continue;
    absl::StatusOr<std::string> plain = DecryptSopsFile(file.path, file.content, keys);
    if (plain.ok()) {
      file.content = *std::move(plain);
      decrypted.push_back(file.path);
      continue;
    }
    if (absl::StartsWith(file.path, prefix)) return plain.status();
    if (notes != nullptr) {
      notes->push_back(
          absl::StrCat("left encrypted (outside the bundle's folder; a render that "
                       "uses it fails): ",
                       plain.status().message()));
    }
  }
  if (notes != nullptr && !decrypted.empty()) {
    notes->push_back(absl::StrCat("decrypted with SOPS: ", ListNames(decrypted, 5)));
  }
  return absl::OkStatus();
}

}  // namespace gitfleet
