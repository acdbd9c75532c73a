#include <algorithm>
#include <map>
#include <optional>

extern "C" {
#include <libjsonnet.h>
}

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/manifest/yaml.h"
#include "common/model/label_selector.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "controlplane/render/jsonnet_renderer.h"
#include "controlplane/render/tanka_natives.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

struct ImportContext {
  JsonnetVm* vm;
  const std::map<std::string, const RepoFile*>* files;
  std::vector<std::string>* imported;
  // Library folders searched, in order, after the importing file's own (JsonnetLibraryPaths).
  const std::vector<std::string>* libraries;
};

char* Copy(JsonnetVm* vm, const std::string& text) {
  char* out = jsonnet_realloc(vm, nullptr, text.size() + 1);
  std::copy(text.begin(), text.end(), out);
  out[text.size()] = '\0';
  return out;
}

// Resolves `rel` against `base` inside the repository; never touches the file system.
std::string Resolve(const std::string& base, const std::string& rel, bool* escapes) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(base + rel, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") {
      if (parts.empty()) {
        *escapes = true;
        return "";
      }
      parts.pop_back();
      continue;
    }
    parts.emplace_back(p);
  }
  return absl::StrJoin(parts, "/");
}

char* Import(void* ctx_ptr, const char* base, const char* rel, char** found_here, int* success) {
  auto* ctx = static_cast<ImportContext*>(ctx_ptr);
  *success = 0;
  std::string relative(rel);
  if (!relative.empty() && relative[0] == '/') {
    return Copy(ctx->vm, absl::StrCat("import \"", relative, "\": absolute paths are refused"));
  }
  // Beside the importing file first, then in each library folder, as the jsonnet CLI does
  // with -J. Every place looked in is a path the render read: a file that appears there
  // later (shadowing a vendored one) renders again.
  std::vector<std::string> bases = {base};
  for (const std::string& library : *ctx->libraries) bases.push_back(library + "/");
  std::vector<std::string> looked;
  for (const std::string& from : bases) {
    bool escapes = false;
    std::string path = Resolve(from, relative, &escapes);
    if (escapes) {
      if (from == bases.front()) {
        return Copy(ctx->vm,
                    absl::StrCat("import \"", relative, "\": escapes the repository; refused"));
      }
      continue;
    }
    ctx->imported->push_back(path);
    auto it = ctx->files->find(path);
    if (it == ctx->files->end()) {
      looked.push_back(path);
      continue;
    }
    *found_here = Copy(ctx->vm, path);
    *success = 1;
    return Copy(ctx->vm, CallsTankaNatives(path, it->second->content));
  }
  return Copy(ctx->vm, absl::StrCat("import \"", relative, "\": ", absl::StrJoin(looked, ", "),
                                    looked.size() == 1 ? " is" : " are",
                                    " not in the repository at this commit"));
}

struct ValueContext {
  JsonnetVm* vm;
  const Values* values;
  ReadValues* read;
};

// std.native("gitfleetValue")(name): every external variable is this call, so jsonnet's
// lazy evaluation tells us which values the program actually used.
JsonnetJsonValue* LookupValue(void* ctx_ptr, const JsonnetJsonValue* const* argv, int* success) {
  auto* ctx = static_cast<ValueContext*>(ctx_ptr);
  const char* name = jsonnet_json_extract_string(ctx->vm, argv[0]);
  auto it = name == nullptr ? ctx->values->end() : ctx->values->find(name);
  if (it == ctx->values->end()) {
    *success = 0;
    return jsonnet_json_make_string(ctx->vm, "unknown value");
  }
  (*ctx->read)[it->first] = it->second;
  *success = 1;
  return jsonnet_json_make_string(ctx->vm, it->second.c_str());
}

std::string LookupCode(const std::string& name) {
  std::string quoted;
  for (char c : name) {
    if (c == '\\' || c == '"') quoted += '\\';
    quoted += c;
  }
  return absl::StrCat("std.native(\"gitfleetValue\")(\"", quoted, "\")");
}

// A Tanka inline environment (apiVersion tanka.dev/..., kind Environment): its resources
// are under `data`; it is not itself one to apply.
bool IsTankaEnvironment(const YAML::Node& value) {
  const YAML::Node api_version = value["apiVersion"];
  const YAML::Node kind = value["kind"];
  return api_version && kind && api_version.IsScalar() && kind.IsScalar() &&
         absl::StartsWith(api_version.Scalar(), "tanka.dev/") && kind.Scalar() == "Environment";
}

