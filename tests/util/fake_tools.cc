#include "tests/util/fake_tools.h"

#include <sys/stat.h>

#include <fstream>

namespace gitfleet::testing {
namespace {

// Writes `script` as the executable `dir`/helm; its path, or "" when it cannot be written.
std::string WriteHelm(const std::string& dir, const std::string& script) {
  const std::string helm = dir + "/helm";
  std::ofstream out(helm);
  out << script;
  out.close();
  if (!out || chmod(helm.c_str(), 0755) != 0) return "";
  return helm;
}

}  // namespace

std::string WriteFakeHelm(const std::string& dir) {
  return WriteHelm(
      dir,
      "#!/bin/sh\n"
      "[ \"$1\" = version ] && { echo v3.14.0+gfake; exit 0; }\n"
      "ns=default\n"
      "for a in \"$@\"; do case \"$a\" in --namespace=*) ns=\"${a#--namespace=}\";; esac; done\n"
      "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\n  namespace: %s\\n' "
      "\"$2\" \"$ns\"\n");
}

std::string WriteValuesEchoHelm(const std::string& dir) {
  return WriteHelm(dir,
                   "#!/bin/sh\n"
                   "[ \"$1\" = version ] && { echo v3.14.0+gfake; exit 0; }\n"
                   "[ -f \"$3/Chart.yaml\" ] || { echo \"Error: Chart.yaml file is missing\" >&2; "
                   "exit 1; }\n"
                   "chart=$(sed -n 's/^name: *//p' \"$3/Chart.yaml\")\n"
                   "vals=''\n"
                   "for a in \"$@\"; do case \"$a\" in --values=*) f=\"${a#--values=}\"; "
                   "vals=\"$vals${f##*/}=$(tr -d '\"' < \"$f\" | tr '\\n' ' ')|\";; esac; done\n"
                   "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\ndata:\\n  "
                   "chart: \"%s\"\\n  values: \"%s\"\\n' \"$2\" \"$chart\" \"$vals\"\n");
}

}  // namespace gitfleet::testing
