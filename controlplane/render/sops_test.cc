#include "controlplane/render/sops.h"

#include <unistd.h>

#include <fstream>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_system.h"
#include "common/subprocess.h"
#include "controlplane/render/age.h"
#include "controlplane/render/pgp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/git_fixture.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

using ::gitfleet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// The file at `path`, or "" (a failed expectation) when it cannot be read.
std::string ReadText(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileAtMost(path, 16 << 20);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *std::move(text) : "";
}

std::string Testdata(const std::string& name) {
  return ReadText("controlplane/render/testdata/sops/" + name);
}

void Write(const std::string& path, const std::string& content) { std::ofstream(path) << content; }

AgeIdentities Identities(const std::string& text) {
  absl::StatusOr<AgeIdentities> parsed = AgeIdentities::Parse(text, "keys.txt");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *std::move(parsed) : AgeIdentities();
}

// The age and age-keygen commands (Debian's age package): an implementation of age that
// is not gitfleet's.
bool HaveAge() {
  return access("/usr/bin/age", X_OK) == 0 && access("/usr/bin/age-keygen", X_OK) == 0;
}

// A new identity from age-keygen: {its key file, its recipient}.
std::pair<std::string, std::string> KeyGen(const std::string& dir) {
  absl::StatusOr<SubprocessResult> made =
      RunSubprocess({"/usr/bin/age-keygen", "-o", dir + "/key.txt"}, {});
  EXPECT_TRUE(made.ok() && made->exit_code == 0);
  const std::string text = ReadText(dir + "/key.txt");
  std::string recipient;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, "# public key: ")) recipient = std::string(line);
  }
  return {text, recipient};
}

// A fresh identity from age-keygen: its folder, key file text and recipient.
struct TestKey {
  std::string dir;
  std::string key_file;
  std::string recipient;
};
TestKey NewKey(const std::string& prefix) {
  TestKey key;
  key.dir = TempDir(prefix);
  std::tie(key.key_file, key.recipient) = KeyGen(key.dir);
  return key;
}

// `plain` as testdata/sops/encrypt.py encrypts it for `key` (with `flags`: the rules and
// the format), as a file named `name`.
std::string SopsEncrypt(const TestKey& key, const std::string& plain, const std::string& name,
                        const std::vector<std::string>& flags = {}) {
  Write(key.dir + "/in", plain);
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   "controlplane/render/testdata/sops/encrypt.py", key.recipient,
                                   key.dir + "/in", key.dir + "/" + name};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<SubprocessResult> run = RunSubprocess(argv, {"", {"PATH=/usr/bin:/bin"}});
  EXPECT_TRUE(run.ok() && run->exit_code == 0) << (run.ok() ? run->stderr_text : "");
  const std::string text = ReadText(key.dir + "/" + name);
  return text;
}

// Secrets that SOPS itself encrypted for Flux's tests decrypt to what Flux's tests expect,
// MAC and all.
TEST(SopsTest, DecryptsWhatSopsEncrypted) {
  for (const auto& [file, value] :
       {std::pair{"flux_global", "global-value"}, std::pair{"flux_algorithms", "value"}}) {
    const AgeIdentities keys = Identities(Testdata(absl::StrCat(file, ".age.txt")));
    const std::string encrypted = Testdata(absl::StrCat(file, ".yaml"));
    ASSERT_TRUE(IsSopsFile(encrypted)) << file;
    absl::StatusOr<std::string> plain = DecryptSopsFile("secret.yaml", encrypted, keys);
    ASSERT_TRUE(plain.ok()) << plain.status();
    YAML::Node secret = YAML::Load(*plain);
    EXPECT_EQ(secret["stringData"]["key"].as<std::string>(), value) << *plain;
    EXPECT_FALSE(secret["sops"]) << "no metadata in the plaintext";
    EXPECT_EQ(secret["kind"].as<std::string>(), "Secret");
  }
  const AgeIdentities keys = Identities(Testdata("flux_global.age.txt"));
  EXPECT_THAT(keys.Recipients(), ::testing::ElementsAre("age1henwn645drkd3fa34t27t2w2x0nsgw3w4h"
                                                        "62gmg5x5xflyjpy38s5cncph"));
}

