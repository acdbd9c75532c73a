#ifndef GITFLEET_COMMON_FLAGS_H_
#define GITFLEET_COMMON_FLAGS_H_

// Lets the daemons take --data-dir as well as --data_dir: absl flags only know the
// underscore spelling, so dashes in flag names become underscores before parsing.
//
//   std::vector<char*> args = NormalizeFlagNames(argc, argv);
//   absl::ParseCommandLine(args.size(), args.data());

#include <string>
#include <vector>

namespace gitfleet {

// The returned pointers live as long as the process.
std::vector<char*> NormalizeFlagNames(int argc, char** argv);

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_FLAGS_H_