// An inline environment met in a program's value: its name and spec.namespace (empty
// when it sets none), and its spec (for resourceDefaults).
struct InlineEnvironment {
  std::string name;
  std::string ns;
  YAML::Node spec;
};

// spec.resourceDefaults of a Tanka environment's `spec` into `out`; InvalidArgument naming
// `origin` for a shape Tanka cannot read either, or a label Kubernetes refuses.
absl::Status ReadResourceDefaults(const YAML::Node& spec, const std::string& origin,
                                  TankaDefaults* out) {
  out->origin = origin;
  // yaml-cpp throws on a look-up in a node of the wrong shape: each level is checked first.
  if (!spec || !spec.IsMap()) return absl::OkStatus();
  const YAML::Node defaults = spec["resourceDefaults"];
  if (!defaults || defaults.IsNull()) return absl::OkStatus();
  if (!defaults.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": spec.resourceDefaults is not a mapping"));
  }
  for (const char* field : {"labels", "annotations"}) {
    const YAML::Node entries = defaults[field];
    if (!entries || entries.IsNull()) continue;
    if (!entries.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": spec.resourceDefaults.", field, " is not a mapping"));
    }
    std::map<std::string, std::string>& into =
        std::string(field) == "labels" ? out->labels : out->annotations;
    for (const auto& entry : entries) {
      if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(origin, ": spec.resourceDefaults.", field,
                                                       ": each entry must be a string"));
      }
      into[entry.first.Scalar()] = entry.second.Scalar();
    }
  }
  if (absl::Status valid = ValidateLabels(LabelMap(out->labels.begin(), out->labels.end()));
      !valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": spec.resourceDefaults.labels: ", valid.message()));
  }
  return absl::OkStatus();
}

// Adds the defaults `object` does not set itself (a List's items each), as Tanka does.
void ApplyResourceDefaults(const TankaDefaults& defaults, YAML::Node object) {
  const YAML::Node& view = object;  // look-ups that must not add what they look for
  if (!view.IsMap()) return;
  const YAML::Node items = view["items"];
  if (view["kind"] && view["kind"].IsScalar() && view["kind"].Scalar() == "List" && items &&
      items.IsSequence()) {
    for (YAML::Node item : items) ApplyResourceDefaults(defaults, item);
    return;
  }
  const YAML::Node metadata_view = view["metadata"];
  if (!metadata_view || !metadata_view.IsMap()) return;  // refused when parsed
  YAML::Node metadata = object["metadata"];
  for (const auto& [field, entries] :
       {std::pair<const char*, const std::map<std::string, std::string>*>{"labels",
                                                                          &defaults.labels},
        {"annotations", &defaults.annotations}}) {
    if (entries->empty()) continue;
    const YAML::Node existing = metadata_view[field];
    if (existing && !existing.IsNull() && !existing.IsMap()) continue;  // refused when parsed
    if (!existing || existing.IsNull()) metadata[field] = YAML::Node(YAML::NodeType::Map);
    YAML::Node target = metadata[field];
    const YAML::Node& target_view = target;
    for (const auto& [key, value] : *entries) {
      if (!target_view[key]) target[key] = value;
    }
  }
}

// Flattens the program's value into object nodes, as Tanka does: arrays and objects that
// are not manifests are walked (an object's fields in name order). `environments` gets
// each inline environment met.
void CollectObjects(const YAML::Node& value, std::vector<YAML::Node>* out,
                    std::vector<InlineEnvironment>* environments) {
  if (value.IsSequence()) {
    for (const YAML::Node& item : value) CollectObjects(item, out, environments);
  } else if (value.IsMap() && IsTankaEnvironment(value)) {
    // yaml-cpp throws on a look-up in a missing node: each level is checked first.
    const YAML::Node metadata = value["metadata"];
    const YAML::Node name = metadata && metadata.IsMap() ? metadata["name"] : YAML::Node();
    const YAML::Node spec = value["spec"];
    const YAML::Node ns = spec && spec.IsMap() ? spec["namespace"] : YAML::Node();
    environments->push_back({name && name.IsScalar() ? name.Scalar() : "(no metadata.name)",
                             ns && ns.IsScalar() ? ns.Scalar() : "", spec});
    if (value["data"]) CollectObjects(value["data"], out, environments);
  } else if (value.IsMap() && value["apiVersion"] && value["kind"]) {
    out->push_back(value);
  } else if (value.IsMap()) {
    std::map<std::string, YAML::Node> sorted;
    for (const auto& entry : value) sorted[entry.first.Scalar()] = entry.second;
    for (const auto& [key, item] : sorted) CollectObjects(item, out, environments);
  }
}