// A Secret SOPS encrypted for Flux's PGP test key decrypts with it, through gpg, as Flux's
// tests expect; keys of another kind name both sides' keys.
TEST(SopsTest, DecryptsWhatSopsEncryptedForAPgpKey) {
  if (access("/usr/bin/gpg", X_OK) != 0) GTEST_SKIP() << "gpg (Debian's gnupg) is not installed";
  absl::StatusOr<std::shared_ptr<PgpKeys>> pgp =
      PgpKeys::Import(Testdata("flux_pgp.asc"), {}, "keys.asc");
  ASSERT_TRUE(pgp.ok()) << pgp.status();
  EXPECT_THAT((*pgp)->fingerprints(),
              ::testing::Contains("35C1A64CD7FC0AB6EB66756B2445463C3234ECE1"));
  const std::string encrypted = Testdata("flux_pgp.yaml");
  absl::StatusOr<std::string> plain =
      DecryptSopsFile("pgp.yaml", encrypted, SopsKeys{nullptr, pgp->get()});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(YAML::Load(*plain)["stringData"]["key"].as<std::string>(), "value");
  // With age identities as well: age is tried first, as SOPS does, and PGP still opens it.
  const AgeIdentities age = Identities(Testdata("flux_global.age.txt"));
  EXPECT_TRUE(DecryptSopsFile("pgp.yaml", encrypted, SopsKeys{&age, pgp->get()}).ok());
  // With age identities only: both sides' keys are named.
  absl::StatusOr<std::string> none = DecryptSopsFile("pgp.yaml", encrypted, age);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("encrypted for PGP 35C1A64CD7FC0AB6EB66756B2445463C3234ECE1, and the "
                        "control plane's keys are age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5"
                        "xflyjpy38s5cncph"));
  // A PGP key that is not the file's: NotFound, through gpg's "No secret key".
  absl::StatusOr<std::shared_ptr<PgpKeys>> only_age_file =
      PgpKeys::Import(Testdata("flux_pgp.asc"), {}, "keys.asc");
  ASSERT_TRUE(only_age_file.ok());
  EXPECT_EQ(DecryptSopsFile("s.yaml", Testdata("flux_global.yaml"),
                            SopsKeys{nullptr, only_age_file->get()})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  // What cannot be imported is refused by name.
  EXPECT_THAT(std::string(PgpKeys::Import("not a key", {}, "keys.asc").status().message()),
              HasSubstr("keys.asc: holds no armored PGP private key"));
  EXPECT_EQ(PgpKeys::Import(Testdata("flux_pgp.asc"), {"/nonexistent/gpg", "/tmp"}, "keys.asc")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  std::string broken = Testdata("flux_pgp.asc");
  broken[200] = broken[200] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(PgpKeys::Import(broken, {}, "keys.asc").ok());
}

// What was changed after encryption fails the file, naming what and never a value.
TEST(SopsTest, TamperingAndWrongKeysFailNamingTheFile) {
  const AgeIdentities keys = Identities(Testdata("flux_global.age.txt"));
  const std::string encrypted = Testdata("flux_global.yaml");
  // An unencrypted value changed: the MAC covers it.
  std::string renamed = absl::StrReplaceAll(encrypted, {{"name: global-age-secret", "name: x"}});
  absl::StatusOr<std::string> out = DecryptSopsFile("s.yaml", renamed, keys);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("s.yaml (SOPS): its MAC does not match its values"));
  // An encrypted value moved to another key: its path is bound to it.
  std::string moved = absl::StrReplaceAll(encrypted, {{"  key: ENC", "  other: ENC"}});
  out = DecryptSopsFile("s.yaml", moved, keys);
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("the value at stringData.other does not authenticate"));
  // The lastmodified the MAC is bound to.
  std::string later =
      absl::StrReplaceAll(encrypted, {{"2025-07-06T17:19:51Z", "2025-07-07T17:19:51Z"}});
  out = DecryptSopsFile("s.yaml", later, keys);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("its mac does not authenticate"));
  // Another identity: the recipients are named, for the operator to act on.
  const AgeIdentities other = Identities(Testdata("flux_algorithms.age.txt"));
  out = DecryptSopsFile("s.yaml", encrypted, other);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("encrypted for age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5xflyjpy38s5"
                        "cncph, and the control plane's keys are "
                        "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"));
  // What gitfleet does not read is refused by name.
  const std::pair<const char*, const char*> kUnread[] = {
      {"  version: 3.10.2\n", "  version: 3.10.2\n  key_groups: [{age: []}]\n"},
      {"  version: 3.10.2\n", "  version: 3.10.2\n  encrypted_comment_regex: sops\n"},
  };
  for (const auto& [from, to] : kUnread) {
    out = DecryptSopsFile("s.yaml", absl::StrReplaceAll(encrypted, {{from, to}}), keys);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << to;
  }
  std::string kms_only = Testdata("flux_algorithms.yaml");
  kms_only = absl::StrReplaceAll(kms_only, {{"  kms: []", "  kms: [{arn: X, enc: Y}]"}});
  const size_t age = kms_only.find("  age:");
  const size_t end = kms_only.find("  lastmodified:");
  kms_only.erase(age, end - age);
  out = DecryptSopsFile("s.yaml", kms_only, keys);
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("its data key is encrypted for kms only; gitfleet decrypts with age "
                        "identities and PGP keys"));
  for (const absl::Status& status : {DecryptSopsFile("s.yaml", "a: [", keys).status(),
                                     DecryptSopsFile("s.yaml", "a: 1\n", keys).status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("s.yaml"));
  }
  EXPECT_FALSE(IsSopsFile("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sops-mac}\n"));
  EXPECT_FALSE(IsSopsFile("sops: mac\n"));
}

