#include "common/flags.h"

#include <cstring>

namespace gitfleet {

std::vector<char*> NormalizeFlagNames(int argc, char** argv) {
  static std::vector<std::string>* storage = new std::vector<std::string>();
  storage->reserve(argc);
  std::vector<char*> out;
  bool past_separator = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") past_separator = true;
    if (i > 0 && !past_separator && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      size_t end = arg.find('=');
      if (end == std::string::npos) end = arg.size();
      for (size_t j = 2; j < end; ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
    }
    storage->push_back(std::move(arg));
  }
  for (std::string& s : *storage) out.push_back(s.data());
  return out;
}

}  // namespace gitfleet