// What a Tanka environment's spec.json in the bundle's folder says: its spec.namespace
// (empty when there is none, or the file is no Tanka environment's, or it sets no
// namespace) and its spec.resourceDefaults.
struct SpecJson {
  std::string ns;
  TankaDefaults defaults;
};
absl::StatusOr<SpecJson> ReadSpecJson(const std::map<std::string, const RepoFile*>& files,
                                      const std::string& path) {
  const std::string spec_path = path.empty() ? "spec.json" : absl::StrCat(path, "/spec.json");
  SpecJson out;
  auto it = files.find(spec_path);
  if (it == files.end()) return out;
  if (absl::Status bounded = CheckYamlBounds(it->second->content, spec_path); !bounded.ok()) {
    // Tanka fails on it too; passing over it would move the bundle's objects.
    return absl::Status(bounded.code(),
                        absl::StrCat("a Tanka environment's spec: ", bounded.message()));
  }
  YAML::Node spec;
  try {
    spec = YAML::Load(it->second->content);
  } catch (const YAML::Exception& e) {
    // Tanka fails on it too; passing over it would move the bundle's objects to another
    // namespace (and prune them where they were).
    return absl::InvalidArgumentError(absl::StrCat("a Tanka environment's spec: ", spec_path, ":",
                                                   e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  if (!spec.IsMap() || !IsTankaEnvironment(spec)) return out;
  const YAML::Node body = spec["spec"];
  GF_RETURN_IF_ERROR(ReadResourceDefaults(body, spec_path, &out.defaults));
  const YAML::Node ns = body && body.IsMap() ? body["namespace"] : YAML::Node();
  if (!ns || ns.IsNull()) return out;
  if (!ns.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(spec_path, ": spec.namespace is not a string"));
  }
  out.ns = ns.Scalar();
  return out;
}

// What one evaluation produced; computed in a child process and sent back whole.
struct Evaluation {
  bool error = false;
  std::string text;  // JSON, or the error
  std::vector<std::string> read_paths;
  ReadValues read_values;
};

void Put(std::string* out, const std::string& s) { absl::StrAppend(out, s.size(), ":", s); }

bool Get(absl::string_view* in, std::string* s) {
  size_t colon = in->find(':');
  size_t size = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(in->substr(0, colon), &size) ||
      in->size() - colon - 1 < size) {
    return false;
  }
  *s = std::string(in->substr(colon + 1, size));
  in->remove_prefix(colon + 1 + size);
  return true;
}

std::string Encode(const Evaluation& e) {
  std::string out;
  Put(&out, e.error ? "1" : "0");
  Put(&out, e.text);
  Put(&out, absl::StrCat(e.read_paths.size()));
  for (const std::string& path : e.read_paths) Put(&out, path);
  Put(&out, absl::StrCat(e.read_values.size()));
  for (const auto& [name, value] : e.read_values) {
    Put(&out, name);
    Put(&out, value.has_value() ? "1" : "0");
    Put(&out, value.value_or(""));
  }
  return out;
}

absl::StatusOr<Evaluation> Decode(absl::string_view in) {
  Evaluation e;
  std::string flag, count, name, present, value;
  bool ok = Get(&in, &flag) && Get(&in, &e.text) && Get(&in, &count);
  size_t n = 0;
  ok = ok && absl::SimpleAtoi(count, &n);
  for (size_t i = 0; ok && i < n; ++i) {
    ok = Get(&in, &value);
    e.read_paths.push_back(value);
  }
  ok = ok && Get(&in, &count) && absl::SimpleAtoi(count, &n);
  for (size_t i = 0; ok && i < n; ++i) {
    ok = Get(&in, &name) && Get(&in, &present) && Get(&in, &value);
    e.read_values[name] = present == "1" ? std::optional<std::string>(value) : std::nullopt;
  }
  if (!ok) return absl::InternalError("jsonnet evaluation returned a malformed result");
  e.error = flag == "1";
  return e;
}

// The libjsonnet part: no locks, no logging, so it can run in a forked child.
Evaluation Evaluate(const std::map<std::string, const RepoFile*>& files,
                    const std::string& main_path, const RenderInput& input, const Values& values,
                    const std::vector<std::string>& libraries) {
  Evaluation result;
  JsonnetVm* vm = jsonnet_make();
  jsonnet_max_stack(vm, 500);
  // The bundle path as a whole (a new kustomization.yaml there changes the engine), plus
  // every file imported from anywhere.
  result.read_paths = {input.path};
  ImportContext ctx{vm, &files, &result.read_paths, &libraries};
  jsonnet_import_callback(vm, &Import, &ctx);
  ValueContext value_ctx{vm, &values, &result.read_values};
  static const char* const kParams[] = {"name", nullptr};
  jsonnet_native_callback(vm, "gitfleetValue", &LookupValue, &value_ctx, kParams);
  RegisterTankaNatives(vm);  // parseYaml and the rest, as Tanka environments call them
  for (const auto& [name, value] : values) {
    jsonnet_ext_code(vm, name.c_str(), LookupCode(name).c_str());
  }
  for (const std::string& tla : input.jsonnet_tlas) {
    std::pair<std::string, std::string> spec = absl::StrSplit(tla, absl::MaxSplits('=', 1));
    jsonnet_tla_code(vm, spec.first.c_str(),
                     LookupCode(spec.second.empty() ? spec.first : spec.second).c_str());
  }
  int error = 0;
  char* out = jsonnet_evaluate_snippet(
      vm, main_path.c_str(), CallsTankaNatives(main_path, files.at(main_path)->content).c_str(),
      &error);
  result.text = out ? out : "";
  result.error = error != 0;
  jsonnet_realloc(vm, out, 0);
  jsonnet_destroy(vm);
  // An external variable that no value defines is a lookup too: it failed because the
  // value was absent, and a cluster that has it would render differently.
  const std::string kUndefined = "undefined external variable: ";
  if (size_t at = result.text.find(kUndefined); error && at != std::string::npos) {
    size_t start = at + kUndefined.size();
    size_t end = result.text.find_first_of(" \n", start);
    result.read_values[result.text.substr(start, end == std::string::npos ? end : end - start)] =
        std::nullopt;
  }
  return result;
}

}  // namespace