// A team's share of the control plane's keys opens the files encrypted for it, and no
// other: another team's Secret copied into its repository stays sealed.
TEST(SopsTest, ATeamsShareOfTheKeysOpensItsFilesAlone) {
  const std::string global = "age1henwn645drkd3fa34t27t2w2x0nsgw3w4h62gmg5x5xflyjpy38s5cncph";
  const AgeIdentities both =
      Identities(Testdata("flux_global.age.txt") + "\n" + Testdata("flux_algorithms.age.txt"));
  ASSERT_EQ(both.size(), 2u);
  const AgeIdentities mine = both.Only({global});
  EXPECT_THAT(mine.Recipients(), ::testing::ElementsAre(global));
  EXPECT_EQ(both.Only({}).size(), 0u);
  const std::string encrypted = Testdata("flux_global.yaml");
  EXPECT_TRUE(DecryptSopsFile("s.yaml", encrypted, mine).ok());
  const AgeIdentities theirs =
      both.Only({Identities(Testdata("flux_algorithms.age.txt")).Recipients()[0]});
  ASSERT_EQ(theirs.size(), 1u);
  absl::StatusOr<std::string> sealed = DecryptSopsFile("s.yaml", encrypted, theirs);
  EXPECT_EQ(sealed.status().code(), absl::StatusCode::kNotFound);

  if (access("/usr/bin/gpg", X_OK) != 0) GTEST_SKIP() << "gpg (Debian's gnupg) is not installed";
  absl::StatusOr<std::shared_ptr<PgpKeys>> pgp =
      PgpKeys::Import(Testdata("flux_pgp.asc"), {}, "keys.asc");
  ASSERT_TRUE(pgp.ok()) << pgp.status();
  const std::string pgp_file = Testdata("flux_pgp.yaml");
  const std::vector<std::string> allowed = {"35C1A64CD7FC0AB6EB66756B2445463C3234ECE1"};
  SopsKeys team{nullptr, pgp->get(), &allowed};
  absl::StatusOr<std::string> plain = DecryptSopsFile("pgp.yaml", pgp_file, team);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(YAML::Load(*plain)["stringData"]["key"].as<std::string>(), "value");
  // The control plane holds the key, the team's share does not: gpg opens it, and the
  // plaintext is dropped.
  const std::vector<std::string> other = {std::string(40, 'A')};
  team.pgp_only = &other;
  absl::StatusOr<std::string> refused = DecryptSopsFile("pgp.yaml", pgp_file, team);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("and the control plane's keys are none"));
}

