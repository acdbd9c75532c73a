#include <map>

extern "C" {
#include <libjsonnet.h>
}

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/manifest/yaml.h"
#include "controlplane/render/renderer.h"
#include "yaml-cpp/yaml.h"

namespace gitfleet {
namespace {

struct ImportContext {
  JsonnetVm* vm;
  const std::map<std::string, const RepoFile*>* files;
  std::vector<std::string>* imported;
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
  bool escapes = false;
  std::string path = Resolve(base, relative, &escapes);
  if (escapes) {
    return Copy(ctx->vm,
                absl::StrCat("import \"", relative, "\": escapes the repository; refused"));
  }
  auto it = ctx->files->find(path);
  if (it == ctx->files->end()) {
    return Copy(ctx->vm, absl::StrCat("import \"", relative, "\": ", path,
                                      " is not in the repository at this commit"));
  }
  *found_here = Copy(ctx->vm, path);
  *success = 1;
  ctx->imported->push_back(path);
  return Copy(ctx->vm, it->second->content);
}

// Flattens the program's value into object nodes.
void CollectObjects(const YAML::Node& value, std::vector<YAML::Node>* out) {
  if (value.IsSequence()) {
    for (const YAML::Node& item : value) CollectObjects(item, out);
  } else if (value.IsMap() && value["apiVersion"] && value["kind"]) {
    out->push_back(value);
  } else if (value.IsMap()) {
    std::map<std::string, YAML::Node> sorted;
    for (const auto& entry : value) sorted[entry.first.Scalar()] = entry.second;
    for (const auto& [key, item] : sorted) CollectObjects(item, out);
  }
}

}  // namespace

absl::StatusOr<ObjectSet> JsonnetRenderer::Render(const RenderInput& input) {
  std::map<std::string, const RepoFile*> files;
  for (const RepoFile& file : input.files) files[file.path] = &file;
  std::string main_path = input.path.empty() ? "main.jsonnet" : input.path + "/main.jsonnet";
  auto main = files.find(main_path);
  if (main == files.end()) {
    return absl::InvalidArgumentError(absl::StrCat("engine jsonnet: ", main_path, " not found"));
  }
  JsonnetVm* vm = jsonnet_make();
  jsonnet_max_stack(vm, 500);
  // The bundle path as a whole (a new kustomization.yaml there changes the engine), plus
  // every file imported from anywhere.
  std::vector<std::string> read = {input.path};
  ImportContext ctx{vm, &files, &read};
  jsonnet_import_callback(vm, &Import, &ctx);
  int error = 0;
  char* out =
      jsonnet_evaluate_snippet(vm, main_path.c_str(), main->second->content.c_str(), &error);
  std::string text = out ? out : "";
  jsonnet_realloc(vm, out, 0);
  jsonnet_destroy(vm);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("jsonnet: ", absl::StripTrailingAsciiWhitespace(text.substr(0, 4096))));
  }
  YAML::Node value;
  try {
    value = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InternalError(absl::StrCat("jsonnet output is not JSON: ", e.what()));
  }
  if (input.read_paths != nullptr) *input.read_paths = read;
  std::vector<YAML::Node> nodes;
  CollectObjects(value, &nodes);
  ObjectSet set;
  size_t bytes = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string origin = absl::StrCat(main_path, " (output object ", i + 1, ")");
    absl::StatusOr<std::string> yaml = EmitBlockYaml(nodes[i]);
    if (!yaml.ok()) return yaml.status();
    absl::StatusOr<std::vector<v1::ManifestObject>> objects = ParseManifests(*yaml, origin);
    if (!objects.ok()) return objects.status();
    absl::Status added =
        AddObjects(input.bundle, origin, *std::move(objects), limits_, &set, &bytes);
    if (!added.ok()) return added;
  }
  return set;
}

}  // namespace gitfleet