JsonnetLibraries JsonnetLibraryPaths(const std::string& path,
                                     const std::map<std::string, const RepoFile*>& files) {
  JsonnetLibraries out;
  // The project's root: the nearest folder from `path` up that holds tkrc.yaml, else the
  // nearest that holds jsonnetfile.json (jsonnet-bundler's), as Tanka finds it.
  std::optional<std::string> root;
  for (const char* marker : {"tkrc.yaml", "jsonnetfile.json"}) {
    std::string folder = path;
    while (true) {
      const std::string candidate = folder.empty() ? marker : absl::StrCat(folder, "/", marker);
      out.markers.push_back(candidate);
      if (files.count(candidate) > 0) {
        root = folder;
        break;
      }
      if (folder.empty()) break;
      const size_t slash = folder.rfind('/');
      folder = slash == std::string::npos ? "" : folder.substr(0, slash);
    }
    if (root.has_value()) break;
  }
  if (!root.has_value()) {
    // Imports then resolve beside their files only, whatever marker appears later.
    out.markers.clear();
    return out;
  }
  auto under = [](const std::string& folder, const char* name) {
    return folder.empty() ? std::string(name) : absl::StrCat(folder, "/", name);
  };
  // Tanka's ranks, highest first: the environment (the bundle's folder), the project's
  // lib, the environment's own vendor, the project's vendor.
  out.folders = {path, under(*root, "lib"), under(path, "vendor"), under(*root, "vendor")};
  out.folders.erase(std::unique(out.folders.begin(), out.folders.end()), out.folders.end());
  return out;
}