TEST(AgeTest, KeyFilesAreReadAsAgeKeygenWritesThem) {
  const std::string good = Testdata("flux_global.age.txt");
  EXPECT_EQ(Identities(good + "\n" + Testdata("flux_algorithms.age.txt")).size(), 2u);
  const std::pair<std::string, const char*> kBad[] = {
      {"", "keys.txt: holds no age identity"},
      {"# only a comment\n", "keys.txt: holds no age identity"},
      {"ssh-ed25519 AAAA\n", "keys.txt:1: not an age identity (AGE-SECRET-KEY-1"},
      {absl::StrReplaceAll(good, {{"PN\n", "PQ\n"}}),
       "keys.txt:3: not an age identity: its checksum does not match"},
  };
  for (const auto& [text, error] : kBad) {
    absl::StatusOr<AgeIdentities> parsed = AgeIdentities::Parse(text, "keys.txt");
    EXPECT_FALSE(parsed.ok()) << text;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(error));
    EXPECT_THAT(std::string(parsed.status().message()), Not(HasSubstr("AGE-SECRET-KEY-10")))
        << "never the key";
  }
  // Bech32 round trips, and refuses what BIP 173 refuses.
  std::vector<uint8_t> data = {0, 1, 2, 250, 255};
  absl::StatusOr<std::pair<std::string, std::vector<uint8_t>>> back =
      Bech32Decode(Bech32Encode("age", data));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->first, "age");
  EXPECT_EQ(back->second, data);
  EXPECT_FALSE(Bech32Decode("age1Qpzry9x8gf2tvdw0s3jn54khce6mua7l").ok()) << "mixed case";
  EXPECT_FALSE(Bech32Decode("nochecksum").ok());
}

// Files the age command wrote, armored and not, over one chunk and over several (64 KiB
// each), decrypt to what it was given; one altered anywhere does not.
TEST(AgeTest, DecryptsWhatTheAgeCommandEncrypted) {
  if (!HaveAge()) GTEST_SKIP() << "the age package is not installed (tools/setup installs it)";
  const TestKey key = NewKey("age");
  const std::string& dir = key.dir;
  const std::string& recipient = key.recipient;
  const AgeIdentities keys = Identities(key.key_file);
  EXPECT_THAT(keys.Recipients(), ::testing::ElementsAre(recipient));
  for (size_t size :
       {size_t{0}, size_t{32}, size_t{64 * 1024}, size_t{64 * 1024 + 1}, size_t{200000}}) {
    std::string plain(size, '\0');
    for (size_t i = 0; i < size; ++i) plain[i] = static_cast<char>((i * 131 + size) & 0xff);
    Write(dir + "/plain", plain);
    for (bool armor : {true, false}) {
      std::vector<std::string> argv = {"/usr/bin/age", "-r", recipient, "-o", dir + "/enc"};
      if (armor) argv.push_back("-a");
      argv.push_back(dir + "/plain");
      absl::StatusOr<SubprocessResult> run = RunSubprocess(argv, {});
      ASSERT_TRUE(run.ok() && run->exit_code == 0) << (run.ok() ? run->stderr_text : "");
      const std::string file = ReadText(dir + "/enc");
      absl::StatusOr<std::string> out = keys.Decrypt(file, 1 << 20);
      ASSERT_TRUE(out.ok()) << size << " " << armor << ": " << out.status();
      EXPECT_EQ(*out, plain) << size;
      if (!armor && size > 0) {
        std::string altered = file;
        altered[altered.size() - 20] ^= 1;
        EXPECT_THAT(std::string(keys.Decrypt(altered, 1 << 20).status().message()),
                    HasSubstr("does not authenticate"));
        altered = file;
        altered.resize(altered.size() - 17);
        EXPECT_FALSE(keys.Decrypt(altered, 1 << 20).ok()) << "truncated";
        EXPECT_THAT(std::string(keys.Decrypt(file, size - 1).status().message()),
                    HasSubstr("holds more than"));
        altered = file;
        altered[30] ^= 1;  // in the stanza's share: another key, or a malformed one
        EXPECT_FALSE(keys.Decrypt(altered, 1 << 20).ok());
      }
    }
  }
  // A file for another recipient: NotFound.
  const std::string other = KeyGen(TempDir("age-other")).second;
  Write(dir + "/plain", "x");
  ASSERT_TRUE(
      RunSubprocess({"/usr/bin/age", "-r", other, "-a", "-o", dir + "/enc", dir + "/plain"}, {})
          .ok());
  const std::string file = ReadText(dir + "/enc");
  EXPECT_EQ(keys.Decrypt(file, 100).status().code(), absl::StatusCode::kNotFound);
}

