#include "controlplane/render/age.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"

namespace gitfleet {
namespace {

constexpr char kCharset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
constexpr char kSecretPrefix[] = "AGE-SECRET-KEY-1";
constexpr char kVersionLine[] = "age-encryption.org/v1";
constexpr char kArmorBegin[] = "-----BEGIN AGE ENCRYPTED FILE-----";
constexpr char kArmorEnd[] = "-----END AGE ENCRYPTED FILE-----";
constexpr size_t kMaxIdentities = 64;
constexpr size_t kMaxStanzas = 64;
constexpr size_t kMaxStanzaBody = 4096;
constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kChunk = 64 * 1024;

uint32_t Polymod(const std::vector<uint8_t>& values) {
  static constexpr uint32_t kGenerator[] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd,
                                            0x2a1462b3};
  uint32_t checksum = 1;
  for (uint8_t value : values) {
    const uint32_t top = checksum >> 25;
    checksum = ((checksum & 0x1ffffff) << 5) ^ value;
    for (int i = 0; i < 5; ++i) {
      if ((top >> i) & 1) checksum ^= kGenerator[i];
    }
  }
  return checksum;
}

std::vector<uint8_t> HrpExpand(absl::string_view hrp) {
  std::vector<uint8_t> out;
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) >> 5);
  out.push_back(0);
  for (char c : hrp) out.push_back(static_cast<uint8_t>(c) & 31);
  return out;
}

absl::StatusOr<std::string> DecodeBase64(absl::string_view text, const char* what) {
  std::string out;
  // age writes base64 without padding and never with whitespace inside a value.
  if (text.find_first_of(" \t\r\n=") != absl::string_view::npos ||
      !absl::Base64Unescape(text, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("its ", what, " is not base64"));
  }
  return out;
}

struct Stanza {
  std::vector<std::string> args;
  std::string body;
};

// A parsed age header: its stanzas, its MAC, the bytes the MAC covers, and the payload.
struct Header {
  std::vector<Stanza> stanzas;
  std::string mac;
  absl::string_view covered;
  absl::string_view payload;
};

absl::StatusOr<Header> ParseHeader(absl::string_view data) {
  Header header;
  size_t pos = 0;
  auto next_line = [&]() -> absl::StatusOr<absl::string_view> {
    const size_t end = data.find('\n', pos);
    if (end == absl::string_view::npos) {
      return absl::InvalidArgumentError("its header ends before its MAC");
    }
    absl::string_view line = data.substr(pos, end - pos);
    pos = end + 1;
    return line;
  };
  absl::StatusOr<absl::string_view> line = next_line();
  if (!line.ok() || *line != kVersionLine) {
    return absl::InvalidArgumentError("it is not an age file (age-encryption.org/v1)");
  }
  while (true) {
    const size_t start = pos;
    line = next_line();
    if (!line.ok()) return line.status();
    if (absl::StartsWith(*line, "--- ")) {
      absl::StatusOr<std::string> mac = DecodeBase64(line->substr(4), "header MAC");
      if (!mac.ok()) return mac.status();
      if (mac->size() != 32) return absl::InvalidArgumentError("its header MAC is not 32 bytes");
      header.mac = *std::move(mac);
      header.covered = data.substr(0, start + 3);
      header.payload = data.substr(pos);
      return header;
    }
    if (!absl::StartsWith(*line, "-> ")) {
      return absl::InvalidArgumentError("its header has a line that is no stanza");
    }
    if (header.stanzas.size() >= kMaxStanzas) {
      return absl::InvalidArgumentError(
          absl::StrCat("its header has more than ", kMaxStanzas, " stanzas"));
    }
    Stanza stanza;
    stanza.args = absl::StrSplit(line->substr(3), ' ');
    // The body: base64 lines of 64 characters, ended by a shorter one.
    while (true) {
      line = next_line();
      if (!line.ok()) return line.status();
      if (line->size() > 64) return absl::InvalidArgumentError("a stanza line is too long");
      absl::StatusOr<std::string> part = DecodeBase64(*line, "stanza body");
      if (!part.ok()) return part.status();
      stanza.body += *part;
      if (stanza.body.size() > kMaxStanzaBody) {
        return absl::InvalidArgumentError("a stanza body is too long");
      }
      if (line->size() < 64) break;
    }
    header.stanzas.push_back(std::move(stanza));
  }
}

// The bytes of an armored age file, or of a binary one as it is.
absl::StatusOr<std::string> Dearmor(absl::string_view file) {
  absl::string_view text = absl::StripAsciiWhitespace(file);
  if (!absl::StartsWith(text, kArmorBegin)) return std::string(file);
  if (!absl::EndsWith(text, kArmorEnd)) {
    return absl::InvalidArgumentError("its armor has no end line");
  }
  text = text.substr(sizeof(kArmorBegin) - 1,
                     text.size() - (sizeof(kArmorBegin) - 1) - (sizeof(kArmorEnd) - 1));
  std::string joined;
  for (char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) joined.push_back(c);
  }
  std::string out;
  if (!absl::Base64Unescape(joined, &out)) {
    return absl::InvalidArgumentError("its armor is not base64");
  }
  return out;
}

