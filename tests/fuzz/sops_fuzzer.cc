// A repository's SOPS-encrypted file (YAML, JSON, dotenv or binary), decrypted with an
// identity of the control plane (DecryptSopsFile, AgeIdentities): any text, as YAML or as an age
// file, must give an answer, never a crash, a read past its bounds or a walk that does not end. The
// identity is the one Flux's tests publish, so seeds that SOPS wrote for it reach the values and
// the MAC.
#include <cstdint>
#include <string>

#include "controlplane/render/age.h"
#include "controlplane/render/sops.h"

namespace {

const gitfleet::AgeIdentities& Identities() {
  static const gitfleet::AgeIdentities* identities =
      new gitfleet::AgeIdentities(*gitfleet::AgeIdentities::Parse(
          "AGE-SECRET-KEY-10U7MAELH09KZU63F65P2TYLN7TQM5X6GSDDCQ4YMUGDS3DS6XZMSTYY2PN\n", "fuzz"));
  return *identities;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // As each format SOPS writes, by the name a file would have.
  for (const char* name : {"fuzz.yaml", "fuzz.json", "fuzz.env", "fuzz.crt"}) {
    if (gitfleet::IsSopsFile(name, text)) {
      (void)gitfleet::DecryptSopsFile(name, text, Identities());
    }
  }
  if (size > 0 && data[0] == 'U') (void)gitfleet::DecryptSopsFile("fuzz.env", text, Identities());
  (void)Identities().Decrypt(text, 4096);
  (void)gitfleet::AgeIdentities::Parse(text, "fuzz");
  (void)gitfleet::Bech32Decode(text.substr(0, 256));
  return 0;
}