// SOPS files of every shape gitfleet reads: value types, suffixes and regexes, several
// documents, JSON, a MAC over the encrypted values only.
TEST(SopsTest, DecryptsEveryShapeSopsWrites) {
  if (!HaveAge()) GTEST_SKIP() << "the age package is not installed (tools/setup installs it)";
  const TestKey key = NewKey("sops");
  const AgeIdentities keys = Identities(key.key_file);
  const std::string source =
      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels: {tier: backend}\n"
      "stringData:\n  password: hunter2\n  port: '5432'\n  empty: ''\n"
      "config:\n  replicas: 3\n  ratio: 1.5\n  enabled: true\n  nothing: null\n"
      "  hosts: [a, b]\n  note_unencrypted: plain text\n"
      "plain_unencrypted: {replicas: 3, ratio: 0.5, enabled: true, none: ~, octal: '0755'}\n"
      "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: second}\ndata: {k: v}\n";
  struct Case {
    std::vector<std::string> flags;
    bool metadata_encrypted;
  };
  for (const Case& c :
       {Case{{}, true}, Case{{"--encrypted-regex=^(data|stringData|config)$"}, false},
        Case{{"--mac-only-encrypted"}, true},
        Case{{"--encrypted-regex=^(stringData)$", "--mac-only-encrypted"}, false}}) {
    const std::string encrypted = SopsEncrypt(key, source, "enc.yaml", c.flags);
    const std::string label = c.flags.empty() ? "(all)" : c.flags[0];
    EXPECT_EQ(encrypted.find("hunter2"), std::string::npos) << label;
    EXPECT_EQ(absl::StrContains(encrypted, "name: ENC["), c.metadata_encrypted) << label;
    ASSERT_TRUE(IsSopsFile(encrypted));
    absl::StatusOr<std::string> plain = DecryptSopsFile("enc.yaml", encrypted, keys);
    ASSERT_TRUE(plain.ok()) << label << ": " << plain.status() << "\n" << encrypted;
    std::vector<YAML::Node> docs = YAML::LoadAll(*plain);
    ASSERT_EQ(docs.size(), 2u) << *plain;
    const YAML::Node& secret = docs[0];
    EXPECT_EQ(secret["stringData"]["password"].as<std::string>(), "hunter2");
    EXPECT_EQ(secret["stringData"]["port"].Tag(), "!") << "a string stays quoted: " << *plain;
    EXPECT_EQ(secret["stringData"]["port"].as<std::string>(), "5432");
    EXPECT_EQ(secret["stringData"]["empty"].as<std::string>(), "");
    EXPECT_EQ(secret["config"]["replicas"].as<int>(), 3);
    EXPECT_EQ(secret["config"]["replicas"].Tag(), "?") << "an int stays an int";
    EXPECT_EQ(secret["config"]["ratio"].as<double>(), 1.5);
    EXPECT_EQ(secret["config"]["enabled"].Scalar(), "true");
    EXPECT_TRUE(secret["config"]["nothing"].IsNull());
    EXPECT_EQ(secret["config"]["hosts"][1].as<std::string>(), "b");
    EXPECT_EQ(secret["config"]["note_unencrypted"].as<std::string>(), "plain text");
    // Values left in clear count in the MAC as SOPS counts them (3, 0.5, True; null not).
    EXPECT_EQ(secret["plain_unencrypted"]["enabled"].Scalar(), "true");
    EXPECT_EQ(secret["plain_unencrypted"]["octal"].as<std::string>(), "0755");
    EXPECT_EQ(secret["metadata"]["labels"]["tier"].as<std::string>(), "backend");
    EXPECT_EQ(docs[1]["data"]["k"].as<std::string>(), "v") << "the second document";
    EXPECT_FALSE(docs[1]["sops"]);
    // A document dropped breaks the MAC, unless none of its values counts in it (a MAC over
    // the encrypted values only, and it has none).
    const std::string first_only = encrypted.substr(0, encrypted.find("\n---\n") + 1);
    EXPECT_EQ(absl::StrContains(DecryptSopsFile("enc.yaml", first_only, keys).status().message(),
                                "MAC does not match"),
              c.flags.size() < 2)
        << label;
  }
  // JSON, as SOPS writes a .json file.
  const std::string json = SopsEncrypt(key, source, "enc.json", {"--json"});
  absl::StatusOr<std::string> plain = DecryptSopsFile("enc.json", json, keys);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(YAML::Load(*plain)["stringData"]["password"].as<std::string>(), "hunter2");
}