std::vector<std::string> JsonnetEntryFiles(const std::string& path,
                                           const std::vector<RepoFile>& files) {
  const std::string prefix = path.empty() ? "" : path + "/";
  for (const RepoFile& file : files) {
    if (file.path == prefix + "main.jsonnet") return {file.path};
  }
  // Argo CD's directory mode: every *.jsonnet directly in the path (not *.libsonnet,
  // which are libraries), in name order.
  std::vector<std::string> entries;
  for (const RepoFile& file : files) {
    absl::string_view rest(file.path);
    if (!absl::ConsumePrefix(&rest, prefix) || rest.find('/') != absl::string_view::npos) {
      continue;
    }
    if (absl::EndsWith(rest, ".jsonnet")) entries.push_back(file.path);
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

absl::StatusOr<ObjectSet> JsonnetRenderer::Render(const RenderInput& input) {
  std::map<std::string, const RepoFile*> files;
  for (const RepoFile& file : input.files) files[file.path] = &file;
  std::vector<std::string> entries = JsonnetEntryFiles(input.path, input.files);
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine jsonnet: no main.jsonnet and no other *.jsonnet file in ",
                     input.path.empty() ? std::string("the repository root") : input.path));
  }
  static const Values kNoValues;
  const Values& values = input.values != nullptr ? *input.values : kNoValues;
  for (const std::string& tla : input.jsonnet_tlas) {
    std::pair<std::string, std::string> spec = absl::StrSplit(tla, absl::MaxSplits('=', 1));
    const std::string& value_name = spec.second.empty() ? spec.first : spec.second;
    if (values.count(value_name) == 0) {
      if (input.read_values != nullptr) (*input.read_values)[value_name] = std::nullopt;
      return absl::InvalidArgumentError(absl::StrCat("jsonnet top-level argument ", spec.first,
                                                     ": no value \"", value_name, "\""));
    }
  }
  // Where a Tanka environment's namespaced objects that name none go: its spec.json's
  // spec.namespace, or an inline environment's (EvaluateEntry).
  absl::StatusOr<SpecJson> spec_json = ReadSpecJson(files, input.path);
  if (!spec_json.ok()) return spec_json.status();
  std::string origin_of_namespace =
      input.path.empty() ? "spec.json" : absl::StrCat(input.path, "/spec.json");
  std::string ns = spec_json->ns;
  ObjectSet set;
  size_t bytes = 0;
  const JsonnetLibraries libraries = JsonnetLibraryPaths(input.path, files);
  // Where the project's root was looked for: a marker added or removed renders again.
  std::vector<std::string> read_paths = libraries.markers;
  ReadValues read_values;
  for (const std::string& main_path : entries) {
    std::string inline_namespace;
    absl::Status evaluated =
        EvaluateEntry(files, main_path, input, values, libraries.folders, spec_json->defaults, &set,
                      &bytes, &read_paths, &read_values, &inline_namespace);
    if (input.read_values != nullptr) *input.read_values = read_values;
    if (!evaluated.ok()) {
      // The program's own error (InvalidArgument: a time or memory limit is another code)
      // depends on what it read up to there.
      if (input.failed_reads != nullptr && absl::IsInvalidArgument(evaluated)) {
        std::sort(read_paths.begin(), read_paths.end());
        read_paths.erase(std::unique(read_paths.begin(), read_paths.end()), read_paths.end());
        *input.failed_reads = read_paths;
      }
      return evaluated;
    }
    if (inline_namespace.empty()) continue;
    if (!ns.empty() && ns != inline_namespace) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Tanka environments disagree on the namespace: ", origin_of_namespace, " says ", ns,
          ", the inline environment of ", main_path, " says ", inline_namespace));
    }
    ns = inline_namespace;
    origin_of_namespace = absl::StrCat("the inline environment of ", main_path);
  }
  if (!ns.empty()) {
    if (absl::Status valid = ValidateName("namespace", ns); !valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin_of_namespace, ": spec.namespace: ", valid.message()));
    }
    if (input.notes != nullptr) {
      input.notes->push_back(absl::StrCat("namespaced objects that name no namespace go to ", ns,
                                          " (", origin_of_namespace,
                                          ": spec.namespace), unless the bundle has --namespace"));
    }
    set.set_default_namespace(ns);
  }
  if (input.read_paths != nullptr) {
    std::sort(read_paths.begin(), read_paths.end());
    read_paths.erase(std::unique(read_paths.begin(), read_paths.end()), read_paths.end());
    *input.read_paths = read_paths;
  }
  return set;
}

