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
  return WriteHelm(
      dir,
      "#!/bin/sh\n"
      "[ \"$1\" = version ] && { echo v3.14.0+gfake; exit 0; }\n"
      "[ -f \"$3/Chart.yaml\" ] || { echo \"Error: Chart.yaml file is missing\" >&2; "
      "exit 1; }\n"
      "chart=$(sed -n 's/^name: *//p' \"$3/Chart.yaml\")\n"
      "vals=''\n"
      "caps=''\n"
      "sets=''\n"
      "files=''\n"
      "crds=skipped\n"
      "skips=''\n"
      "rns=''\n"
      "prev=''\n"
      "for a in \"$@\"; do case \"$prev\" in --kube-version) caps=\"${caps}kube=$a \";;\n"
      "  --api-versions) caps=\"${caps}api=$a \";; esac; prev=\"$a\"\n"
      "  case \"$a\" in --values=*) f=\"${a#--values=}\"; "
      "vals=\"$vals${f##*/}=$(tr -d '\"' < \"$f\" | tr '\\n' ' ')|\";;\n"
      "  --kube-version=*) caps=\"${caps}kube=${a#--kube-version=} \";;\n"
      "  --set=*|--set-string=*) sets=\"$sets$a \";;\n"
      "  --include-crds) crds='';;\n"
      "  --skip-tests|--skip-schema-validation) skips=\"$skips$a \";;\n"
      "  --namespace=*) rns=\"${a#--namespace=}\";;\n"
      "  --set-file=*) n=\"${a#--set-file=}\"; f=\"${n#*=}\"; [ -f \"$f\" ] || { echo "
      "\"Error: failed parsing --set-file data: open $f: no such file or directory\" >&2; "
      "exit 1; }; files=\"$files${n%%=*}<-$(tr -d '\"' < \"$f\" | tr '\\n' ' ')|\";;\n"
      "  --api-versions=*) caps=\"${caps}api=${a#--api-versions=} \";; esac; done\n"
      "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\ndata:\\n  "
      "chart: \"%s\"\\n  values: \"%s\"\\n' \"$2\" \"$chart\" \"$vals\"\n"
      "[ -z \"$caps\" ] || printf '  capabilities: \"%s\"\\n' \"$caps\"\n"
      "[ -z \"$sets\" ] || printf '  sets: \"%s\"\\n' \"$sets\"\n"
      "[ -z \"$files\" ] || printf '  files: \"%s\"\\n' \"$files\"\n"
      "[ -z \"$crds\" ] || printf '  crds: \"%s\"\\n' \"$crds\"\n"
      "[ -z \"$skips\" ] || printf '  skips: \"%s\"\\n' \"$skips\"\n"
      "[ -z \"$rns\" ] || printf '  releaseNamespace: \"%s\"\\n' \"$rns\"\n");
}

std::string WriteDependencyCheckingHelm(const std::string& dir) {
  return WriteHelm(dir, R"py(#!/usr/bin/python3
import glob, os, sys
if sys.argv[1:2] == ["version"]:
    print("v3.14.0+gfake")
    sys.exit(0)
release, chart = sys.argv[2], sys.argv[3]
def lines(d):
    try:
        return open(os.path.join(d, "Chart.yaml")).read().splitlines()
    except OSError:
        print("Error: Chart.yaml file is missing", file=sys.stderr)
        sys.exit(1)
def deps(d):
    names, inside = [], False
    for line in lines(d):
        if line.startswith("dependencies:"):
            inside = True
            continue
        if inside and line and not line[0].isspace() and not line.startswith("-"):
            inside = False
        if inside:
            item = line.strip().lstrip("- ").strip()
            if item.startswith("name:"):
                names.append(item[5:].strip().strip("'\""))
    return names
def version(d):
    for line in lines(d):
        if line.startswith("version:"):
            return line[8:].strip()
found = []
def walk(d, prefix):
    for name in deps(d):
        sub = os.path.join(d, "charts", name)
        if not os.path.isfile(os.path.join(sub, "Chart.yaml")) and not glob.glob(
                os.path.join(d, "charts", name + "-*.tgz")):
            print("Error: An error occurred while checking for chart dependencies. You may need "
                  "to run `helm dependency build` to fetch missing dependencies: found in "
                  "Chart.yaml, but missing in charts/ directory: " + name, file=sys.stderr)
            sys.exit(1)
        if os.path.isdir(sub):
            found.append((prefix + name, version(sub)))
            walk(sub, prefix + name + "-")
walk(chart, "")
print("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  version: \"%s\"" %
      (release, version(chart)))
for name, v in found:
    print("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-%s\ndata:\n"
          "  version: \"%s\"" % (release, name, v))
)py");
}

}  // namespace gitfleet::testing