// A file's other formats, as Flux decrypts what a kustomization's secretGenerator reads:
// dotenv, JSON (its key order kept) and binary, each written back as `sops --decrypt`
// writes it; INI is refused by name.
// A data key split across key groups (Shamir's secret sharing, `shamir_threshold` of them
// needed, as SOPS writes a file under a `key_groups` creation rule) opens with keys of
// enough groups, and says how many it has when there are too few.
TEST(SopsTest, DecryptsADataKeySplitAcrossKeyGroups) {
  if (!HaveAge()) GTEST_SKIP() << "the age package is not installed (tools/setup installs it)";
  const TestKey a = NewKey("sops-a"), b = NewKey("sops-b"), c = NewKey("sops-c");
  const std::string source =
      "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
      "stringData: {password: hunter2}\n";
  auto keys = [](std::vector<const TestKey*> held) {
    std::string text;
    for (const TestKey* key : held) absl::StrAppend(&text, key->key_file, "\n");
    return Identities(text);
  };
  const std::string two_of_three = SopsEncrypt(
      a, source, "split.yaml",
      {absl::StrCat("--key-groups=", b.recipient, ",", c.recipient), "--shamir-threshold=2"});
  ASSERT_TRUE(absl::StrContains(two_of_three, "shamir_threshold: 2")) << two_of_three;
  for (const auto& held :
       std::vector<std::vector<const TestKey*>>{{&a, &b}, {&b, &c}, {&a, &c}, {&a, &b, &c}}) {
    absl::StatusOr<std::string> plain = DecryptSopsFile("split.yaml", two_of_three, keys(held));
    ASSERT_TRUE(plain.ok()) << held.size() << ": " << plain.status();
    EXPECT_EQ(YAML::Load(*plain)["stringData"]["password"].as<std::string>(), "hunter2");
  }
  absl::StatusOr<std::string> one = DecryptSopsFile("split.yaml", two_of_three, keys({&c}));
  EXPECT_EQ(one.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(one.status().message()),
              HasSubstr("its data key is split across 3 key groups, any 2 of which open it "
                        "(Shamir's secret sharing), and the control plane's keys open 1"));
  // Without a threshold written, every group is needed (SOPS's default).
  const std::string all_three = SopsEncrypt(
      a, source, "all.yaml", {absl::StrCat("--key-groups=", b.recipient, ",", c.recipient)});
  EXPECT_EQ(DecryptSopsFile("all.yaml", all_three, keys({&a, &b})).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(DecryptSopsFile("all.yaml", all_three, keys({&a, &b, &c})).ok());
  // A threshold the groups cannot meet is the file's fault, named.
  EXPECT_THAT(DecryptSopsFile("split.yaml",
                              absl::StrReplaceAll(two_of_three,
                                                  {{"shamir_threshold: 2", "shamir_threshold: 4"}}),
                              keys({&a, &b, &c}))
                  .status()
                  .message(),
              HasSubstr("shamir_threshold (4) is not a count of its key groups"));
}

TEST(SopsTest, ShamirSharesCombineAsVaultSplitsThem) {
  // f(x) = 0x2a + 0x07 x over GF(2^8): shares at x = 1 and 2 give back 0x2a.
  const std::string one = {static_cast<char>(0x2a ^ 0x07), 1};
  const std::string two = {static_cast<char>(0x2a ^ 0x0e), 2};
  absl::StatusOr<std::string> secret = CombineShamirShares({one, two});
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, std::string(1, 0x2a));
  EXPECT_FALSE(CombineShamirShares({one}).ok()) << "one share is not enough";
  EXPECT_FALSE(CombineShamirShares({one, one}).ok()) << "two shares for one point";
  EXPECT_FALSE(CombineShamirShares({one, std::string("ab\x03")}).ok()) << "lengths differ";
  EXPECT_FALSE(CombineShamirShares({std::string(1, 0x01), std::string(1, 0x02)}).ok());
}