// BIP 173's convertbits: `in`, groups of `from` bits, regrouped as groups of `to` bits.
// With `pad`, the last group is padded with zeros; without, leftover bits must be fewer
// than `from` and zero, else nullopt.
std::optional<std::vector<uint8_t>> ConvertBits(const std::vector<uint8_t>& in, int from, int to,
                                                bool pad) {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  const uint32_t mask = (1u << to) - 1;
  for (uint8_t value : in) {
    acc = ((acc << from) | value) & 0xfff;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push_back((acc >> bits) & mask);
    }
  }
  if (pad) {
    if (bits > 0) out.push_back((acc << (to - bits)) & mask);
  } else if (bits >= from || ((acc << (to - bits)) & mask) != 0) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

std::string Bech32Encode(absl::string_view hrp, const std::vector<uint8_t>& data) {
  const std::vector<uint8_t> five = *ConvertBits(data, 8, 5, /*pad=*/true);
  std::string lower = absl::AsciiStrToLower(hrp);
  std::vector<uint8_t> values = HrpExpand(lower);
  values.insert(values.end(), five.begin(), five.end());
  values.insert(values.end(), 6, 0);
  const uint32_t mod = Polymod(values) ^ 1;
  std::string out = lower + "1";
  for (uint8_t v : five) out.push_back(kCharset[v]);
  for (int i = 0; i < 6; ++i) out.push_back(kCharset[(mod >> (5 * (5 - i))) & 31]);
  return out;
}

absl::StatusOr<std::pair<std::string, std::vector<uint8_t>>> Bech32Decode(absl::string_view text) {
  const bool has_lower = std::any_of(text.begin(), text.end(), absl::ascii_islower);
  const bool has_upper = std::any_of(text.begin(), text.end(), absl::ascii_isupper);
  if (has_lower && has_upper) return absl::InvalidArgumentError("mixed case");
  const std::string lower = absl::AsciiStrToLower(text);
  const size_t separator = lower.rfind('1');
  if (separator == std::string::npos || separator == 0 || lower.size() - separator < 7) {
    return absl::InvalidArgumentError("no Bech32 separator, or too short");
  }
  const std::string hrp = lower.substr(0, separator);
  std::vector<uint8_t> five;
  for (size_t i = separator + 1; i < lower.size(); ++i) {
    const char* at = std::strchr(kCharset, lower[i]);
    if (at == nullptr || lower[i] == '\0') {
      return absl::InvalidArgumentError("a character outside Bech32's");
    }
    five.push_back(static_cast<uint8_t>(at - kCharset));
  }
  std::vector<uint8_t> values = HrpExpand(hrp);
  values.insert(values.end(), five.begin(), five.end());
  if (Polymod(values) != 1) return absl::InvalidArgumentError("its checksum does not match");
  five.resize(five.size() - 6);
  std::optional<std::vector<uint8_t>> data = ConvertBits(five, 5, 8, /*pad=*/false);
  if (!data.has_value()) return absl::InvalidArgumentError("its padding is not zero");
  return std::make_pair(hrp, *std::move(data));
}

absl::StatusOr<AgeIdentities> AgeIdentities::Parse(absl::string_view text,
                                                   const std::string& origin) {
  AgeIdentities out;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    auto refuse = [&](absl::string_view why) {
      // Never the line itself: it may be a key.
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", number, ": ", why));
    };
    if (!absl::StartsWith(line, kSecretPrefix)) {
      return refuse(
          "not an age identity (AGE-SECRET-KEY-1..., as age-keygen writes it; passphrases, "
          "SSH keys and plugins are not read)");
    }
    absl::StatusOr<std::pair<std::string, std::vector<uint8_t>>> decoded = Bech32Decode(line);
    if (!decoded.ok()) {
      return refuse(absl::StrCat("not an age identity: ", decoded.status().message()));
    }
    if (decoded->first != "age-secret-key-" || decoded->second.size() != 32) {
      return refuse("not an age X25519 identity");
    }
    if (out.identities_.size() >= kMaxIdentities) {
      return refuse(absl::StrCat("more than ", kMaxIdentities, " identities"));
    }
    Identity identity;
    std::copy(decoded->second.begin(), decoded->second.end(), identity.secret.begin());
    if (!crypto::X25519Public(identity.secret.data(), identity.public_key.data())) {
      return refuse("not an X25519 key OpenSSL takes");
    }
    out.identities_.push_back(identity);
  }
  if (out.identities_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": holds no age identity"));
  }
  return out;
}

std::vector<std::string> AgeIdentities::Recipients() const {
  std::vector<std::string> out;
  for (const Identity& identity : identities_) {
    out.push_back(Bech32Encode(
        "age", std::vector<uint8_t>(identity.public_key.begin(), identity.public_key.end())));
  }
  return out;
}

