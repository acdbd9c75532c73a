#include "tests/util/fake_tools.h"

#include <sys/stat.h>

#include <fstream>

namespace gitfleet::testing {

std::string WriteFakeHelm(const std::string& dir) {
  const std::string helm = dir + "/helm";
  std::ofstream out(helm);
  out << "#!/bin/sh\n"
         "ns=default\n"
         "for a in \"$@\"; do case \"$a\" in --namespace=*) ns=\"${a#--namespace=}\";; esac; done\n"
         "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\n  namespace: %s\\n' "
         "\"$2\" \"$ns\"\n";
  out.close();
  if (!out || chmod(helm.c_str(), 0755) != 0) return "";
  return helm;
}

std::string WriteValuesEchoHelm(const std::string& dir) {
  const std::string helm = dir + "/helm";
  std::ofstream out(helm);
  out << "#!/bin/sh\n"
         "vals=''\n"
         "for a in \"$@\"; do case \"$a\" in --values=*) f=\"${a#--values=}\"; "
         "vals=\"$vals${f##*/}=$(tr -d '\"' < \"$f\" | tr '\\n' ' ')|\";; esac; done\n"
         "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\ndata:\\n  "
         "values: \"%s\"\\n' \"$2\" \"$vals\"\n";
  out.close();
  if (!out || chmod(helm.c_str(), 0755) != 0) return "";
  return helm;
}

}  // namespace gitfleet::testing
