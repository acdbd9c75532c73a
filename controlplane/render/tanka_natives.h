#ifndef GITFLEET_CONTROLPLANE_RENDER_TANKA_NATIVES_H_
#define GITFLEET_CONTROLPLANE_RENDER_TANKA_NATIVES_H_

// Tanka's native functions, which Tanka environments and the libraries they vendor call
// through std.native(NAME): a repository written for Tanka renders as `tk show` shows it.
//
//   parseYaml(yaml)                 every document of a YAML text, as an array (Kubernetes'
//                                   scalars: quoted strings stay strings)
//   parseJson(json)                 a JSON text's value
//   manifestYamlFromJson(json)      a JSON text as block YAML
//   manifestJsonFromJson(json, n)   a JSON text indented by n spaces, keys in their order
//   sha256(str)                     its SHA-256 in hex
//   escapeStringRegex(str)          str with the regular expression metacharacters escaped
//   regexMatch(regex, str)          whether the RE2 (Go) expression matches somewhere in str
//   regexSubst(regex, src, repl)    every match replaced by repl ($1, ${1}, ${name}, $$)
//
// helmTemplate and kustomizeBuild, which run tools from inside an evaluation, fail with an
// error naming them and what to do instead (CallsTankaNatives). Every input is bounded: YAML by
// CheckYamlBounds, values by nesting depth, regular expressions by RE2's memory budget.
// No locks and no logging: evaluations may run in a forked child.
//
//   JsonnetVm* vm = jsonnet_make();
//   RegisterTankaNatives(vm);

#include <string>
#include <vector>

struct JsonnetVm;
struct JsonnetJsonValue;

namespace gitfleet {

void RegisterTankaNatives(JsonnetVm* vm);

// Each native: its name, its callback (whose context is the VM), and its parameters.
struct TankaNative {
  const char* name;
  JsonnetJsonValue* (*callback)(void* vm, const JsonnetJsonValue* const* argv, int* success);
  const char* const* params;  // null-terminated
};
const std::vector<TankaNative>& TankaNatives();

// libjsonnet 0.18 (Debian 12's) answers std.native('parseYaml') with its own std.parseYaml,
// which returns a lone document rather than Tanka's array of documents, and aborts on a
// stream that does not start with `---`. So the jsonnet source of `path` (a .jsonnet or
// .libsonnet file; anything else, such as an importstr'd YAML file, is returned as it is)
// calls natives of gitfleet's own instead: std.native('parseYaml') and
// std.native('parseJson') Tanka's (the latter bounded in depth), std.parseYaml
// one that answers as jsonnet's should (a stream as an array, one document as itself),
// helmTemplate and kustomizeBuild a function that fails saying what to do instead.
std::string CallsTankaNatives(const std::string& path, const std::string& source);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_TANKA_NATIVES_H_