absl::Status JsonnetRenderer::EvaluateEntry(
    const std::map<std::string, const RepoFile*>& files, const std::string& main_path,
    const RenderInput& input, const Values& values, const std::vector<std::string>& libraries,
    const TankaDefaults& file_defaults, ObjectSet* set, size_t* bytes,
    std::vector<std::string>* read_paths, ReadValues* read_values, std::string* inline_namespace) {
  // libjsonnet cannot be interrupted, so a program that runs too long (or forever) is
  // evaluated in a child process that is killed at the deadline.
  absl::StatusOr<std::string> encoded =
      !options_.isolate
          ? absl::StatusOr<std::string>(
                Encode(Evaluate(files, main_path, input, values, libraries)))
          : RunInChild([&] { return Encode(Evaluate(files, main_path, input, values, libraries)); },
                       options_.timeout, options_.limits.max_bytes * 2 + (1 << 20),
                       options_.limits.max_memory_bytes);
  if (!encoded.ok()) {
    return absl::Status(encoded.status().code(),
                        absl::StrCat("jsonnet ", main_path, ": ", encoded.status().message()));
  }
  absl::StatusOr<Evaluation> evaluation = Decode(*encoded);
  if (!evaluation.ok()) return evaluation.status();
  read_values->insert(evaluation->read_values.begin(), evaluation->read_values.end());
  if (evaluation->error) {
    // What it imported, and looked for, up to the error: what the error depends on.
    read_paths->insert(read_paths->end(), evaluation->read_paths.begin(),
                       evaluation->read_paths.end());
    return absl::InvalidArgumentError(absl::StrCat(
        "jsonnet: ", absl::StripTrailingAsciiWhitespace(evaluation->text.substr(0, 4096))));
  }
  YAML::Node value;
  try {
    value = YAML::Load(evaluation->text);
  } catch (const YAML::Exception& e) {
    return absl::InternalError(absl::StrCat("jsonnet output is not JSON: ", e.what()));
  }
  read_paths->insert(read_paths->end(), evaluation->read_paths.begin(),
                     evaluation->read_paths.end());
  std::vector<YAML::Node> nodes;
  std::vector<InlineEnvironment> environments;
  CollectObjects(value, &nodes, &environments);
  if (environments.size() > 1) {
    // Tanka asks which (--name); so does a bundle: both sets in one cluster is no one's
    // intent.
    std::vector<std::string> names;
    for (const InlineEnvironment& environment : environments) names.push_back(environment.name);
    return absl::InvalidArgumentError(
        absl::StrCat(main_path, " returns ", environments.size(), " Tanka inline environments (",
                     ListNames(names),
                     "); a bundle renders one: keep one per file, or choose one with a "
                     "top-level argument (--tla)"));
  }
  TankaDefaults inline_defaults;
  if (!environments.empty()) {
    *inline_namespace = environments.front().ns;
    GF_RETURN_IF_ERROR(ReadResourceDefaults(environments.front().spec,
                                            absl::StrCat("the inline environment of ", main_path),
                                            &inline_defaults));
  }
  const TankaDefaults& defaults = environments.empty() ? file_defaults : inline_defaults;
  if (!defaults.labels.empty() || !defaults.annotations.empty()) {
    for (YAML::Node& node : nodes) ApplyResourceDefaults(defaults, node);
    if (input.notes != nullptr) {
      std::vector<std::string> keys;
      for (const auto& [key, value] : defaults.labels) keys.push_back("label " + key);
      for (const auto& [key, value] : defaults.annotations) keys.push_back("annotation " + key);
      std::string note = absl::StrCat(defaults.origin, ": spec.resourceDefaults: ", ListNames(keys),
                                      " added to every object that sets none");
      if (std::find(input.notes->begin(), input.notes->end(), note) == input.notes->end()) {
        input.notes->push_back(std::move(note));
      }
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string origin = absl::StrCat(main_path, " (output object ", i + 1, ")");
    absl::StatusOr<std::string> yaml = EmitBlockYaml(nodes[i]);
    if (!yaml.ok()) return yaml.status();
    absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(*yaml, origin);
    if (!objects.ok()) return objects.status();
    absl::Status added =
        AddObjects(input.bundle, origin, *std::move(objects), options_.limits, set, bytes);
    if (!added.ok()) return added;
  }
  return absl::OkStatus();
}

namespace {

class JsonnetFactory : public RendererFactory {
 public:
  std::string name() const override { return "jsonnet"; }
  bool takes_values() const override { return true; }
  bool reads_outside_path() const override { return true; }
  int detect_order() const override { return 30; }
  bool Detects(const std::string& path, const std::vector<RepoFile>& files) const override {
    return !JsonnetEntryFiles(path, files).empty();
  }
  std::unique_ptr<Renderer> Create(const EngineOptions& options) const override {
    return std::make_unique<JsonnetRenderer>(
        JsonnetOptions{options.timeout, options.limits, options.isolate_jsonnet});
  }
};

const bool kRegistered = RegisterRendererFactory(std::make_unique<JsonnetFactory>());

}  // namespace
}  // namespace gitfleet