AgeIdentities AgeIdentities::Only(const std::vector<std::string>& recipients) const {
  AgeIdentities out;
  for (const Identity& identity : identities_) {
    const std::string recipient = Bech32Encode(
        "age", std::vector<uint8_t>(identity.public_key.begin(), identity.public_key.end()));
    if (std::find(recipients.begin(), recipients.end(), recipient) != recipients.end()) {
      out.identities_.push_back(identity);
    }
  }
  return out;
}

absl::StatusOr<std::string> AgeIdentities::Decrypt(absl::string_view file,
                                                   size_t max_plaintext) const {
  if (file.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the age file is larger than ", kMaxFileBytes, " bytes"));
  }
  absl::StatusOr<std::string> data = Dearmor(file);
  if (!data.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the age file: ", data.status().message()));
  }
  absl::StatusOr<Header> header = ParseHeader(*data);
  if (!header.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the age file: ", header.status().message()));
  }
  // The file key, from the first X25519 stanza one of the identities opens.
  std::string file_key;
  for (const Stanza& stanza : header->stanzas) {
    if (stanza.args.empty() || stanza.args[0] != "X25519") continue;
    absl::StatusOr<std::string> share =
        stanza.args.size() == 2 ? DecodeBase64(stanza.args[1], "X25519 share")
                                : absl::InvalidArgumentError("an X25519 stanza takes one argument");
    if (!share.ok() || share->size() != 32 || stanza.body.size() != 32) {
      return absl::InvalidArgumentError("the age file: an X25519 stanza is malformed");
    }
    for (const Identity& identity : identities_) {
      uint8_t shared[32];
      if (!crypto::X25519(identity.secret.data(), reinterpret_cast<const uint8_t*>(share->data()),
                          shared)) {
        continue;
      }
      const std::string salt =
          *share + std::string(reinterpret_cast<const char*>(identity.public_key.data()), 32);
      uint8_t wrap_key[32];
      if (!crypto::HkdfSha256(absl::string_view(reinterpret_cast<const char*>(shared), 32), salt,
                              "age-encryption.org/v1/X25519", wrap_key, sizeof(wrap_key))) {
        continue;
      }
      absl::StatusOr<std::string> opened =
          crypto::AeadOpen(crypto::Aead::kChaCha20Poly1305,
                           absl::string_view(reinterpret_cast<const char*>(wrap_key), 32),
                           std::string(12, '\0'), absl::string_view(stanza.body).substr(0, 16),
                           absl::string_view(stanza.body).substr(16), "");
      if (opened.ok() && opened->size() == 16) {
        file_key = *std::move(opened);
        break;
      }
    }
    if (!file_key.empty()) break;
  }
  if (file_key.empty()) {
    return absl::NotFoundError("none of the identities is a recipient of the age file");
  }
  uint8_t mac_key[32];
  if (!crypto::HkdfSha256(file_key, "", "header", mac_key, sizeof(mac_key)) ||
      !crypto::SecureEquals(
          crypto::HmacSha256(absl::string_view(reinterpret_cast<const char*>(mac_key), 32),
                             header->covered),
          header->mac)) {
    return absl::InvalidArgumentError("the age file's header MAC does not match: it was altered");
  }
  // The payload: a 16-byte nonce, then ChaCha20-Poly1305 chunks of 64 KiB (STREAM).
  absl::string_view payload = header->payload;
  if (payload.size() < 16 + 16) {
    return absl::InvalidArgumentError("the age file's payload is truncated");
  }
  uint8_t payload_key[32];
  if (!crypto::HkdfSha256(file_key, payload.substr(0, 16), "payload", payload_key,
                          sizeof(payload_key))) {
    return absl::InternalError("HKDF failed");
  }
  payload.remove_prefix(16);
  std::string plaintext;
  for (uint64_t counter = 0; !payload.empty(); ++counter) {
    const size_t size = std::min(payload.size(), kChunk + 16);
    const bool last = size == payload.size();
    if (size < 16) return absl::InvalidArgumentError("the age file's payload is truncated");
    std::string nonce(12, '\0');
    for (int i = 0; i < 8; ++i) nonce[10 - i] = static_cast<char>((counter >> (8 * i)) & 0xff);
    nonce[11] = last ? 1 : 0;
    absl::StatusOr<std::string> chunk =
        crypto::AeadOpen(crypto::Aead::kChaCha20Poly1305,
                         absl::string_view(reinterpret_cast<const char*>(payload_key), 32), nonce,
                         payload.substr(0, size - 16), payload.substr(size - 16, 16), "");
    if (!chunk.ok()) {
      return absl::InvalidArgumentError(
          "the age file's payload does not authenticate: it was altered or truncated");
    }
    if (last && chunk->empty() && counter > 0) {
      return absl::InvalidArgumentError("the age file ends with an empty chunk");
    }
    plaintext += *chunk;
    if (plaintext.size() > max_plaintext) {
      return absl::InvalidArgumentError(
          absl::StrCat("the age file holds more than ", max_plaintext, " bytes"));
    }
    payload.remove_prefix(size);
  }
  return plaintext;
}

}  // namespace gitfleet