TEST(SopsTest, DecryptsDotenvJsonAndBinaryFilesInTheirOwnFormat) {
  if (!HaveAge()) GTEST_SKIP() << "the age package is not installed (tools/setup installs it)";
  const TestKey key = NewKey("sops-formats");
  const AgeIdentities keys = Identities(key.key_file);
  const std::string env =
      SopsEncrypt(key, "USER=admin\nPASSWORD=p=ss\nMULTI=a\\nb\n", "db.env", {"--dotenv"});
  EXPECT_EQ(env.find("p=ss"), std::string::npos);
  ASSERT_TRUE(IsSopsFile("apps/db.env", env));
  EXPECT_FALSE(IsSopsFile("apps/db.env", "USER=admin\n"));
  absl::StatusOr<std::string> plain = DecryptSopsFile("apps/db.env", env, keys);
  ASSERT_TRUE(plain.ok()) << plain.status() << "\n" << env;
  EXPECT_EQ(*plain, "USER=admin\nPASSWORD=p=ss\nMULTI=a\\nb\n");
  // A value changed in a dotenv file breaks its MAC, as in YAML.
  const std::string swapped = absl::StrReplaceAll(env, {{"USER=ENC", "USER2=ENC"}});
  EXPECT_FALSE(DecryptSopsFile("apps/db.env", swapped, keys).ok());

  const std::string json = SopsEncrypt(key, "zeta: 1\nalpha: {b: two, a: true}\nlist: [1.5, x]\n",
                                       "config.json", {"--json"});
  ASSERT_TRUE(IsSopsFile("config.json", json));
  plain = DecryptSopsFile("config.json", json, keys);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, "{\"zeta\":1,\"alpha\":{\"b\":\"two\",\"a\":true},\"list\":[1.5,\"x\"]}\n");

  const std::string binary =
      SopsEncrypt(key, "-----BEGIN CERTIFICATE-----\nMIIB\n", "tls.crt", {"--binary"});
  ASSERT_TRUE(IsSopsFile("tls.crt", binary));
  EXPECT_FALSE(IsSopsFile("notes.txt", Testdata("flux_global.yaml")))
      << "a SOPS YAML document under another name is not SOPS's binary format";
  plain = DecryptSopsFile("tls.crt", binary, keys);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, "-----BEGIN CERTIFICATE-----\nMIIB\n");

  const std::string ini = "[config]\nkey = ENC[AES256_GCM,data:x]\n[sops]\nmac = ENC[x]\n";
  ASSERT_TRUE(IsSopsFile("app.ini", ini));
  EXPECT_THAT(
      std::string(DecryptSopsFile("app.ini", ini, keys).status().message()),
      HasSubstr("app.ini (SOPS): it is in SOPS's INI format, which gitfleet does not read"));
}

// In a render's files: those under the bundle's folder are decrypted, or fail the render;
// those elsewhere are decrypted when they can be and left otherwise, noted.
TEST(SopsTest, DecryptSopsFilesDecryptsTheFolderAndLeavesWhatItCannotElsewhere) {
  const AgeIdentities keys = Identities(Testdata("flux_global.age.txt"));
  const std::string mine = Testdata("flux_global.yaml");
  const std::string theirs = Testdata("flux_algorithms.yaml");
  std::vector<RepoFile> files = {{"apps/db/secret.yaml", mine},
                                 {"apps/db/cm.yaml", "apiVersion: v1\nkind: ConfigMap\n"},
                                 {"apps/base/secret.yaml", mine},
                                 {"other/secret.yaml", theirs},
                                 {"apps/db/notes.txt", mine}};
  std::vector<std::string> notes;
  ASSERT_TRUE(DecryptSopsFiles("apps/db", keys, &files, &notes).ok());
  EXPECT_THAT(files[0].content, HasSubstr("key: global-value"));
  EXPECT_THAT(files[2].content, HasSubstr("key: global-value")) << "a base outside the folder";
  EXPECT_EQ(files[3].content, theirs) << "another key's: left";
  EXPECT_EQ(files[4].content, mine) << "not YAML or JSON";
  EXPECT_THAT(notes, ::testing::ElementsAre(
                         HasSubstr("left encrypted (outside the bundle's folder; a render that "
                                   "uses it fails): other/secret.yaml (SOPS): it is encrypted for"),
                         "decrypted with SOPS: apps/db/secret.yaml, apps/base/secret.yaml"));
  files = {{"apps/db/secret.yaml", theirs}};
  absl::Status failed = DecryptSopsFiles("apps/db", keys, &files, nullptr);
  EXPECT_EQ(failed.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(failed.message()), HasSubstr("apps/db/secret.yaml (SOPS)"));
}

}  // namespace
}  // namespace gitfleet
