#include "cli/cli.h"

#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <map>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "cli/output.h"
#include "cli/views.pb.h"
#include "common/file_system.h"
#include "common/grpc_status.h"
#include "common/manifest/hash.h"
#include "common/manifest/object.h"
#include "common/manifest/yaml.h"
#include "common/model/cluster_group.h"
#include "common/model/label_selector.h"
#include "common/model/revision.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "controlplane/api/auth.h"
#include "controlplane/fleet/rollout.h"
#include "controlplane/fleet/rollout_verdict.h"
#include "controlplane/fleet/variants.h"
#include "controlplane/render/chart_fetcher.h"
#include "controlplane/render/file_patterns.h"
#include "controlplane/render/fleet_cluster_groups.h"
#include "controlplane/render/helm_renderer.h"
#include "controlplane/render/remote_bases.h"
#include "controlplane/render/renderer.h"
#include "controlplane/render/sops.h"
#include "controlplane/source/git_repository.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/gitfleet/v1/admin.grpc.pb.h"

namespace gitfleet::cli {
namespace {

constexpr char kGlobalUsage[] = R"(
global flags:
  --server=ADDR          control plane gRPC address (default 127.0.0.1:7070, or $GITFLEET_SERVER)
  -o, --output=FORMAT    table (default), json or yaml
  --timeout=DURATION     per request (default 30s)
  --tls-ca, --tls-cert, --tls-key   TLS to the control plane
  --token-file=FILE      API token to present (default: $GITFLEET_TOKEN; none on loopback
                         to a control plane without --api-tokens)
)";

struct UsageError {
  std::string message;
};

// Flags that stand alone (from the command table); every other flag takes a value, as
// --flag=value or --flag value.
bool IsBoolFlag(const std::string& name);

// Parsed command line: positional words and --flags (--flag=value or --flag value; a
// boolean flag alone means true).
class Args {
 public:
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& raw) {
    Args args;
    for (size_t i = 0; i < raw.size(); ++i) {
      const std::string& a = raw[i];
      if (a == "-o") {
        if (i + 1 >= raw.size()) return absl::InvalidArgumentError("-o needs a format");
        args.flags_["output"].push_back(raw[++i]);
      } else if (absl::StartsWith(a, "-o") && a.size() > 2 && a[2] != '-') {
        args.flags_["output"].push_back(a.substr(2));
      } else if (a == "-w") {
        args.flags_["watch"].push_back("true");  // kubectl's short form
      } else if (a == "-h" || a == "--help") {
        args.flags_["help"].push_back("true");
      } else if (absl::StartsWith(a, "--")) {
        size_t eq = a.find('=');
        std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
        if (name.empty()) return absl::InvalidArgumentError(absl::StrCat("bad flag \"", a, "\""));
        if (eq != std::string::npos) {
          args.flags_[name].push_back(a.substr(eq + 1));
        } else if (IsBoolFlag(name)) {
          args.flags_[name].push_back("true");  // --prune=false to turn one off
        } else if (i + 1 < raw.size() && !absl::StartsWith(raw[i + 1], "--")) {
          args.flags_[name].push_back(raw[++i]);  // --values k=v, as kubectl and flux take it
        } else {
          args.flags_[name].push_back("true");  // the command says what it wanted instead
        }
      } else {
        args.words_.push_back(a);
      }
    }
    return args;
  }

  const std::vector<std::string>& words() const { return words_; }
  bool Has(const std::string& name) const { return flags_.count(name) > 0; }
  // The last value of a flag given several times.
  std::optional<std::string> Take(const std::string& name) {
    std::vector<std::string> all = TakeAll(name);
    if (all.empty()) return std::nullopt;
    return all.back();
  }
  std::vector<std::string> TakeAll(const std::string& name) {
    auto it = flags_.find(name);
    if (it == flags_.end()) return {};
    std::vector<std::string> values = std::move(it->second);
    flags_.erase(it);
    return values;
  }
  std::string TakeOr(const std::string& name, const std::string& fallback) {
    return Take(name).value_or(fallback);
  }
  absl::StatusOr<bool> TakeBool(const std::string& name, bool fallback) {
    std::optional<std::string> v = Take(name);
    if (!v.has_value()) return fallback;
    if (*v == "true" || *v == "1" || *v == "yes") return true;
    if (*v == "false" || *v == "0" || *v == "no") return false;
    return absl::InvalidArgumentError(absl::StrCat("--", name, "=", *v, ": want true or false"));
  }
  // Any flag left over was not understood by the command.
  absl::Status CheckAllUsed() const {
    if (flags_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("unknown flag --", flags_.begin()->first));
  }

 private:
  std::vector<std::string> words_;
  std::map<std::string, std::vector<std::string>> flags_;
};

// "k=v,k2=v2" (values may not hold commas here; the API takes any).
absl::StatusOr<std::map<std::string, std::string>> ParsePairs(const std::string& flag,
                                                              const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view pair : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    size_t eq = pair.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": \"", pair, "\" is not KEY=VALUE"));
    }
    std::string key(absl::StripAsciiWhitespace(pair.substr(0, eq)));
    if (!out.emplace(key, std::string(pair.substr(eq + 1))).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": ", key, " is given twice (which one would win?)"));
    }
  }
  return out;
}

std::vector<std::string> SplitList(const std::optional<std::string>& text) {
  if (!text.has_value()) return {};
  return absl::StrSplit(*text, ',', absl::SkipWhitespace());
}

// The per-cluster value flags shared by `bundle add` and `render`.
absl::Status TakeValueFlags(Args& args, v1::Bundle* bundle) {
  absl::StatusOr<bool> allow_empty = args.TakeBool("allow-empty", false);
  if (!allow_empty.ok()) return allow_empty.status();
  bundle->set_allow_empty(*allow_empty);
  absl::StatusOr<bool> substitute = args.TakeBool("substitute", false);
  if (!substitute.ok()) return substitute.status();
  bundle->set_substitute(*substitute);
  if (std::optional<std::string> values = args.Take("values")) {
    absl::StatusOr<std::map<std::string, std::string>> pairs = ParsePairs("values", *values);
    if (!pairs.ok()) return pairs.status();
    bundle->mutable_values()->insert(pairs->begin(), pairs->end());
  }
  for (const std::string& rule : args.TakeAll("cluster-values")) {
    if (rule.empty()) continue;  // --cluster-values= : none
    size_t semi = rule.find(';');
    if (semi == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cluster-values=", rule, ": want 'SELECTOR;KEY=VALUE,...'"));
    }
    absl::StatusOr<std::map<std::string, std::string>> pairs =
        ParsePairs("cluster-values", rule.substr(semi + 1));
    if (!pairs.ok()) return pairs.status();
    v1::ClusterValues* values = bundle->add_cluster_values();
    values->set_selector(rule.substr(0, semi));
    values->mutable_values()->insert(pairs->begin(), pairs->end());
  }
  // Which files of a plain bundle's folder it reads; "--exclude=" says none.
  for (const std::string& pattern : SplitList(args.Take("include"))) bundle->add_include(pattern);
  for (const std::string& pattern : SplitList(args.Take("exclude"))) bundle->add_exclude(pattern);
  for (const auto& [what, patterns] :
       {std::pair{"--include", &bundle->include()}, std::pair{"--exclude", &bundle->exclude()}}) {
    absl::StatusOr<PathPatterns> parsed =
        PathPatterns::Parse(std::vector<std::string>(patterns->begin(), patterns->end()), what);
    if (!parsed.ok()) return parsed.status();
  }
  if (std::optional<std::string> decrypt = args.Take("decrypt")) {
    if (!decrypt->empty() && *decrypt != "sops") {
      return absl::InvalidArgumentError(
          absl::StrCat("--decrypt=", *decrypt, ": want sops (or empty for none)"));
    }
    bundle->set_decrypt(*decrypt);
  }
  for (const std::string& tla : SplitList(args.Take("tla"))) bundle->add_jsonnet_tlas(tla);
  for (const std::string& file : SplitList(args.Take("values-file"))) {
    bundle->add_helm_values_files(file);
  }
  if (std::optional<std::string> version = args.Take("kube-version")) {
    bundle->set_helm_kube_version(*version);
  }
  if (std::optional<std::string> release = args.Take("release")) {
    bundle->set_helm_release(*release);
  }
  if (std::optional<std::string> app = args.Take("argocd-app")) {
    GF_RETURN_IF_ERROR(ValidateArgoCdAppName("--argocd-app", *app));
    bundle->set_argocd_app(*app);
  }
  for (const std::string& api_version : SplitList(args.Take("api-versions"))) {
    bundle->add_helm_api_versions(api_version);
  }
  return CheckHelmCapabilities(bundle->helm_kube_version(),
                               std::vector<std::string>(bundle->helm_api_versions().begin(),
                                                        bundle->helm_api_versions().end()));
}

// The flags of `bundle add` that `bundle set` changes one at a time, each with the part of
// the definition it sets.
struct BundleFlag {
  const char* name;
  void (*copy)(const v1::Bundle& from, v1::Bundle* to);
};
using B = v1::Bundle;
constexpr BundleFlag kBundleFlags[] = {
    {"source", [](const B& f, B* t) { t->set_source(f.source()); }},
    {"path", [](const B& f, B* t) { t->set_path(f.path()); }},
    {"selector", [](const B& f, B* t) { t->set_selector(f.selector()); }},
    {"namespace", [](const B& f, B* t) { t->set_target_namespace(f.target_namespace()); }},
    {"engine", [](const B& f, B* t) { t->set_engine(f.engine()); }},
    {"prune", [](const B& f, B* t) { t->mutable_sync()->set_prune(f.sync().prune()); }},
    {"self-heal", [](const B& f, B* t) { t->mutable_sync()->set_self_heal(f.sync().self_heal()); }},
    {"prune-last",
     [](const B& f, B* t) { t->mutable_sync()->set_prune_last(f.sync().prune_last()); }},
    {"service-account",
     [](const B& f, B* t) { t->mutable_sync()->set_service_account(f.sync().service_account()); }},
    {"create-namespace",
     [](const B& f, B* t) {
       t->mutable_sync()->set_create_namespace(f.sync().create_namespace());
     }},
    {"ignore-difference",
     [](const B& f, B* t) {
       *t->mutable_sync()->mutable_ignore_differences() = f.sync().ignore_differences();
     }},
    {"allow-empty", [](const B& f, B* t) { t->set_allow_empty(f.allow_empty()); }},
    {"substitute", [](const B& f, B* t) { t->set_substitute(f.substitute()); }},
    {"values", [](const B& f, B* t) { *t->mutable_values() = f.values(); }},
    {"cluster-values", [](const B& f, B* t) { *t->mutable_cluster_values() = f.cluster_values(); }},
    {"tla", [](const B& f, B* t) { *t->mutable_jsonnet_tlas() = f.jsonnet_tlas(); }},
    {"values-file",
     [](const B& f, B* t) { *t->mutable_helm_values_files() = f.helm_values_files(); }},
    {"partition",
     [](const B& f, B* t) {
       t->mutable_rollout()->clear_partitions();
       for (const std::string& p : f.rollout().partitions()) {
         if (!p.empty()) t->mutable_rollout()->add_partitions(p);  // --partition= : none
       }
     }},
    {"partition-size",
     [](const B& f, B* t) {
       t->mutable_rollout()->set_partition_size(f.rollout().partition_size());
     }},
    {"max-unavailable",
     [](const B& f, B* t) {
       t->mutable_rollout()->set_max_unavailable(f.rollout().max_unavailable());
     }},
    {"paced", [](const B& f, B* t) { t->mutable_rollout()->set_paced(f.rollout().paced()); }},
    {"progress-deadline",
     [](const B& f, B* t) {
       t->mutable_rollout()->set_progress_deadline_seconds(f.rollout().progress_deadline_seconds());
     }},
    {"bake-time",
     [](const B& f, B* t) { t->mutable_rollout()->set_bake_seconds(f.rollout().bake_seconds()); }},
    {"depends-on", [](const B& f, B* t) { *t->mutable_depends_on() = f.depends_on(); }},
    {"max-prune", [](const B& f, B* t) { t->set_max_prune(f.max_prune()); }},
    {"include", [](const B& f, B* t) { *t->mutable_include() = f.include(); }},
    {"exclude", [](const B& f, B* t) { *t->mutable_exclude() = f.exclude(); }},
    {"decrypt", [](const B& f, B* t) { t->set_decrypt(f.decrypt()); }},
    {"kube-version", [](const B& f, B* t) { t->set_helm_kube_version(f.helm_kube_version()); }},
    {"release", [](const B& f, B* t) { t->set_helm_release(f.helm_release()); }},
    {"argocd-app", [](const B& f, B* t) { t->set_argocd_app(f.argocd_app()); }},
    {"api-versions",
     [](const B& f, B* t) { *t->mutable_helm_api_versions() = f.helm_api_versions(); }},
};

class Cli {
 public:
  Cli(Args args, std::ostream& out, std::ostream& err)
      : args_(std::move(args)), out_(out), err_(err) {}

  // One gitfleetctl command: the words that name it, its synopsis and help as --help
  // prints them, the flags that stand alone, and what runs it. The usage text is made
  // from this table, so it lists exactly the commands there are.
  struct Command {
    std::vector<std::string> words;
    std::string synopsis;  // after the words
    std::string help;      // lines under it
    std::vector<std::string> bool_flags;
    int (Cli::*run)();
  };
  static const std::vector<Command>& Commands();
  // The command named by the longest prefix of `words`; null when none is.
  static const Command* FindCommand(const std::vector<std::string>& words);
  static std::string UsageText();

  int Run() {
    if (args_.Take("help").has_value()) {
      out_ << UsageText();
      return 0;
    }
    if (args_.words().empty()) {
      err_ << UsageText();
      return 2;
    }
    format_ = args_.TakeOr("output", "table");
    if (format_ != "table" && format_ != "json" && format_ != "yaml") {
      return Usage(absl::StrCat("output format \"", format_, "\" is not table, json or yaml"));
    }
    const char* env_server = std::getenv("GITFLEET_SERVER");
    server_ = args_.TakeOr("server", env_server ? env_server : "127.0.0.1:7070");
    absl::Duration timeout;
    if (!absl::ParseDuration(args_.TakeOr("timeout", "30s"), &timeout) ||
        timeout <= absl::ZeroDuration()) {
      return Usage("--timeout wants a duration such as 30s");
    }
    timeout_ = timeout;
    tls_ = {args_.TakeOr("tls-cert", ""), args_.TakeOr("tls-key", ""), args_.TakeOr("tls-ca", "")};
    token_file_ = args_.TakeOr("token-file", "");

    const std::vector<std::string>& w = args_.words();
    const Command* command = FindCommand(w);
    if (command == nullptr) {
      return Usage(absl::StrCat("unknown command \"", absl::StrJoin(w, " "), "\""));
    }
    return (this->*command->run)();
  }

 private:
  // Listings (status, cluster list, bundle list) ask for pages of this many, and give up
  // after that many pages.
  static constexpr int kPageSize = 5000;
  static constexpr int kMaxPages = 10000;
  // Clusters a rollout's status lists per partition unless --clusters says otherwise.
  static constexpr int kRolloutClusters = 50;
  // rollout status -w reads every status of a bundle that targets at most this many
  // clusters at each look; of a bigger one, only once each has taken the render.
  static constexpr int kWatchStatusesFrom = 1000;
  // The control plane answered a tally with statuses (a version before tallies).
  bool tally_unknown_ = false;
  // ... and ends with 1 on a render failure that lasts this long.
  static constexpr absl::Duration kWatchRenderFailure = absl::Seconds(30);

  int Usage(const std::string& message) {
    err_ << "gitfleetctl: " << message << " (see gitfleetctl --help)\n";
    return 2;
  }

  // The single positional argument after the command's two words.
  absl::StatusOr<std::string> Name(size_t position, const char* what) {
    const std::vector<std::string>& w = args_.words();
    if (w.size() <= position) return absl::InvalidArgumentError(absl::StrCat("missing ", what));
    if (w.size() > position + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", w[position + 1], "\""));
    }
    return w[position];
  }

  // The API token: from --token-file, else $GITFLEET_TOKEN, else none. Empty and
  // oversized files are errors: a token silently not sent is a confusing refusal.
  absl::StatusOr<std::string> ReadToken() {
    if (!token_file_.empty()) {
      absl::StatusOr<std::string> text = PosixFileSystem().ReadFile(token_file_);
      if (!text.ok())
        return absl::InvalidArgumentError(absl::StrCat("--token-file: ", text.status().message()));
      std::string token(absl::StripAsciiWhitespace(*text));
      if (token.empty() || token.size() > 4096 ||
          token.find_first_of(" \t\r\n") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--token-file: ", token_file_, " must hold one token of 1 to 4096 characters"));
      }
      return token;
    }
    const char* env = std::getenv("GITFLEET_TOKEN");
    return std::string(env == nullptr ? "" : absl::StripAsciiWhitespace(env));
  }

  // A context for one call: its deadline, and the token if there is one.
  std::unique_ptr<grpc::ClientContext> NewContext() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
    if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
    return context;
  }

  int TokenNew() { return Token(true); }
  int TokenHash() { return Token(false); }

  int Token(bool generate) {
    const std::vector<std::string>& w = args_.words();
    if (w.size() != 4) return Usage(absl::StrCat("token ", w[1], " wants NAME ROLE"));
    absl::StatusOr<Role> role = ParseRole(w[3]);
    if (!role.ok()) return Usage(std::string(role.status().message()));
    if (absl::Status s = ValidateName("caller", w[2]); !s.ok()) {
      return Usage(std::string(s.message()));
    }
    // A team's share of the fleet: the SCOPE fields of the line, checked as the control
    // plane will read them.
    std::vector<std::string> scope_fields;
    for (const char* key :
         {"bundles", "sources", "repos", "credentials", "clusters", "namespaces", "service-account",
          "sops-keys", "kinds", "deny-kinds", "cluster-kinds"}) {
      if (std::optional<std::string> value = args_.Take(key)) {
        const bool spaced = absl::StrContains(*value, ' ') || absl::StrContains(*value, '\t');
        if (absl::StrContains(*value, '"')) {
          return Usage(absl::StrCat("--", key, " holds a double quote"));
        }
        scope_fields.push_back(spaced ? absl::StrCat(key, "=\"", *value, "\"")
                                      : absl::StrCat(key, "=", *value));
      }
    }
    if (!scope_fields.empty()) {
      std::vector<std::string> unquoted;
      for (const std::string& field : scope_fields) {
        unquoted.push_back(absl::StrReplaceAll(field, {{"\"", ""}}));
      }
      if (absl::StatusOr<Scope> scope = Scope::Parse(unquoted); !scope.ok()) {
        return Usage(absl::StrCat("token ", w[1], ": ", scope.status().message()));
      }
    }
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    std::string token;
    if (generate) {
      token = RandomToken("gft_");
      if (token.empty()) {
        err_ << "gitfleetctl: no randomness for a token\n";
        return 1;
      }
    } else {
      absl::StatusOr<std::string> read = ReadToken();
      if (!read.ok()) return Usage(std::string(read.status().message()));
      token = *read;
      if (token.empty() && token_file_.empty()) {
        std::string line;
        std::getline(std::cin, line);
        token = std::string(absl::StripAsciiWhitespace(line));
      }
      if (token.empty())
        return Usage("token hash: no token in --token-file, $GITFLEET_TOKEN or standard input");
    }
    if (generate) out_ << token << "\n";
    out_ << TokenLine(w[2], *role, token, absl::StrJoin(scope_fields, " ")) << "\n";
    if (generate) {
      err_ << "gitfleetctl: the first line is the token (shown once: give it to the caller); "
              "the second goes into the control plane's --api-tokens file\n";
    }
    return 0;
  }

  absl::Status Connect() {
    absl::StatusOr<std::string> token = ReadToken();
    if (!token.ok()) return token.status();
    token_ = *token;
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = MakeChannelCredentials(tls_);
    if (!creds.ok()) return creds.status();
    // Whatever the control plane will send (its --max-message-bytes), not gRPC's 4 MiB:
    // cluster list and bundle list are answered in one message.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 << 20);
    channel_ = grpc::CreateCustomChannel(server_, *creds, args);
    stub_ = v1::AdminService::NewStub(channel_);
    return absl::OkStatus();
  }

  // Prints a failed call's status; exit code 1. UNAVAILABLE is both what gRPC says when it
  // cannot connect and what the control plane answers for a state that will pass (a source
  // not fetched yet): only the first is "cannot reach", told by the channel not being
  // connected once the call failed.
  int Failed(const grpc::Status& status) {
    std::string message = status.error_message();
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
        (channel_ == nullptr || channel_->GetState(false) != GRPC_CHANNEL_READY)) {
      message = absl::StrCat("cannot reach the control plane at ", server_, ": ", message);
    }
    err_ << "gitfleetctl: " << absl::StatusCodeToString(FromGrpcStatus(status).code()) << ": "
         << message << "\n";
    return 1;
  }

  template <typename Request, typename Response>
  int Call(grpc::Status (v1::AdminService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                          Response*),
           const Request& request, Response* response) {
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    if (absl::Status s = Connect(); !s.ok()) return Usage(std::string(s.message()));
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    grpc::Status status = ((*stub_).*method)(context.get(), request, response);
    return status.ok() ? 0 : Failed(status);
  }

  // Every page of a listing, in order, each handed to `add` to take its entries:
  // a big fleet's does not fit in one message (gRPC's default is 4 MiB). Bounded, in case
  // a server keeps giving tokens.
  template <typename Request, typename Response, typename Add>
  int CallPages(grpc::Status (v1::AdminService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                               Response*),
                Request request, const char* what, Add add) {
    request.set_page_size(kPageSize);
    for (int pages = 0;; ++pages) {
      if (pages == kMaxPages) {
        err_ << "gitfleetctl: the control plane gave more than " << kMaxPages << " pages of "
             << what << "\n";
        return 1;
      }
      Response page;
      if (int rc = Call(method, request, &page); rc != 0) return rc;
      add(page);
      if (page.next_page_token().empty()) return 0;
      request.set_page_token(page.next_page_token());
    }
  }

  int Print(const google::protobuf::Message& message) {
    if (absl::Status s = PrintMessage(message, format_, out_); !s.ok()) {
      err_ << "gitfleetctl: " << s.message() << "\n";
      return 1;
    }
    return 0;
  }

  int SourceAdd() {
    absl::StatusOr<std::string> name = Name(2, "source name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::AddSourceRequest request;
    v1::Source* source = request.mutable_source();
    source->set_name(*name);
    std::optional<std::string> url = args_.Take("url");
    if (!url.has_value() || url->empty()) return Usage("source add needs --url");
    source->set_url(*url);
    source->set_ref(args_.TakeOr("ref", ""));  // empty: the remote's default branch
    source->set_credentials_ref(args_.TakeOr("credentials", ""));
    absl::StatusOr<bool> submodules = args_.TakeBool("submodules", false);
    if (!submodules.ok()) return Usage(std::string(submodules.status().message()));
    source->set_submodules(*submodules);
    absl::StatusOr<bool> lfs = args_.TakeBool("lfs", false);
    if (!lfs.ok()) return Usage(std::string(lfs.status().message()));
    source->set_lfs(*lfs);
    source->set_verify_commits(args_.TakeOr("verify-commits", ""));
    source->set_fleet_gitrepo(args_.TakeOr("fleet-gitrepo", ""));
    if (!source->fleet_gitrepo().empty()) {
      if (absl::Status s = ValidateGitRepoName("--fleet-gitrepo", source->fleet_gitrepo());
          !s.ok()) {
        return Usage(std::string(s.message()));
      }
    }
    if (std::optional<std::string> interval = args_.Take("interval")) {
      absl::Duration d;
      if (!absl::ParseDuration(*interval, &d) || d < absl::Seconds(1)) {
        return Usage(absl::StrCat("--interval=", *interval, ": want a duration of at least 1s"));
      }
      source->set_poll_interval_seconds(absl::ToInt64Seconds(d));
    }
    absl::StatusOr<bool> replace = args_.TakeBool("replace", false);
    if (!replace.ok()) return Usage(std::string(replace.status().message()));
    request.set_replace(*replace);
    absl::StatusOr<bool> rename = args_.TakeBool("rename-releases", false);
    if (!rename.ok()) return Usage(std::string(rename.status().message()));
    if (*rename && !*replace) return Usage("--rename-releases goes with --replace");
    request.set_rename_releases(*rename);
    v1::SourceInfo info;
    if (int rc = Call(&v1::AdminService::Stub::AddSource, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    out_ << "source " << info.source().name() << (info.has_replaced() ? " replaced" : " added");
    if (!info.commit().empty())
      out_ << " (" << (info.source().ref().empty() ? "default branch" : info.source().ref())
           << " at " << Short(info.commit()) << ")";
    out_ << "\n";
    if (info.has_replaced()) {
      for (const std::string& change : SourceChanges(info.replaced(), info.source())) {
        out_ << "  " << change << "\n";
      }
    }
    if (!info.error().empty()) out_ << "warning: " << info.error() << "\n";
    return 0;
  }

  int SourceList() {
    if (args_.words().size() > 2) return Usage("source list takes no arguments");
    v1::ListSourcesResponse response;
    if (int rc = Call(&v1::AdminService::Stub::ListSources, v1::ListSourcesRequest(), &response);
        rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    Table table({"NAME", "URL", "REF", "CREDENTIALS", "COMMIT", "FETCHED", "ERROR"});
    for (const v1::SourceInfo& s : response.sources()) {
      table.Add({s.source().name(),
                 absl::StrCat(s.source().url(), s.source().submodules() ? " (+submodules)" : "",
                              s.source().lfs() ? " (+lfs)" : "",
                              s.source().verify_commits().empty()
                                  ? ""
                                  : absl::StrCat(" (signed: ", s.source().verify_commits(), ")")),
                 !s.source().ref().empty() ? s.source().ref()
                 : s.branch().empty()      ? "(default)"
                                           : absl::StrCat("(default: ", s.branch(), ")"),
                 !s.source().credentials_ref().empty() ? s.source().credentials_ref()
                 : !s.credentials_from_prefix().empty()
                     ? absl::StrCat(s.credentials_from_prefix(), " (--git-credentials)")
                     : "-",
                 absl::StrCat(
                     Short(s.commit()),
                     s.signed_by().empty() ? "" : absl::StrCat(" (signed by ", s.signed_by(), ")")),
                 FormatTime(s.fetched_time()), s.error()});
    }
    table.Print(out_);
    return 0;
  }

  int SourceRemove() {
    absl::StatusOr<std::string> name = Name(2, "source name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::RemoveSourceRequest request;
    request.set_name(*name);
    v1::RemoveSourceResponse response;
    if (int rc = Call(&v1::AdminService::Stub::RemoveSource, request, &response); rc != 0)
      return rc;
    if (format_ == "table") out_ << "source " << *name << " removed\n";
    return format_ == "table" ? 0 : Print(response);
  }

  // The flags of `bundle add` (and `bundle set`) into `request`, each at its default when
  // not given. 0, or the usage error's exit code.
  int ParseBundleFlags(v1::AddBundleRequest& request) {
    v1::Bundle* bundle = request.mutable_bundle();
    bundle->set_source(args_.TakeOr("source", ""));
    bundle->set_path(args_.TakeOr("path", ""));
    bundle->set_selector(args_.TakeOr("selector", ""));
    bundle->set_target_namespace(args_.TakeOr("namespace", ""));
    bundle->set_engine(args_.TakeOr("engine", ""));
    bundle->mutable_sync()->set_service_account(args_.TakeOr("service-account", ""));
    if (!bundle->sync().service_account().empty()) {
      if (absl::Status s = ValidateServiceAccount(bundle->sync().service_account()); !s.ok()) {
        return Usage(absl::StrCat("--service-account: ", s.message()));
      }
    }
    if (absl::Status s = TakeValueFlags(args_, bundle); !s.ok()) {
      return Usage(std::string(s.message()));
    }
    absl::StatusOr<bool> prune = args_.TakeBool("prune", true);
    absl::StatusOr<bool> self_heal = args_.TakeBool("self-heal", true);
    absl::StatusOr<bool> replace = args_.TakeBool("replace", false);
    absl::StatusOr<bool> allow_removal = args_.TakeBool("allow-removal", false);
    absl::StatusOr<bool> create_namespace = args_.TakeBool("create-namespace", false);
    absl::StatusOr<bool> prune_last = args_.TakeBool("prune-last", false);
    absl::StatusOr<bool> paced = args_.TakeBool("paced", false);
    for (const auto* b :
         {&prune, &self_heal, &replace, &allow_removal, &create_namespace, &prune_last, &paced}) {
      if (!b->ok()) return Usage(std::string(b->status().message()));
    }
    bundle->mutable_sync()->set_prune_last(*prune_last);
    bundle->mutable_sync()->set_prune(*prune);
    bundle->mutable_sync()->set_self_heal(*self_heal);
    bundle->mutable_sync()->set_create_namespace(*create_namespace);
    // Fields left to others; "--ignore-difference=" says none (bundle set clears them).
    for (const std::string& rule : args_.TakeAll("ignore-difference")) {
      if (rule.empty()) continue;
      absl::StatusOr<v1::IgnoreDifference> parsed = ParseIgnoreDifference(rule);
      if (!parsed.ok()) {
        return Usage(absl::StrCat("--ignore-difference=", parsed.status().message()));
      }
      *bundle->mutable_sync()->add_ignore_differences() = *std::move(parsed);
    }
    request.set_replace(*replace);
    request.set_allow_removal(*allow_removal);
    v1::RolloutStrategy* rollout = bundle->mutable_rollout();
    for (const std::string& selector : args_.TakeAll("partition"))
      rollout->add_partitions(selector);
    rollout->set_partition_size(args_.TakeOr("partition-size", ""));
    rollout->set_max_unavailable(args_.TakeOr("max-unavailable", ""));
    rollout->set_paced(*paced);
    // "--progress-deadline=" is the default (bundle set clears one with it).
    if (std::optional<std::string> deadline = args_.Take("progress-deadline");
        deadline.has_value() && !deadline->empty()) {
      absl::Duration d;
      if (!absl::ParseDuration(*deadline, &d) || d < absl::Seconds(1)) {
        return Usage(absl::StrCat("--progress-deadline=", *deadline,
                                  ": want a duration of at least 1s (10m, 1h)"));
      }
      rollout->set_progress_deadline_seconds(absl::ToInt64Seconds(d));
    }
    // "--bake-time=" is none (bundle set clears one with it).
    if (std::optional<std::string> bake = args_.Take("bake-time");
        bake.has_value() && !bake->empty()) {
      absl::Duration d;
      if (!absl::ParseDuration(*bake, &d) || d < absl::Seconds(1)) {
        return Usage(
            absl::StrCat("--bake-time=", *bake, ": want a duration of at least 1s (30m, 2h)"));
      }
      rollout->set_bake_seconds(absl::ToInt64Seconds(d));
    }
    if (rollout->ByteSizeLong() == 0) bundle->clear_rollout();
    bundle->set_max_prune(args_.TakeOr("max-prune", ""));
    if (absl::Status valid = ValidateMaxPrune(bundle->max_prune()); !valid.ok()) {
      return Usage(std::string(valid.message()));
    }
    if (std::optional<std::string> deps = args_.Take("depends-on")) {
      // "--depends-on=" says "none"; an empty name inside a list is a slip (a name lost
      // in an edit), not something to guess around.
      if (!absl::StripAsciiWhitespace(*deps).empty()) {
        for (absl::string_view dep : absl::StrSplit(*deps, ',')) {
          dep = absl::StripAsciiWhitespace(dep);
          if (dep.empty()) {
            return Usage(
                absl::StrCat("--depends-on=", *deps, ": an empty bundle name in the list"));
          }
          bundle->add_depends_on(std::string(dep));
        }
      }
    }
    return 0;
  }

  int BundleAdd() {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::AddBundleRequest request;
    if (int rc = ParseBundleFlags(request); rc != 0) return rc;
    if (request.bundle().source().empty()) return Usage("bundle add needs --source");
    request.mutable_bundle()->set_name(*name);
    return AddBundle(request);
  }

  // `bundle add`'s flags, each of which replaces that part of the bundle's definition;
  // what is not given stays as it is.
  int BundleSet() {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    if (args_.Has("replace")) return Usage("bundle set always replaces: leave out --replace");
    std::vector<const BundleFlag*> given;
    for (const BundleFlag& flag : kBundleFlags) {
      if (args_.Has(flag.name)) given.push_back(&flag);
    }
    v1::AddBundleRequest parsed;
    if (int rc = ParseBundleFlags(parsed); rc != 0) return rc;
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    if (given.empty()) {
      return Usage("bundle set needs a flag to change (any of bundle add's, e.g. --partition)");
    }
    // The one page that starts at its name: a page runs from its token's name on.
    std::optional<v1::Bundle> current;
    v1::ListBundlesRequest one;
    one.set_page_size(1);
    one.set_page_token(*name);
    v1::ListBundlesResponse page;
    if (int rc = Call(&v1::AdminService::Stub::ListBundles, one, &page); rc != 0) return rc;
    if (page.bundles_size() > 0 && page.bundles(0).bundle().name() == *name) {
      current = page.bundles(0).bundle();
    }
    if (!current.has_value()) {
      err_ << "gitfleetctl: NOT_FOUND: bundle " << *name << " not found\n";
      return 1;
    }
    v1::AddBundleRequest request;
    v1::Bundle* bundle = request.mutable_bundle();
    *bundle = *current;
    for (const BundleFlag* flag : given) flag->copy(parsed.bundle(), bundle);
    if (bundle->rollout().ByteSizeLong() == 0) bundle->clear_rollout();
    request.set_replace(true);
    request.set_allow_removal(parsed.allow_removal());
    // Only over the definition read here: a change made meanwhile is not undone.
    request.set_if_generation(current->generation());
    if (BundleChanges(*current, request.bundle()).empty()) {
      if (format_ == "table") out_ << "bundle " << *name << " unchanged\n";
      return 0;
    }
    return AddBundle(request);
  }

  // Sends `request` and says what it did: added, or replaced and what changed.
  int AddBundle(const v1::AddBundleRequest& request) {
    v1::BundleInfo info;
    if (int rc = Call(&v1::AdminService::Stub::AddBundle, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    out_ << "bundle " << info.bundle().name() << (info.has_replaced() ? " replaced" : " added");
    if (!info.revision().empty()) {
      out_ << ": " << info.object_count() << " objects at " << Short(info.commit()) << ", revision "
           << Short(info.revision());
    }
    out_ << "\n";
    // What the replacement changed: a flag left out of a --replace is a flag dropped.
    if (info.has_replaced()) {
      for (const std::string& change : BundleChanges(info.replaced(), info.bundle())) {
        out_ << "  " << change << "\n";
      }
    }
    if (!info.error().empty()) out_ << "warning: " << info.error() << "\n";
    if (!info.waiting().empty()) out_ << "waiting: " << info.waiting() << "\n";
    // Held by its folder (Fleet's paused, a rolloutStrategy that cannot be followed): no
    // cluster gets it, which the one adding it must hear now.
    if (absl::StartsWith(info.rollout(), "paused: ") ||
        absl::StartsWith(info.rollout(), "held: ")) {
      out_ << "warning: " << info.rollout() << "\n";
    }
    // What the render said without failing (what the repository asks that this bundle does
    // not do, files left out) is told when the bundle is added, not only in its list.
    constexpr int kNotesShown = 3;
    for (int i = 0; i < info.notes_size() && i < kNotesShown; ++i) {
      out_ << "note: " << info.notes(i) << "\n";
    }
    if (info.notes_size() > kNotesShown) {
      out_ << "note: " << info.notes_size() - kNotesShown
           << " more: gitfleetctl bundle list -o yaml\n";
    }
    return 0;
  }

  // A bundle's render error and its source's, which keeps it at its last revision too.
  static std::string BundleErrors(const v1::BundleInfo& b) {
    std::vector<std::string> errors;
    if (!b.error().empty()) errors.push_back(b.error());
    if (!b.source_error().empty()) {
      errors.push_back(absl::StrCat("source ", b.bundle().source(), ": ", b.source_error(),
                                    " (stays at its last revision)"));
    }
    if (!b.scope_held().empty()) errors.push_back(absl::StrCat("scope: ", b.scope_held()));
    return absl::StrJoin(errors, "; ");
  }

  int BundleList() {
    if (args_.words().size() > 2) return Usage("bundle list takes no arguments");
    v1::ListBundlesResponse response;
    if (int rc =
            CallPages(&v1::AdminService::Stub::ListBundles, v1::ListBundlesRequest(), "bundles",
                      [&](v1::ListBundlesResponse& page) {
                        for (v1::BundleInfo& b : *page.mutable_bundles()) {
                          *response.add_bundles() = std::move(b);
                        }
                      });
        rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    // CURRENT: targeted clusters that acknowledged the current render, of all targeted
    // (and those the bundle's files leave out, which get nothing).
    Table table({"NAME", "SOURCE", "PATH", "ENGINE", "SELECTOR", "CURRENT", "OBJECTS", "COMMIT",
                 "REVISION", "ROLLOUT", "ERROR"});
    for (const v1::BundleInfo& b : response.bundles()) {
      // A team's bundle: the clusters its scope covers as well.
      const v1::BundleScope& scope = b.bundle().scope();
      table.Add({b.bundle().name(), b.bundle().source(), b.bundle().path(), b.engine(),
                 scope.clusters().empty()
                     ? b.bundle().selector()
                     : absl::StrCat(b.bundle().selector(), b.bundle().selector().empty() ? "" : " ",
                                    "[scope of ", scope.caller(), ": ", scope.clusters(), "]"),
                 absl::StrCat(b.current_clusters(), "/", b.target_clusters(),
                              b.not_deployed_clusters() > 0
                                  ? absl::StrCat(" (", b.not_deployed_clusters(), " left out)")
                                  : ""),
                 absl::StrCat(b.object_count()), Short(b.commit()), Short(b.revision()),
                 absl::StrCat(b.pinned_commit().empty()
                                  ? ""
                                  : absl::StrCat("pinned@", Short(b.pinned_commit()), " "),
                              b.suspended()          ? "suspended"
                              : !b.waiting().empty() ? b.waiting()
                              : b.rollout().empty()  ? (b.pinned_commit().empty() ? "-" : "")
                                                     : b.rollout()),
                 BundleErrors(b)});
    }
    table.Print(out_);
    return 0;
  }

  int BundleRemove() {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::RemoveBundleRequest request;
    request.set_name(*name);
    v1::RemoveBundleResponse response;
    if (int rc = Call(&v1::AdminService::Stub::RemoveBundle, request, &response); rc != 0)
      return rc;
    if (format_ == "table") out_ << "bundle " << *name << " removed\n";
    return format_ == "table" ? 0 : Print(response);
  }

  int ClusterList() {
    if (args_.words().size() > 2) return Usage("cluster list takes no arguments");
    v1::ListClustersResponse response;
    if (int rc =
            CallPages(&v1::AdminService::Stub::ListClusters, v1::ListClustersRequest(), "clusters",
                      [&](v1::ListClustersResponse& page) {
                        for (v1::ClusterInfo& c : *page.mutable_clusters()) {
                          *response.add_clusters() = std::move(c);
                        }
                      });
        rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    Table table({"NAME", "REGISTERED", "CONNECTED", "LABELS", "REPORTED LABELS", "GROUPS",
                 "BUNDLES", "ORPHANS", "LAST SEEN", "KUBERNETES", "VERSION", "PROBLEMS", "NOTES"});
    for (const v1::ClusterInfo& c : response.clusters()) {
      std::map<std::string, std::string> labels(c.labels().begin(), c.labels().end());
      std::map<std::string, std::string> reported(c.reported_labels().begin(),
                                                  c.reported_labels().end());
      std::vector<std::string> groups;  // --cluster-groups: those whose selector matches
      for (const v1::ClusterGroupMembership& group : c.groups()) groups.push_back(group.name());
      std::vector<std::string> problems;
      if (c.adopt_pending()) {
        problems.push_back("adoption pending: takes effect when the agent reconnects");
      } else if (!c.foreign_fleet_id().empty()) {
        problems.push_back(absl::StrCat("served by fleet ", c.foreign_fleet_id(),
                                        ": run gitfleetctl cluster adopt ", c.name()));
      }
      if (!c.refused().empty()) {
        problems.push_back(
            absl::StrCat("agent refused at ", FormatTime(c.refused_at()), ": ", c.refused()));
      }
      if (c.has_old_token_until()) {
        problems.push_back(absl::StrCat("agent on its old token, which works until ",
                                        FormatTime(c.old_token_until()),
                                        ": give it the new one (rotate-token)"));
      }
      if (c.old_token_listed()) {
        problems.push_back(
            "agent on the token of the earlier of its two --agent-tokens lines: give it the "
            "later line's token, then remove the earlier line");
      }
      // Conditions that are fine but say something (what removed bundles left in place).
      std::vector<std::string> notes;
      if (c.suspended()) {
        notes.push_back(absl::StrCat(
            "suspended: no new revisions until gitfleetctl cluster resume ", c.name()));
      }
      for (const v1::ClusterCondition& condition : c.conditions()) {
        if (!condition.ok()) {
          problems.push_back(
              absl::StrCat(condition.type(), " ", condition.reason(), ": ", condition.message()));
        } else if (!condition.message().empty()) {
          notes.push_back(absl::StrCat(condition.type(), ": ", condition.message()));
        }
      }
      table.Add({c.name(), c.registered() ? "yes" : "no", c.connected() ? "yes" : "no",
                 labels.empty() ? "-" : absl::StrJoin(labels, ",", absl::PairFormatter("=")),
                 reported.empty()     ? "-"
                 : reported == labels ? "same"
                                      : absl::StrJoin(reported, ",", absl::PairFormatter("=")),
                 c.groups().empty() ? "-" : absl::StrJoin(groups, ","), absl::StrCat(c.bundles()),
                 c.orphaned_bundles().empty() ? "-" : absl::StrJoin(c.orphaned_bundles(), ","),
                 FormatTime(c.last_seen()),
                 c.kubernetes_version().empty() ? "-" : c.kubernetes_version(), c.agent_version(),
                 problems.empty() ? "-" : absl::StrJoin(problems, "; "),
                 notes.empty() ? "-" : absl::StrJoin(notes, "; ")});
    }
    table.Print(out_);
    return 0;
  }

  // Prints a cluster's new token: once, with what to do with it.
  int PrintToken(const v1::ClusterTokenResponse& response, const std::string& what) {
    if (format_ != "table") return Print(response);
    out_ << response.token() << "\n";
    err_ << "gitfleetctl: cluster " << response.cluster() << " " << what
         << "; the line above is its agent's token, shown once: give it to the agent "
            "(--token-file)\n";
    return 0;
  }

  int ClusterAdd() {
    absl::StatusOr<std::string> name = Name(2, "cluster name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::RegisterClusterRequest request;
    request.set_name(*name);
    absl::StatusOr<LabelMap> labels = ParseLabels(args_.TakeOr("labels", ""));
    if (!labels.ok()) return Usage(absl::StrCat("--labels: ", labels.status().message()));
    request.mutable_labels()->insert(labels->begin(), labels->end());
    v1::ClusterTokenResponse response;
    if (int rc = Call(&v1::AdminService::Stub::RegisterCluster, request, &response); rc != 0) {
      return rc;
    }
    return PrintToken(response, "registered");
  }

  int ClusterLabel() {
    const std::vector<std::string>& w = args_.words();
    if (w.size() < 3) return Usage("cluster label wants NAME K=V,...");
    if (w.size() > 4) return Usage(absl::StrCat("unexpected argument \"", w[4], "\""));
    v1::LabelClusterRequest request;
    request.set_name(w[2]);
    absl::StatusOr<LabelMap> labels = ParseLabels(w.size() == 4 ? w[3] : "");
    if (!labels.ok()) return Usage(std::string(labels.status().message()));
    request.mutable_labels()->insert(labels->begin(), labels->end());
    absl::StatusOr<bool> allow_removal = args_.TakeBool("allow-removal", false);
    if (!allow_removal.ok()) return Usage(std::string(allow_removal.status().message()));
    request.set_allow_removal(*allow_removal);
    v1::LabelClusterResponse response;
    if (int rc = Call(&v1::AdminService::Stub::LabelCluster, request, &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    out_ << "cluster " << w[2] << " labels set; bundles retarget now\n";
    return 0;
  }

  int ClusterRotateToken() {
    absl::StatusOr<std::string> name = Name(2, "cluster name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::RotateClusterTokenRequest request;
    request.set_name(*name);
    if (std::optional<std::string> grace = args_.Take("grace"); grace.has_value()) {
      absl::Duration d;
      if (!absl::ParseDuration(*grace, &d) || d < absl::ZeroDuration() || d > absl::Hours(7 * 24) ||
          d != absl::Trunc(d, absl::Seconds(1))) {
        return Usage(
            absl::StrCat("--grace=", *grace, ": want whole seconds, at most 168h (0, 30m, 24h)"));
      }
      request.set_grace_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(d)));
    }
    v1::ClusterTokenResponse response;
    if (int rc = Call(&v1::AdminService::Stub::RotateClusterToken, request, &response); rc != 0) {
      return rc;
    }
    if (response.has_old_token_valid_until()) {
      return PrintToken(response, absl::StrCat("has a new token; the old one works until ",
                                               FormatTime(response.old_token_valid_until()),
                                               ", when an agent still on it is disconnected"));
    }
    return PrintToken(response, "has a new token (the old one no longer works)");
  }

  int ClusterRemove() {
    absl::StatusOr<std::string> name = Name(2, "cluster name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::RemoveClusterRequest request;
    request.set_name(*name);
    v1::RemoveClusterResponse response;
    if (int rc = Call(&v1::AdminService::Stub::RemoveCluster, request, &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    out_ << "cluster " << *name
         << " removed: its agent is refused from now on; what it holds stays applied\n";
    return 0;
  }

  int SetBundleSuspended(bool suspend) {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::SuspendBundleRequest request;
    request.set_name(*name);
    request.set_suspend(suspend);
    v1::BundleInfo info;
    if (int rc = Call(&v1::AdminService::Stub::SuspendBundle, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    out_ << "bundle " << *name
         << (suspend ? " suspended: no cluster gets a new revision; agents keep enforcing what "
                       "they hold\n"
                     : " resumed\n");
    return 0;
  }
  int BundleRefresh() {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::RefreshBundleRequest request;
    request.set_name(*name);
    v1::BundleInfo info;
    if (int rc = Call(&v1::AdminService::Stub::RefreshBundle, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    out_ << "bundle " << *name << " refreshed: "
         << (info.revision().empty() ? std::string("no revision")
                                     : absl::StrCat("revision ", info.revision().substr(0, 12)))
         << " at "
         << (info.commit().empty() ? std::string("no commit") : info.commit().substr(0, 12))
         << (info.error().empty() ? "" : absl::StrCat("; error: ", info.error())) << "\n";
    return 0;
  }
  int BundleHistory() {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::BundleHistoryRequest request;
    request.set_name(*name);
    if (std::optional<std::string> limit = args_.Take("limit")) {
      int n = 0;
      if (!absl::SimpleAtoi(*limit, &n) || n < 1) {
        return Usage(absl::StrCat("--limit=", *limit, ": want a positive count"));
      }
      request.set_limit(n);
    }
    v1::BundleHistoryResponse response;
    if (int rc = Call(&v1::AdminService::Stub::BundleHistory, request, &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    if (!response.pinned_commit().empty()) {
      out_ << "pinned to commit " << Short(response.pinned_commit())
           << (response.pinned_no_prune() ? ", keeping what it lacks" : "")
           << " (gitfleetctl bundle unpin " << *name << " follows the source again)\n";
    }
    Table table({"REVISION", "COMMIT", "COMMITTED", "OBJECTS", "CURRENT", "APPLIED ON"});
    for (const v1::HistoryEntry& e : response.entries()) {
      std::string where = absl::StrJoin(e.applied(), ",");
      if (e.applied_count() > e.applied_size()) {
        absl::StrAppend(&where, " and ", e.applied_count() - e.applied_size(), " more");
      }
      if (where.empty()) {
        where = e.per_cluster_template()
                    ? "- (template: each cluster runs its own values' revision)"
                    : "-";
      }
      table.Add({Short(e.revision()), Short(e.commit()), FormatTime(e.committed_time()),
                 absl::StrCat(e.object_count()), e.current() ? "yes" : "", where});
    }
    table.Print(out_);
    return 0;
  }

  int PinTo(const std::string& to, bool prune = true) {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::PinBundleRequest request;
    request.set_name(*name);
    request.set_to(to);
    request.set_no_prune(!prune);
    v1::BundleInfo info;
    if (int rc = Call(&v1::AdminService::Stub::PinBundle, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    if (to.empty()) {
      out_ << "bundle " << *name << " unpinned: it follows its source again";
    } else {
      out_ << "bundle " << *name << " pinned to commit " << Short(info.pinned_commit());
    }
    if (!info.revision().empty()) out_ << ", revision " << Short(info.revision());
    out_ << "\n";
    if (!to.empty() && !prune) {
      out_ << "objects that revision lacks stay applied, no longer managed (a revision of its "
              "own: the same objects, pruning nothing)\n";
    }
    if (!info.error().empty()) out_ << "warning: " << info.error() << "\n";
    return 0;
  }
  int BundleRollback() {
    std::optional<std::string> to = args_.Take("to");
    if (!to.has_value() || to->empty()) {
      return Usage("bundle rollback needs --to=REVISION_OR_COMMIT (see bundle history)");
    }
    absl::StatusOr<bool> prune = args_.TakeBool("prune", true);
    if (!prune.ok()) return Usage(std::string(prune.status().message()));
    return PinTo(*to, *prune);
  }
  int BundleUnpin() { return PinTo(""); }

  // A team's bundle taken as the fleet's own: its definition as it is, adopted (with
  // --drop-limits, its scope dropped whole).
  int BundleAdopt() {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    absl::StatusOr<bool> drop = args_.TakeBool("drop-limits", false);
    if (!drop.ok()) return Usage(std::string(drop.status().message()));
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    v1::ListBundlesRequest one;
    one.set_page_size(1);
    one.set_page_token(*name);
    v1::ListBundlesResponse page;
    if (int rc = Call(&v1::AdminService::Stub::ListBundles, one, &page); rc != 0) return rc;
    if (page.bundles_size() == 0 || page.bundles(0).bundle().name() != *name) {
      err_ << "gitfleetctl: NOT_FOUND: bundle " << *name << " not found\n";
      return 1;
    }
    const v1::Bundle& current = page.bundles(0).bundle();
    if (current.scope().adopted() && !*drop) {
      if (format_ == "table") out_ << "bundle " << *name << " is the fleet's already\n";
      return 0;
    }
    v1::AddBundleRequest request;
    *request.mutable_bundle() = current;
    request.set_replace(true);
    request.set_adopt(true);
    request.set_drop_limits(*drop);
    request.set_if_generation(current.generation());
    v1::BundleInfo info;
    if (int rc = Call(&v1::AdminService::Stub::AddBundle, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    if (*drop) {
      out_ << "bundle " << *name << " adopted from caller " << current.scope().caller()
           << " without its limits: it is fenced by its own definition alone (selector "
           << (current.selector().empty() ? "-" : current.selector()) << ")\n";
      if (!info.error().empty()) out_ << "warning: " << info.error() << "\n";
      return 0;
    }
    const v1::BundleScope& scope = info.bundle().scope();
    out_ << "bundle " << *name << " adopted from caller " << scope.caller()
         << ": it keeps its limits (clusters="
         << (scope.clusters().empty() ? "-" : scope.clusters())
         << (scope.namespaces_size() > 0
                 ? absl::StrCat(" namespaces=", absl::StrJoin(scope.namespaces(), ","))
                 : std::string())
         << ") and no longer follows that caller's line\n";
    if (!info.error().empty()) out_ << "warning: " << info.error() << "\n";
    return 0;
  }

  int BundleSuspend() { return SetBundleSuspended(true); }
  int BundleResume() { return SetBundleSuspended(false); }

  int SetClusterSuspended(bool suspend) {
    absl::StatusOr<std::string> name = Name(2, "cluster name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::SuspendClusterRequest request;
    request.set_name(*name);
    request.set_suspend(suspend);
    v1::SuspendClusterResponse response;
    if (int rc = Call(&v1::AdminService::Stub::SuspendCluster, request, &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    out_ << "cluster " << *name
         << (suspend ? " suspended: it receives no new revision of any bundle until resumed\n"
                     : " resumed\n");
    return 0;
  }
  int ClusterSuspend() { return SetClusterSuspended(true); }
  int ClusterResume() { return SetClusterSuspended(false); }

  int PrintRollout(const v1::RolloutStatus& status) {
    if (format_ != "table") return Print(status);
    out_ << "bundle " << status.bundle() << " at " << Short(status.commit())
         << (status.pinned_commit().empty() ? "" : " (pinned)") << ": ";
    if (status.suspended()) {
      out_ << "suspended\n";
    } else if (status.prune_held()) {
      out_ << "HELD by the prune guard (rollout promote lets it through)\n";
    } else if (!status.progressive()) {
      out_ << "no partitions (everywhere at once)\n";
    } else if (status.done()) {
      out_ << (status.partitions_size() == 0
                   ? std::string("no clusters to roll out to")
                   : absl::StrCat("rolled out to all ", status.partitions_size(), " partitions"))
           << "\n";
    } else {
      out_ << (status.paused() ? "PAUSED at " : "at ") << "partition " << status.partition() + 1
           << "/" << status.partitions_size() << "\n";
    }
    if (!status.message().empty() && status.message() != "done") {
      out_ << "  " << status.message() << "\n";
    }
    if (status.progressive() && !status.declared_in().empty()) {
      out_ << "  partitions from " << status.declared_in() << "'s rolloutStrategy\n";
    }
    if (status.partitions_size() == 0) return 0;
    Table table(
        {"PARTITION", "STATE", "CLUSTER", "CONNECTED", "APPLIED", "HEALTH", "READY", "DETAIL"});
    for (const v1::RolloutPartition& p : status.partitions()) {
      const std::string partition =
          absl::StrCat(p.index() + 1, !p.name().empty()       ? " " + p.name()
                                      : !p.selector().empty() ? " " + p.selector()
                                                              : "");
      if (p.clusters_size() == 0 && p.cluster_count() == 0) {
        table.Add({partition, p.state(), "-", "-", "-", "-", "-",
                   p.others_hidden()
                       ? "no clusters in your scope"
                       : "no clusters: they left the bundle since the rollout began"});
      }
      for (const v1::RolloutCluster& c : p.clusters()) {
        std::string health = absl::AsciiStrToLower(v1::HealthState_Name(c.health()));
        table.Add({partition, p.state(), c.name(), c.connected() ? "yes" : "no",
                   c.applied_revision().empty() ? "-" : Short(c.applied_revision()),
                   health.substr(sizeof("health_state_") - 1), c.ready() ? "yes" : "no",
                   c.detail()});
      }
      if (p.cluster_count() > p.clusters_size()) {
        // Those listed are the ones not ready first, so what is left out is mostly ready.
        table.Add({partition, p.state(),
                   absl::StrCat("(", p.cluster_count() - p.clusters_size(), " more)"), "", "", "",
                   "",
                   absl::StrCat(p.cluster_count(), " in all: ", p.ready_count(), " ready, ",
                                p.failed_count(), " failed (--clusters=0 lists them all)")});
      }
    }
    table.Print(out_);
    return 0;
  }

  // --clusters: how many clusters of each partition a rollout's status lists.
  absl::StatusOr<int> ClustersPerPartition() {
    std::optional<std::string> value = args_.Take("clusters");
    if (!value.has_value()) return kRolloutClusters;
    int n = 0;
    if (!absl::SimpleAtoi(*value, &n) || n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--clusters=", *value, ": want a count of clusters per partition (0: all)"));
    }
    return n;
  }

  int RolloutStatus() {
    std::optional<std::string> source = args_.Take("source");
    absl::StatusOr<bool> watch = args_.TakeBool("watch", false);
    if (!watch.ok()) return Usage(std::string(watch.status().message()));
    absl::StatusOr<int> clusters = ClustersPerPartition();
    if (!clusters.ok()) return Usage(std::string(clusters.status().message()));
    std::optional<WatchOptions> options;
    if (*watch) {
      absl::StatusOr<WatchOptions> taken = TakeWatchOptions(*clusters);
      if (!taken.ok()) return Usage(std::string(taken.status().message()));
      options = *std::move(taken);
    }
    if (source.has_value()) {
      if (!*watch) return Usage("--source goes with -w (--watch)");
      if (args_.words().size() > 2) {
        return Usage("rollout status -w takes a bundle name or --source, not both");
      }
      return RolloutWatchSource(*source, *options);
    }
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    if (*watch) return RolloutWatch({*name}, *options);
    if (args_.Has("commit") || args_.Has("watch-timeout")) {
      return Usage("--commit and --watch-timeout go with -w (--watch)");
    }
    v1::GetRolloutRequest request;
    request.set_bundle(*name);
    request.set_clusters_per_partition(*clusters);
    v1::RolloutStatus status;
    if (int rc = Call(&v1::AdminService::Stub::GetRollout, request, &status); rc != 0) return rc;
    return PrintRollout(status);
  }
  // Where a watched rollout stands: 0 done, 1 it cannot get there by itself, -1 not yet;
  // `line` says why, in one line.
  // One bundle rollout status -w follows.
  struct Watched {
    std::string said;
    // A render failure that a retry may mend (a fetch's) is looked at again for a while.
    std::optional<absl::Time> failing_since;
    bool done = false;  // there: rolled out and Healthy
  };

  // rollout status -w's flags.
  struct WatchOptions {
    int clusters = kRolloutClusters;  // per partition, in the status printed
    std::string commit;               // --commit: its first digits, or "" for the newest
    absl::Duration limit;             // --watch-timeout
  };
  absl::StatusOr<WatchOptions> TakeWatchOptions(int clusters) {
    WatchOptions options;
    options.clusters = clusters;
    // Commit ids are lower-case hex: 40 digits (SHA-1), 64 in a SHA-256 repository.
    options.commit = absl::AsciiStrToLower(args_.TakeOr("commit", ""));
    const std::string& commit = options.commit;
    if (!commit.empty()) GF_RETURN_IF_ERROR(ValidateCommitDigits("--commit", commit));
    if (!absl::ParseDuration(args_.TakeOr("watch-timeout", "30m"), &options.limit) ||
        options.limit <= absl::ZeroDuration() || options.limit > absl::Hours(24)) {
      return absl::InvalidArgumentError(
          "--watch-timeout wants a duration such as 30m (at most 24h)");
    }
    return options;
  }

  // rollout status -w --source=S: every bundle of source S (as the first look finds them).
  int RolloutWatchSource(const std::string& source, const WatchOptions& options) {
    std::vector<std::string> names;
    v1::ListBundlesRequest request;
    int rc = CallPages(&v1::AdminService::Stub::ListBundles, request, "bundles",
                       [&](const v1::ListBundlesResponse& page) {
                         for (const v1::BundleInfo& info : page.bundles()) {
                           if (info.bundle().source() == source) {
                             names.push_back(info.bundle().name());
                           }
                         }
                       });
    if (rc != 0) return rc;
    if (names.empty()) {
      err_ << "gitfleetctl: NOT_FOUND: no bundle of source " << source << "\n";
      return 1;
    }
    return RolloutWatch(names, options);
  }

  // rollout status -w, as kubectl's rollout status: follows each bundle's render (of
  // --commit, when given) until every partition is through and every cluster the bundle
  // targets runs it Healthy (0, once every bundle is there), or until one cannot get there
  // by itself (1): its render failed, it is suspended, held by the prune guard or paused,
  // or --watch-timeout (30m, at most 24h) passed. Prints a line whenever where a bundle
  // stands changes, then the status (of each, for several).
  int RolloutWatch(const std::vector<std::string>& names, const WatchOptions& options) {
    const std::string& commit = options.commit;
    const absl::Duration limit = options.limit;
    const absl::Time end = absl::Now() + limit;
    std::map<std::string, Watched> watched;
    for (const std::string& name : names) watched[name];
    // Bounded by the deadline: one look a second.
    while (true) {
      std::map<std::string, v1::BundleInfo> infos;
      if (int rc = LookUpBundles(watched, &infos); rc != 0) return rc;
      size_t done = 0;
      for (auto& [name, w] : watched) {
        if (w.done) {
          ++done;
          continue;
        }
        v1::GetRolloutRequest request;
        request.set_bundle(name);
        request.set_clusters_per_partition(options.clusters);
        request.set_commit(commit);
        // Its state alone, once a second; the clusters only for the status printed at the
        // end (each listing looks at every cluster the bundle targets).
        request.set_summary(true);
        v1::RolloutStatus status;
        if (int rc = Call(&v1::AdminService::Stub::GetRollout, request, &status); rc != 0) {
          return rc;
        }
        RolloutVerdict verdict;
        if (int rc = JudgeRollout(status, infos, commit, &verdict); rc != 0) return rc;
        if (!verdict.render_failed) {
          w.failing_since.reset();
        } else if (!w.failing_since.has_value()) {
          w.failing_since = absl::Now();
          verdict.code = -1;
        } else if (absl::Now() - *w.failing_since < kWatchRenderFailure) {
          verdict.code = -1;
        }
        if (verdict.line != w.said && format_ == "table") {
          out_ << verdict.line << "\n" << std::flush;
          w.said = verdict.line;
        }
        if (verdict.code == 1) {
          if (format_ == "table") return 1;
          request.set_summary(false);
          if (int rc = Call(&v1::AdminService::Stub::GetRollout, request, &status); rc != 0) {
            return rc;
          }
          Print(status);
          return 1;
        }
        if (verdict.code == 0) {
          w.done = true;
          ++done;
        }
      }
      if (done == watched.size()) {
        for (auto& [name, w] : watched) {
          v1::GetRolloutRequest request;
          request.set_bundle(name);
          request.set_clusters_per_partition(options.clusters);
          v1::RolloutStatus status;
          if (int rc = Call(&v1::AdminService::Stub::GetRollout, request, &status); rc != 0) {
            return rc;
          }
          if (int rc = PrintRollout(status); rc != 0) return rc;
        }
        return 0;
      }
      if (absl::Now() >= end) {
        for (auto& [name, w] : watched) {
          if (w.done) continue;
          err_ << "gitfleetctl: rollout of bundle " << name << " not done within "
               << absl::FormatDuration(limit) << " (--watch-timeout): " << w.said << "\n";
        }
        return 1;
      }
      absl::SleepFor(std::min(absl::Seconds(1), end - absl::Now()));
    }
  }

  // The definitions and counts of the bundles `watched` (those the control plane still has): one
  // page that starts at the name for one bundle, the whole listing for several.
  int LookUpBundles(const std::map<std::string, Watched>& watched,
                    std::map<std::string, v1::BundleInfo>* infos) {
    infos->clear();
    v1::ListBundlesRequest request;
    if (watched.size() == 1) {
      request.set_page_size(1);
      request.set_page_token(watched.begin()->first);
      v1::ListBundlesResponse page;
      if (int rc = Call(&v1::AdminService::Stub::ListBundles, request, &page); rc != 0) return rc;
      for (const v1::BundleInfo& info : page.bundles()) (*infos)[info.bundle().name()] = info;
      return 0;
    }
    return CallPages(&v1::AdminService::Stub::ListBundles, request, "bundles",
                     [&](const v1::ListBundlesResponse& page) {
                       for (const v1::BundleInfo& info : page.bundles()) {
                         if (watched.count(info.bundle().name()) > 0) {
                           (*infos)[info.bundle().name()] = info;
                         }
                       }
                     });
  }

  int JudgeRollout(const v1::RolloutStatus& status,
                   const std::map<std::string, v1::BundleInfo>& infos, const std::string& commit,
                   RolloutVerdict* verdict) {
    const std::string& name = status.bundle();
    auto found = infos.find(name);
    if (found == infos.end()) {
      err_ << "gitfleetctl: NOT_FOUND: bundle " << name << " not found (removed meanwhile)\n";
      return 1;
    }
    int rc = 0;
    absl::StatusOr<RolloutVerdict> judged = gitfleet::JudgeRollout(
        found->second, status, commit, kWatchStatusesFrom, [&]() -> absl::StatusOr<StatusTally> {
          v1::GetStatusRequest request;
          request.set_bundle(name);
          StatusTally tally;
          // Counted by the control plane: one small answer however many clusters.
          request.set_tally(true);
          request.set_page_size(1);  // a control plane before tallies: one status, not all
          v1::GetStatusResponse counted;
          if (!tally_unknown_) {
            rc = Call(&v1::AdminService::Stub::GetStatus, request, &counted);
            if (rc != 0) return absl::UnavailableError("said above");
            if (counted.has_tally()) {
              tally.total = counted.tally().total();
              tally.ready = counted.tally().ready();
              tally.first_not_ready = counted.tally().first_not_ready();
              return tally;
            }
            tally_unknown_ = true;  // a control plane before tallies: its statuses, listed
          }
          request.set_tally(false);
          request.set_page_size(0);
          rc = CallPages(&v1::AdminService::Stub::GetStatus, request, "statuses",
                         [&](const v1::GetStatusResponse& got) {
                           for (const v1::BundleStatus& s : got.statuses()) tally.Add(s);
                         });
          if (rc != 0) return absl::UnavailableError("said above");
          return tally;
        });
    if (rc != 0) return rc;
    if (!judged.ok()) {
      err_ << "gitfleetctl: " << judged.status().message() << "\n";
      return 1;
    }
    *verdict = *std::move(judged);
    return 0;
  }

  int RolloutControl(const char* action) {
    absl::StatusOr<std::string> name = Name(2, "bundle name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::ControlRolloutRequest request;
    request.set_bundle(*name);
    request.set_action(action);
    absl::StatusOr<int> clusters = ClustersPerPartition();
    if (!clusters.ok()) return Usage(std::string(clusters.status().message()));
    request.set_clusters_per_partition(*clusters);
    v1::RolloutStatus status;
    if (int rc = Call(&v1::AdminService::Stub::ControlRollout, request, &status); rc != 0) {
      return rc;
    }
    return PrintRollout(status);
  }
  int RolloutPause() { return RolloutControl("pause"); }
  int RolloutResume() { return RolloutControl("resume"); }
  int RolloutPromote() { return RolloutControl("promote"); }

  int ClusterAdopt() {
    absl::StatusOr<std::string> name = Name(2, "cluster name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::AdoptClusterRequest request;
    request.set_cluster(*name);
    v1::AdoptClusterResponse response;
    if (int rc = Call(&v1::AdminService::Stub::AdoptCluster, request, &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    out_ << "cluster " << *name
         << " adopted: its agent takes this control plane's revisions and removals from its "
            "next connect\n";
    return 0;
  }

  int WhoAmI() {
    if (args_.words().size() > 1) return Usage("whoami takes no arguments");
    v1::WhoAmIResponse response;
    if (int rc = Call(&v1::AdminService::Stub::WhoAmI, v1::WhoAmIRequest(), &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    out_ << response.name() << " (" << response.role() << " by " << response.via() << ")\n";
    if (!response.has_scope()) {
      out_ << "scope: the whole fleet\n";
      return 0;
    }
    const v1::CallerScope& scope = response.scope();
    auto line = [&](const char* what, const auto& values, const char* none) {
      out_ << "  " << what << ": " << (values.empty() ? none : absl::StrJoin(values, ", ")) << "\n";
    };
    out_ << "scope (what this caller reaches):\n";
    line("bundles", scope.bundles(), "none");
    line("sources", scope.sources(), "none");
    line("repositories", scope.repos(), "none");
    line("credentials", scope.credentials(), "none");
    out_ << "  clusters: " << (scope.clusters().empty() ? "none" : scope.clusters()) << "\n";
    line("namespaces", scope.namespaces(), "any, on its clusters");
    out_ << "  applies as: "
         << (scope.service_account().empty()
                 ? std::string("the agent on each cluster")
                 : absl::StrCat("service account ", scope.service_account()))
         << "\n";
    line("SOPS keys", scope.sops_keys(), "none (--decrypt=sops is refused)");
    line("kinds", scope.kinds(), "any");
    if (!scope.deny_kinds().empty()) line("never kinds", scope.deny_kinds(), "");
    line("cluster-scoped kinds", scope.cluster_kinds(),
         scope.namespaces().empty() ? "any" : "none");
    return 0;
  }

  int ClusterForget() {
    absl::StatusOr<std::string> name = Name(2, "cluster name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::ForgetBundleRequest request;
    request.set_cluster(*name);
    request.set_bundle(args_.TakeOr("bundle", ""));
    if (request.bundle().empty()) return Usage("cluster forget needs --bundle=NAME");
    absl::StatusOr<bool> prune = args_.TakeBool("prune", false);
    if (!prune.ok()) return Usage(std::string(prune.status().message()));
    request.set_prune(*prune);
    v1::ForgetBundleResponse response;
    if (int rc = Call(&v1::AdminService::Stub::ForgetBundle, request, &response); rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(response);
    out_ << "cluster " << *name << " told to forget bundle " << request.bundle()
         << (*prune ? "; it deletes the objects gitfleet created" : "; its objects stay") << "\n";
    return 0;
  }

  int Backup() {
    if (args_.words().size() > 1) return Usage("backup takes no arguments; use --out=FILE");
    std::string out = args_.TakeOr("out", "");
    if (out.empty()) return Usage("backup needs --out=FILE");
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    if (absl::Status s = Connect(); !s.ok()) return Usage(std::string(s.message()));
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    std::unique_ptr<grpc::ClientReader<v1::BackupChunk>> reader =
        stub_->Backup(context.get(), v1::BackupRequest());
    std::string data;
    v1::BackupChunk chunk;
    while (reader->Read(&chunk)) data += chunk.data();
    grpc::Status status = reader->Finish();
    if (!status.ok()) return Failed(status);
    // Written whole or not at all: a half-written backup must never look like one.
    if (absl::Status written = PosixFileSystem().WriteFileAtomically(out, data); !written.ok()) {
      err_ << "gitfleetctl: " << written.message() << "\n";
      return 1;
    }
    if (format_ == "table")
      out_ << "backup of " << data.size() << " bytes written to " << out << "\n";
    return 0;
  }

  int Events() {
    if (args_.words().size() > 1) return Usage("events takes no arguments");
    v1::WatchEventsRequest request;
    request.set_bundle(args_.TakeOr("bundle", ""));
    request.set_cluster(args_.TakeOr("cluster", ""));
    absl::StatusOr<bool> watch = args_.TakeBool("watch", false);
    if (!watch.ok()) return Usage(std::string(watch.status().message()));
    request.set_follow(*watch);
    if (std::optional<std::string> after = args_.Take("after")) {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(*after, &n)) {
        return Usage(absl::StrCat("--after=", *after, ": want the sequence number of an event"));
      }
      request.set_after_sequence(n);
    }
    request.set_stream(args_.TakeOr("stream", ""));
    for (absl::string_view type :
         absl::StrSplit(args_.TakeOr("type", ""), ',', absl::SkipWhitespace())) {
      request.add_types(std::string(absl::StripAsciiWhitespace(type)));
    }
    if (format_ == "yaml") return Usage("events prints one line per event: -o table or -o json");
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    if (absl::Status s = Connect(); !s.ok()) return Usage(std::string(s.message()));
    if (!request.bundle().empty() || !request.cluster().empty()) {
      // A name the control plane does not know may be one to come (a watcher started before
      // `bundle add`), or a typo that would follow nothing in silence: say so, and go on.
      v1::GetStatusRequest known;
      known.set_bundle(request.bundle());
      known.set_cluster(request.cluster());
      known.set_page_size(1);
      v1::GetStatusResponse ignored;
      std::unique_ptr<grpc::ClientContext> context = NewContext();
      grpc::Status status = stub_->GetStatus(context.get(), known, &ignored);
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        err_ << "gitfleetctl: " << status.error_message()
             << "; following its events anyway, from when it appears\n";
        err_.flush();
      }
    }
    // With -w, a stream that breaks (the control plane restarted, the network went) is
    // opened again, resuming after the last event printed: the control plane then sends
    // what followed, or a resync first when it cannot. Until interrupted.
    // (A first call that gets nowhere fails as any command does.)
    absl::Duration backoff = absl::Seconds(1);
    bool received = false;
    for (bool again = false;; again = true) {
      std::unique_ptr<grpc::ClientContext> context = NewContext();
      if (*watch) {
        context->set_deadline(std::chrono::system_clock::time_point::max());
        // A reconnection waits for the control plane to be back rather than failing.
        context->set_wait_for_ready(again);
      }
      std::unique_ptr<grpc::ClientReader<v1::Event>> reader =
          stub_->WatchEvents(context.get(), request);
      v1::Event event;
      while (reader->Read(&event)) {
        received = true;
        backoff = absl::Seconds(1);
        if (event.type() == "resync") {
          // Of a stream it may not know yet: resume from its start.
          if (event.stream() != request.stream()) request.set_after_sequence(0);
        } else {
          request.set_after_sequence(event.sequence());
        }
        request.set_stream(event.stream());
        if (int rc = PrintEvent(event); rc != 0) return rc;
      }
      grpc::Status status = reader->Finish();
      const bool broken = status.ok() || status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                          status.error_code() == grpc::StatusCode::CANCELLED ||
                          status.error_code() == grpc::StatusCode::ABORTED;
      if (*watch && broken && received) {
        err_ << "gitfleetctl: the event stream ended"
             << (status.ok() ? std::string() : absl::StrCat(" (", status.error_message(), ")"))
             << "; resuming in " << absl::FormatDuration(backoff) << "\n";
        err_.flush();
        absl::SleepFor(backoff);
        backoff = std::min(backoff * 2, absl::Seconds(30));
        continue;
      }
      return status.ok() ? 0 : Failed(status);
    }
  }

  int PrintEvent(const v1::Event& event) {
    if (format_ == "json") {
      absl::StatusOr<std::string> line = CompactJson(event);
      if (!line.ok()) {
        err_ << "gitfleetctl: " << line.status().message() << "\n";
        return 1;
      }
      out_ << *line << "\n";
    } else {
      out_ << FormatTime(event.time()) << "  " << event.type();
      if (!event.source().empty()) out_ << "  source=" << event.source();
      if (!event.bundle().empty()) out_ << "  bundle=" << event.bundle();
      if (!event.cluster().empty()) out_ << "  cluster=" << event.cluster();
      if (!event.commit().empty()) out_ << "  commit=" << Short(event.commit());
      if (!event.revision().empty()) out_ << "  revision=" << Short(event.revision());
      if (!event.message().empty()) out_ << "  " << event.message();
      out_ << "\n";
    }
    out_.flush();
    return 0;
  }

  int Diff() {
    if (args_.words().size() > 1)
      return Usage("diff takes no arguments; use --cluster and --bundle");
    v1::DiffBundleRequest request;
    request.set_cluster(args_.TakeOr("cluster", ""));
    request.set_bundle(args_.TakeOr("bundle", ""));
    if (request.cluster().empty() || request.bundle().empty()) {
      return Usage("diff needs --cluster=NAME and --bundle=NAME");
    }
    request.set_timeout_seconds(
        static_cast<int>(std::max<int64_t>(1, absl::ToInt64Seconds(timeout_) - 1)));
    v1::DiffResult result;
    if (int rc = Call(&v1::AdminService::Stub::DiffBundle, request, &result); rc != 0) return rc;
    if (!result.error().empty()) {
      err_ << "gitfleetctl: " << result.cluster() << ": " << result.error() << "\n";
      return 1;
    }
    std::map<std::string, int> counts;
    for (const v1::ObjectDiff& d : result.changes()) ++counts[d.change()];
    if (format_ != "table") {
      Print(result);
    } else {
      Table table({"CHANGE", "OBJECT", "DETAIL"});
      for (const v1::ObjectDiff& d : result.changes()) {
        table.Add({d.change(), KeyDisplay(d.key()), d.detail()});
      }
      if (result.changes_size() > 0) table.Print(out_);
      out_ << result.cluster() << "/" << result.bundle() << " at revision "
           << Short(result.revision()) << ": " << counts["create"] << " to create, "
           << counts["update"] << " to update, " << counts["prune"] << " to prune, "
           << result.unchanged() << " unchanged"
           << (counts["keep"] > 0 ? absl::StrCat(", ", counts["keep"], " kept") : "")
           << (counts["error"] > 0 ? absl::StrCat(", ", counts["error"], " failed") : "") << "\n";
    }
    // What is kept is listed, but is no change.
    return result.changes_size() > counts["keep"] ? 3 : 0;
  }

  int Status() {
    if (args_.words().size() > 1)
      return Usage("status takes no arguments; use --cluster or --bundle");
    v1::GetStatusRequest request;
    request.set_cluster(args_.TakeOr("cluster", ""));
    request.set_bundle(args_.TakeOr("bundle", ""));
    StatusList list;
    if (int rc = CallPages(&v1::AdminService::Stub::GetStatus, request, "status",
                           [&](v1::GetStatusResponse& page) {
                             for (const v1::BundleStatus& s : page.statuses()) {
                               *list.add_statuses() = ToRow(s);
                             }
                           });
        rc != 0) {
      return rc;
    }
    if (format_ != "table") return Print(list);
    Table table({"CLUSTER", "BUNDLE", "SYNC", "HEALTH", "DESIRED", "APPLIED", "MESSAGE"});
    // Orphans show as sync "Orphaned" with no desired commit.
    for (const StatusRow& row : list.statuses()) {
      std::string message = row.message();
      if (row.left_unmanaged_count() > 0) {
        // Someone will want to delete these by hand one day: say which (-o json has more).
        std::vector<std::string> first(
            row.left_unmanaged().begin(),
            row.left_unmanaged().begin() + std::min(3, row.left_unmanaged_size()));
        absl::StrAppend(&message, message.empty() ? "" : "; ", row.left_unmanaged_count(),
                        " left unmanaged (prune off): ", absl::StrJoin(first, ", "),
                        row.left_unmanaged_count() > static_cast<int>(first.size()) ? ", ..." : "");
      }
      if (!row.source_error().empty()) {
        absl::StrAppend(&message, message.empty() ? "" : "; ", "source: ", row.source_error(),
                        " (new commits are not seen)");
      }
      table.Add({row.cluster(), row.bundle(), row.sync_state(), row.health(),
                 Short(row.desired_commit()), Short(row.applied_commit()), message});
    }
    table.Print(out_);
    return 0;
  }

  int Sync() {
    absl::StatusOr<std::string> name = Name(1, "source name");
    if (!name.ok()) return Usage(std::string(name.status().message()));
    v1::SyncSourceRequest request;
    request.set_name(*name);
    v1::SourceInfo info;
    if (int rc = Call(&v1::AdminService::Stub::SyncSource, request, &info); rc != 0) return rc;
    if (format_ != "table") return Print(info);
    if (!info.error().empty()) {
      err_ << "gitfleetctl: source " << *name << ": " << info.error() << "\n";
      return 1;
    }
    out_ << "source " << *name << " at " << Short(info.commit()) << "\n";
    return 0;
  }

  int Render() {
    if (args_.words().size() > 1) return Usage("render takes no arguments; use --repo and --path");
    std::string repo = args_.TakeOr("repo", "");
    if (repo.empty()) return Usage("render needs --repo (a directory or a Git URL)");
    std::string ref = args_.TakeOr("ref", "");  // empty: the repository's default branch
    absl::StatusOr<bool> submodules = args_.TakeBool("submodules", false);
    if (!submodules.ok()) return Usage(std::string(submodules.status().message()));
    absl::StatusOr<bool> lfs = args_.TakeBool("lfs", false);
    if (!lfs.ok()) return Usage(std::string(lfs.status().message()));
    std::string path = args_.TakeOr("path", "");
    while (!path.empty() && path.back() == '/') path.pop_back();
    const std::string fleet_gitrepo = args_.TakeOr("fleet-gitrepo", "");
    if (!fleet_gitrepo.empty()) {
      if (absl::Status s = ValidateGitRepoName("--fleet-gitrepo", fleet_gitrepo); !s.ok()) {
        return Usage(std::string(s.message()));
      }
    }
    v1::Bundle bundle;
    // The bundle's name counts in a render: a chart's release by default, and Argo CD's
    // overrides for the Application of that name (.argocd-source-NAME.yaml).
    bundle.set_name(args_.TakeOr("name", "render"));
    if (absl::Status s = ValidateName("--name: bundle", bundle.name()); !s.ok()) {
      return Usage(std::string(s.message()));
    }
    bundle.set_path(path);
    bundle.set_engine(args_.TakeOr("engine", ""));
    bundle.set_target_namespace(args_.TakeOr("namespace", ""));
    if (!bundle.target_namespace().empty()) {
      if (absl::Status s = ValidateName("--namespace", bundle.target_namespace()); !s.ok()) {
        return Usage(std::string(s.message()));
      }
    }
    if (absl::Status s = TakeValueFlags(args_, &bundle); !s.ok()) {
      return Usage(std::string(s.message()));
    }
    v1::ClusterInfo cluster;
    cluster.set_name(args_.TakeOr("cluster", "local"));
    if (std::optional<std::string> labels = args_.Take("labels")) {
      absl::StatusOr<LabelMap> parsed = ParseLabels(*labels);
      if (!parsed.ok()) return Usage(absl::StrCat("--labels: ", parsed.status().message()));
      cluster.mutable_labels()->insert(parsed->begin(), parsed->end());
    }
    // Fleet's cluster groups, as the control plane's --cluster-groups: the cluster is in
    // those whose selector its labels match. Without, whether it is in one is unknown.
    if (std::optional<std::string> groups_file = args_.Take("cluster-groups")) {
      absl::StatusOr<std::string> text = ReadFileAtMost(*groups_file, 1 << 20);
      if (!text.ok()) return Usage(absl::StrCat("--cluster-groups: ", text.status().message()));
      absl::StatusOr<std::vector<ClusterGroup>> groups =
          ParseFleetClusterGroups(*text, "--cluster-groups");
      if (!groups.ok()) return Usage(std::string(groups.status().message()));
      cluster.set_groups_defined(true);
      SetGroups(GroupsMatching(*groups, LabelMap(cluster.labels().begin(), cluster.labels().end())),
                &cluster);
    }
    // Where charts fleet.yaml names outside the repository may come from, as the control
    // plane's --chart-repositories.
    ChartFetchOptions charts;
    charts.allowed = absl::StrSplit(args_.TakeOr("chart-repositories", ""), ',', absl::SkipEmpty());
    if (absl::Status valid = CheckChartPrefixes(charts.allowed); !valid.ok()) {
      return Usage(absl::StrCat("--chart-repositories: ", valid.message()));
    }
    absl::StatusOr<std::map<std::string, std::string>> repository_names = ParseChartRepositoryNames(
        absl::StrSplit(args_.TakeOr("chart-repository-names", ""), ',', absl::SkipEmpty()));
    if (!repository_names.ok()) {
      return Usage(absl::StrCat("--chart-repository-names: ", repository_names.status().message()));
    }
    charts.repository_names = *std::move(repository_names);
    // Where kustomize's remote bases may come from, as its --kustomize-remote-bases.
    std::vector<std::string> remote_bases =
        absl::StrSplit(args_.TakeOr("kustomize-remote-bases", ""), ',', absl::SkipEmpty());
    if (absl::Status valid = CheckRemoteBasePrefixes(remote_bases); !valid.ok()) {
      return Usage(absl::StrCat("--kustomize-remote-bases: ", valid.message()));
    }
    // And the credentials of private ones, as its --chart-credentials and --credentials-dir.
    charts.credentials_dir = args_.TakeOr("credentials-dir", "");
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> chart_credentials =
        ParseChartCredentials(
            absl::StrSplit(args_.TakeOr("chart-credentials", ""), ',', absl::SkipEmpty()),
            charts.allowed);
    if (!chart_credentials.ok()) {
      return Usage(absl::StrCat("--chart-credentials: ", chart_credentials.status().message()));
    }
    charts.credentials = *std::move(chart_credentials);
    // And those of private remote bases, as its --git-credentials.
    absl::StatusOr<CredentialPrefixes> git_credentials = ParseCredentialPrefixes(
        absl::StrSplit(args_.TakeOr("git-credentials", ""), ',', absl::SkipEmpty()));
    if (!git_credentials.ok()) {
      return Usage(absl::StrCat("--git-credentials: ", git_credentials.status().message()));
    }
    for (const auto& [prefix, name] : charts.credentials) {
      if (absl::Status s = LoadChartLogin(charts.credentials_dir, name).status(); !s.ok()) {
        return Usage(absl::StrCat("--chart-credentials: ", s.message()));
      }
    }
    // The age identities of --decrypt=sops, as the control plane's --sops-age-key-file.
    std::optional<AgeIdentities> identities;
    if (std::optional<std::string> key_file = args_.Take("sops-age-key-file")) {
      absl::StatusOr<std::string> text = ReadFileAtMost(*key_file, 64 << 10);
      if (!text.ok()) return Usage(absl::StrCat("--sops-age-key-file: ", text.status().message()));
      absl::StatusOr<AgeIdentities> parsed = AgeIdentities::Parse(*text, "--sops-age-key-file");
      if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
      identities = *std::move(parsed);
    }
    // And its PGP keys, as the control plane's --sops-pgp-key-file.
    std::shared_ptr<PgpKeys> pgp;
    if (std::optional<std::string> key_file = args_.Take("sops-pgp-key-file")) {
      absl::StatusOr<std::string> text = ReadFileAtMost(*key_file, 1 << 20);
      if (!text.ok()) return Usage(absl::StrCat("--sops-pgp-key-file: ", text.status().message()));
      absl::StatusOr<std::shared_ptr<PgpKeys>> imported =
          PgpKeys::Import(*text, {}, "--sops-pgp-key-file");
      if (!imported.ok()) return Usage(std::string(imported.status().message()));
      pgp = *std::move(imported);
    }
    if (absl::Status s = args_.CheckAllUsed(); !s.ok()) return Usage(std::string(s.message()));
    if (bundle.decrypt() == "sops" && !identities.has_value() && pgp == nullptr) {
      return Usage(
          "--decrypt=sops needs --sops-age-key-file or --sops-pgp-key-file (the keys to decrypt "
          "with)");
    }
    if (repo.find("://") == std::string::npos) {
      if (repo[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd)) != nullptr) repo = absl::StrCat(cwd, "/", repo);
      }
      repo = "file://" + repo;
    }
    std::string cache = absl::StrCat("/tmp/gitfleetctl-render-", getpid());
    std::vector<std::string> notes;
    absl::StatusOr<std::string> rendered = RenderLocally(
        repo, ref, bundle, cluster, cache, &notes, *submodules,
        SopsKeys{identities.has_value() ? &*identities : nullptr, pgp.get()}, std::move(charts),
        std::move(remote_bases), *std::move(git_credentials), *lfs, fleet_gitrepo);
    for (const std::string& note : notes) err_ << "gitfleetctl: note: " << note << "\n";
    if (!RemoveRecursively(cache).ok()) err_ << "gitfleetctl: could not remove " << cache << "\n";
    if (IsNotDeployed(rendered.status())) {
      // What the control plane does: nothing of the bundle goes to that cluster.
      err_ << "gitfleetctl: note: " << rendered.status().message()
           << ": nothing of the bundle is deployed on this cluster\n";
      return 0;
    }
    if (!rendered.ok()) {
      err_ << "gitfleetctl: " << rendered.status().message() << "\n";
      return 1;
    }
    out_ << *rendered;
    return 0;
  }

  Args args_;
  std::ostream& out_;
  std::ostream& err_;
  std::string format_;
  std::string server_;
  absl::Duration timeout_;
  TlsFiles tls_;
  std::string token_file_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

const std::vector<Cli::Command>& Cli::Commands() {
  static const auto* const commands = new std::vector<Command>{
      {{"source", "add"},
       "NAME --url=URL [--ref=BRANCH] [--interval=30s] [--credentials=NAME] [--replace]\n"
       "           [--submodules]                     fetch and read the submodules a commit "
       "names\n"
       "           [--lfs]                            read files kept in Git LFS, fetched from its "
       "LFS server\n"
       "           [--verify-commits=KEYS]            take only commits signed by a key of the "
       "control plane's credential folder KEYS\n"
       "           [--fleet-gitrepo=NAME]             the Fleet GitRepo it takes over, when not "
       "named NAME\n"
       "           [--rename-releases]                with --replace: let a new --fleet-gitrepo "
       "rename charts' releases",
       "",
       {"replace", "submodules", "lfs", "rename-releases"},
       &Cli::SourceAdd},
      {{"source", "list"}, "", "", {}, &Cli::SourceList},
      {{"source", "remove"}, "NAME", "", {}, &Cli::SourceRemove},
      {{"bundle", "add"},
       "NAME --source=NAME [--path=DIR] [--selector=SELECTOR] [--namespace=NS]\n"
       "           [--create-namespace]               create NS where a cluster lacks it\n"
       "           [--ignore-difference=[GROUP/]KIND[:NS/NAME]=/POINTER,...]  (repeatable)\n"
       "                                              fields left to others (an HPA's replicas):\n"
       "                                              not drift, applied with their live values\n"
       "           [--engine=plain] [--prune=true] [--self-heal=true] [--allow-empty] [--replace]\n"
       "           [--prune-last]                     prune once every object is Healthy\n"
       "                                              (Argo CD's PruneLast=true)\n"
       "           [--service-account=[NS/]NAME]      apply as this service account (in NS,\n"
       "                                              else the bundle's --namespace): its\n"
       "                                              RBAC on each cluster bounds the bundle\n"
       "           [--include=GLOB,...] [--exclude=GLOB,...]  the files a plain bundle reads\n"
       "           [--decrypt=sops]  decrypt SOPS files with the control plane's keys\n"
       "           [--substitute]                     ${var} in plain/kustomize output (on\n"
       "                                              with any of the value flags)\n"
       "           [--values=K=V,...]                 defaults for every cluster\n"
       "           [--cluster-values='SELECTOR;K=V,...']...  first matching rule wins\n"
       "           [--tla=PARAM[=VALUE],...]          jsonnet top-level arguments\n"
       "           [--values-file=FILE,...]           helm values files, from the chart's folder\n"
       "           [--release=NAME]                   the chart's release (default: fleet.yaml's,\n"
       "                                              else the bundle's name)\n"
       "           [--argocd-app=NAME]                the Argo CD Application it takes over,\n"
       "                                              whose .argocd-source-NAME.yaml applies\n"
       "           [--kube-version=1.30|cluster]      what charts see of the clusters\n"
       "           [--api-versions=GROUP/VERSION[/KIND],...]  (.Capabilities), as Argo CD's;\n"
       "                                              cluster: each cluster's own\n"
       "           [--partition=SELECTOR]...          roll out partition by partition\n"
       "           [--partition-size=N|P%]            the rest cut into partitions of N\n"
       "           [--max-unavailable=N|P%]           per partition (default 0: all Healthy)\n"
       "           [--paced]                          a partition's clusters get it no more at\n"
       "                                              a time than --max-unavailable (at least\n"
       "                                              1), the next once one is Healthy (one\n"
       "                                              down on what it runs gets it first)\n"
       "           [--progress-deadline=10m]          a partition not Healthy by then pauses\n"
       "           [--bake-time=DURATION]             a partition ready stays so this long\n"
       "                                              before the next starts (soak time)\n"
       "           [--max-prune=N|P%|all]             a render deleting more of what the\n"
       "                                              fleet runs is held (default: over half,\n"
       "                                              10 at least); rollout promote lets it\n"
       "           [--depends-on=BUNDLE,...]          applied and Healthy on a cluster first\n"
       "           [--allow-removal]                  let --replace's new selector remove it\n"
       "                                              from clusters it no longer matches",
       "",
       {"prune", "self-heal", "allow-empty", "replace", "substitute", "allow-removal",
        "create-namespace", "prune-last", "paced"},
       &Cli::BundleAdd},
      {{"bundle", "set"},
       "NAME [any of bundle add's flags] [--allow-removal]",
       "change only the flags given (--values= or --partition= clears one); the rest of\n"
       "its definition stays. Refused if it changed since it was read",
       {"prune", "self-heal", "allow-empty", "substitute", "allow-removal", "create-namespace",
        "prune-last", "paced"},
       &Cli::BundleSet},
      {{"bundle", "history"},
       "NAME [--limit=10]",
       "its last revisions: commit, time, and the clusters that run each",
       {},
       &Cli::BundleHistory},
      {{"bundle", "rollback"},
       "NAME --to=REVISION_OR_COMMIT [--prune=false]",
       "pin it to that revision, commit, tag or branch (rendered again) until unpinned;\n"
       "--prune=false keeps objects it lacks applied (unmanaged), whatever the bundle's --prune",
       {"prune"},
       &Cli::BundleRollback},
      {{"bundle", "unpin"}, "NAME", "follow the source again", {}, &Cli::BundleUnpin},
      {{"bundle", "adopt"},
       "NAME",
       "take a team's bundle as the fleet's own (a fleet admin): it keeps its scope's\n"
       "limits and no longer follows its caller's line, so it goes on getting new\n"
       "revisions when that line is gone; --drop-limits drops the scope whole (its\n"
       "clusters, namespaces, kinds and account limits): the bundle is then fenced by its\n"
       "own definition alone, and may reach what the team's could not",
       {"drop-limits"},
       &Cli::BundleAdopt},
      {{"bundle", "suspend"},
       "NAME",
       "no cluster gets a new revision; agents keep enforcing what they hold",
       {},
       &Cli::BundleSuspend},
      {{"bundle", "resume"}, "NAME", "", {}, &Cli::BundleResume},
      {{"bundle", "refresh"},
       "NAME",
       "fetch its source and render it again now, reading anew what it reads from\n"
       "outside its repository (remote bases and files, charts): a release within its\n"
       "range, or a branch a base follows, without waiting for the resync",
       {},
       &Cli::BundleRefresh},
      {{"rollout", "status"},
       "BUNDLE [--clusters=50] [-w [--commit=SHA] [--watch-timeout=30m]] | -w --source=S ...",
       "partitions, their clusters (those not ready first; 0: all), revision, health, and why "
       "it waits;\n"
       "-w follows it (once the bundle is at --commit or a later commit of its history)\n"
       "until every cluster runs it\n"
       "Healthy (exit 0), or until it cannot get there by itself: its render failed, it is\n"
       "suspended, held or paused, or --watch-timeout passed (exit 1); --source=S: every\n"
       "bundle of source S, until all are there or one cannot get there",
       {"watch"},
       &Cli::RolloutStatus},
      {{"rollout", "pause"}, "BUNDLE [--clusters=50]", "", {}, &Cli::RolloutPause},
      {{"rollout", "resume"},
       "BUNDLE [--clusters=50]",
       "go on (also after the gate paused it), with a fresh deadline",
       {},
       &Cli::RolloutResume},
      {{"rollout", "promote"},
       "BUNDLE [--clusters=50]",
       "skip the gate of the partition it is on",
       {},
       &Cli::RolloutPromote},
      {{"bundle", "list"}, "", "", {}, &Cli::BundleList},
      {{"bundle", "remove"}, "NAME", "", {}, &Cli::BundleRemove},
      {{"cluster", "add"},
       "NAME [--labels=K=V,...]",
       "register a cluster: prints its agent token, once",
       {},
       &Cli::ClusterAdd},
      {{"cluster", "label"},
       "NAME K=V,... [--allow-removal]",
       "replace the labels bundles target it by; --allow-removal lets bundles\n"
       "it no longer matches be removed from it",
       {"allow-removal"},
       &Cli::ClusterLabel},
      {{"cluster", "rotate-token"},
       "NAME [--grace=DURATION]",
       "a new token; the old one stops working, or with --grace (at most 168h) keeps\n"
       "working that long, so each agent can be given the new one first",
       {},
       &Cli::ClusterRotateToken},
      {{"cluster", "remove"},
       "NAME",
       "retire it: its agent is refused; what it holds stays applied",
       {},
       &Cli::ClusterRemove},
      {{"cluster", "list"},
       "",
       "with each cluster's orphaned bundles (held, not known here)",
       {},
       &Cli::ClusterList},
      {{"cluster", "suspend"},
       "NAME",
       "maintenance: it receives no new revision of any bundle",
       {},
       &Cli::ClusterSuspend},
      {{"cluster", "resume"}, "NAME", "", {}, &Cli::ClusterResume},
      {{"cluster", "adopt"},
       "NAME",
       "let this control plane replace and remove what the cluster holds\n"
       "(its agent was served by another fleet, or by a newer definition)",
       {},
       &Cli::ClusterAdopt},
      {{"cluster", "forget"},
       "NAME --bundle=B [--prune]",
       "release a bundle the cluster holds (an orphan): the agent forgets\n"
       "it; with --prune it deletes what gitfleet created there",
       {"prune"},
       &Cli::ClusterForget},
      {{"backup"},
       "--out=FILE",
       "a crash-consistent copy of the control plane's store",
       {},
       &Cli::Backup},
      {{"whoami"},
       "",
       "who the control plane takes this caller to be: name, role, scope",
       {},
       &Cli::WhoAmI},
      {{"token", "new"},
       "NAME ROLE [SCOPE]",
       "a new random API token, and its line for --api-tokens",
       {},
       &Cli::TokenNew},
      {{"token", "hash"},
       "NAME ROLE [SCOPE]",
       "the --api-tokens line for the token in --token-file, $GITFLEET_TOKEN\n"
       "or standard input (roles: viewer, operator, admin). SCOPE gives a\n"
       "team part of the fleet: --bundles=GLOB,.. --sources=GLOB,..\n"
       "--repos=URL_PREFIX,.. --credentials=GLOB,.. --clusters=SELECTOR\n"
       "--namespaces=GLOB,.. --service-account=[NS/]NAME\n"
       "--sops-keys=AGE_RECIPIENT|PGP_FINGERPRINT,..\n"
       "--kinds=[GROUP/]KIND,.. --deny-kinds=[GROUP/]KIND,..\n"
       "--cluster-kinds=[GROUP/]KIND,.. (with --namespaces)",
       {},
       &Cli::TokenHash},
      {{"status"}, "[--cluster=NAME] [--bundle=NAME]", "", {}, &Cli::Status},
      {{"diff"},
       "--cluster=NAME --bundle=NAME",
       "what applying the bundle would change on that cluster now (the\n"
       "agent's dry run); exits 0 for nothing, 3 for changes",
       {},
       &Cli::Diff},
      {{"sync"}, "SOURCE", "fetch a source now", {}, &Cli::Sync},
      {{"events"},
       "[--bundle=NAME] [--cluster=NAME] [--type=T,...] [-w] [--after=SEQ --stream=ID]",
       "what happened lately (commits, renders, rollouts, clusters), one line\n"
       "each (-o json: one object each, with its sequence and stream);\n"
       "--type keeps those types (rollout. for every rollout event); -w\n"
       "follows new ones, resuming by itself when the stream breaks;\n"
       "--after/--stream resume after the last event handled\n"
       "(a resync event first if the control plane cannot: it restarted, or\n"
       "no longer keeps them)",
       {"watch"},
       &Cli::Events},
      {{"render"},
       "--repo=DIR_OR_URL [--ref=BRANCH] [--path=DIR] [--name=BUNDLE] [--engine=E] "
       "[--namespace=NS]\n"
       "       [--values=K=V,...] [--labels=K=V,...] [--cluster=NAME] [--cluster-groups=FILE] "
       "[--tla=...] "
       "[--values-file=...] [--release=NAME] [--argocd-app=NAME] [--fleet-gitrepo=NAME] "
       "[--kube-version=V] "
       "[--api-versions=...] "
       "[--include=GLOB,...] "
       "[--exclude=GLOB,...] [--submodules] [--lfs]\n"
       "       [--decrypt=sops --sops-age-key-file=FILE --sops-pgp-key-file=FILE]"
       " [--chart-repositories=URL_PREFIX,...] [--chart-repository-names=NAME=URL,...]\n"
       "       [--chart-credentials=URL_PREFIX=NAME,... --credentials-dir=DIR]"
       " [--kustomize-remote-bases=URL_PREFIX,...]\n"
       "       [--git-credentials=URL_PREFIX=NAME,...]",
       "render locally, without a control plane, for a cluster with\n"
       "these labels; prints the objects after substitution",
       {"allow-empty", "substitute", "submodules", "lfs"},
       &Cli::Render},
  };
  return *commands;
}

const Cli::Command* Cli::FindCommand(const std::vector<std::string>& words) {
  const Command* found = nullptr;
  for (const Command& command : Commands()) {
    if (command.words.size() > words.size()) continue;
    if (!std::equal(command.words.begin(), command.words.end(), words.begin())) continue;
    if (found == nullptr || command.words.size() > found->words.size()) found = &command;
  }
  return found;
}

std::string Cli::UsageText() {
  std::string text =
      "usage: gitfleetctl [--server=ADDR] [-o table|json|yaml] COMMAND\n\ncommands:\n";
  for (const Command& command : Commands()) {
    std::string head = absl::StrCat("  ", absl::StrJoin(command.words, " "));
    if (!command.synopsis.empty()) {
      absl::StrAppend(&head, " ", absl::StrReplaceAll(command.synopsis, {{"\n", "\n  "}}));
    }
    std::vector<std::string> help = absl::StrSplit(command.help, '\n', absl::SkipEmpty());
    // One-line commands keep their help beside them when it fits.
    if (!help.empty() && head.find('\n') == std::string::npos && head.size() < 24) {
      absl::StrAppend(&text, head, std::string(25 - head.size(), ' '), help[0], "\n");
      help.erase(help.begin());
    } else {
      absl::StrAppend(&text, head, "\n");
    }
    for (const std::string& line : help) absl::StrAppend(&text, std::string(25, ' '), line, "\n");
  }
  return text + kGlobalUsage;
}

}  // namespace

std::vector<std::string> CommandNames() {
  std::vector<std::string> names;
  for (const Cli::Command& command : Cli::Commands()) {
    names.push_back(absl::StrJoin(command.words, " "));
  }
  return names;
}

namespace {

bool IsBoolFlag(const std::string& name) {
  if (name == "help") return true;
  for (const Cli::Command& command : Cli::Commands()) {
    for (const std::string& flag : command.bool_flags) {
      if (flag == name) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> RenderLocally(const std::string& url, const std::string& ref,
                                          const v1::Bundle& bundle, const v1::ClusterInfo& cluster,
                                          const std::string& cache_dir,
                                          std::vector<std::string>* notes, bool submodules,
                                          const SopsKeys& sops_keys, ChartFetchOptions charts,
                                          std::vector<std::string> remote_bases,
                                          CredentialPrefixes git_credentials, bool lfs,
                                          const std::string& fleet_gitrepo) {
  GF_ASSIGN_OR_RETURN(ValuesSpec values, ValuesSpec::Parse(bundle));
  std::unique_ptr<GitRepositories> repos =
      NewLibgit2Repositories(cache_dir + "/git", {},
                             {charts.credentials_dir, /*allow_local=*/true,  // the user's own disk
                              std::move(git_credentials)});
  GF_ASSIGN_OR_RETURN(std::shared_ptr<GitRepository> repo, repos->ForUrl(url, "", submodules, lfs));
  GF_RETURN_IF_ERROR(repo->Fetch());
  GF_ASSIGN_OR_RETURN(CommitInfo commit, repo->Resolve(ref));
  const std::string& path = bundle.path();
  absl::StatusOr<std::vector<RepoFile>> files =
      repo->ReadTree(commit.id, path, GitRepository::Unreadable::kRefuse);
  if (!files.ok()) return files.status();
  std::string chosen = bundle.engine().empty() ? DetectEngine(path, *files) : bundle.engine();
  if (absl::Status s = CheckEngineName(chosen); !s.ok()) return s;
  const RendererFactory* factory = FindRendererFactory(chosen);
  EngineOptions options;
  options.scratch_dir = cache_dir;
  options.chart_fetcher = std::make_shared<ChartFetcher>(std::move(charts));
  if (!remote_bases.empty()) {
    options.remote_bases =
        std::make_shared<RemoteBaseFetcher>(repos.get(), std::move(remote_bases));
  }
  std::unique_ptr<Renderer> renderer = factory->Create(options);
  if (factory->reads_outside_path()) {
    files = repo->ReadTree(commit.id, "", GitRepository::Unreadable::kLeaveOut);
    if (!files.ok()) return files.status();
  } else {
    GF_RETURN_IF_ERROR(ReadFilesAbove(*factory, *repo, commit.id, path, &*files));
  }
  // As the control plane: SOPS files decrypted before the engine reads them.
  if (bundle.decrypt() == "sops") {
    if (sops_keys.age == nullptr && sops_keys.pgp == nullptr) {
      return absl::FailedPreconditionError("--decrypt=sops needs age identities or PGP keys");
    }
    GF_RETURN_IF_ERROR(DecryptSopsFiles(path, sops_keys, &*files, notes));
  }
  // As the control plane says it: a tool that found no files where a submodule is.
  const std::string submodule_hint =
      submodules ? "" : SubmoduleHint(*files, "this render does not fetch: give it --submodules");
  // The control plane's own path from engine output to a cluster's revision.
  BundleVariants::Params params;
  params.bundle = bundle.name();
  params.commit = commit.id;
  params.values = values;
  params.allow_empty = bundle.allow_empty();
  params.substitute = WantsSubstitution(bundle);
  params.path = path;
  params.engine = chosen;
  params.target_namespace = bundle.target_namespace();
  absl::StatusOr<std::shared_ptr<const Revision>> revision;
  // As the control plane: a plain or kustomize folder whose fleet.yaml gives clusters their
  // own folder or namespace renders for the cluster what its target gives it.
  const bool per_target = RendersPerFleetTarget(chosen, path, *files);
  params.cluster_context = per_target;
  const bool substitute = per_target && params.substitute;
  auto read_folder = FolderReader(repo, commit.id);
  const HelmCapabilities capabilities{bundle.helm_kube_version(),
                                      std::vector<std::string>(bundle.helm_api_versions().begin(),
                                                               bundle.helm_api_versions().end())};
  if (factory->takes_values() || per_target) {
    std::vector<std::string> tlas(bundle.jsonnet_tlas().begin(), bundle.jsonnet_tlas().end());
    std::vector<std::string> values_files(bundle.helm_values_files().begin(),
                                          bundle.helm_values_files().end());
    auto content = BundleVariants::FromRenderer(
        std::move(params),
        [&](const Values& values, ReadValues* read) {
          RenderInput input{bundle.name(), path, *files, nullptr,
                            &values,       read, tlas,   values_files};
          input.notes = notes;
          input.helm_capabilities = capabilities;
          input.read_folder = read_folder;
          input.target_namespace = bundle.target_namespace();
          input.bundle_helm_release = bundle.helm_release();
          input.argocd_app = bundle.argocd_app();
          input.fleet_gitrepo = fleet_gitrepo;
          input.include.assign(bundle.include().begin(), bundle.include().end());
          input.exclude.assign(bundle.exclude().begin(), bundle.exclude().end());
          absl::StatusOr<ObjectSet> objects = RenderBundlePath(*renderer, input);
          if (objects.ok() && substitute) objects = SubstituteObjects(*objects, values, read);
          if (objects.ok() || submodule_hint.empty() || IsNotDeployed(objects.status())) {
            return objects;
          }
          return absl::StatusOr<ObjectSet>(absl::Status(
              objects.status().code(), absl::StrCat(objects.status().message(), submodule_hint)));
        },
        factory->explicit_values_only());
    revision = content->For(cluster);
  } else {
    RenderInput input{bundle.name(), path, *files};
    input.notes = notes;
    input.helm_capabilities = capabilities;
    input.read_folder = read_folder;
    input.target_namespace = bundle.target_namespace();
    input.bundle_helm_release = bundle.helm_release();
    input.argocd_app = bundle.argocd_app();
    input.fleet_gitrepo = fleet_gitrepo;
    input.include.assign(bundle.include().begin(), bundle.include().end());
    input.exclude.assign(bundle.exclude().begin(), bundle.exclude().end());
    absl::StatusOr<ObjectSet> objects = RenderBundlePath(*renderer, input);
    if (!objects.ok()) {
      return absl::Status(objects.status().code(),
                          absl::StrCat(objects.status().message(), submodule_hint));
    }
    absl::StatusOr<std::shared_ptr<BundleVariants>> content =
        BundleVariants::FromTemplate(std::move(params), *std::move(objects));
    if (!content.ok()) return content.status();
    if (notes != nullptr) {
      notes->insert(notes->end(), (*content)->notes().begin(), (*content)->notes().end());
    }
    revision = (*content)->For(cluster);
  }
  if (!revision.ok()) return revision.status();
  // As the control plane would roll it out: by the folder's fleet.yaml's rolloutStrategy
  // when the bundle has no partitions of its own.
  absl::StatusOr<FleetYamlNamespace> fleet = ReadFleetYamlNamespace(path, *files);
  if (notes != nullptr && fleet.ok() && !Progressive(bundle.rollout())) {
    if (!fleet->rollout_error.empty()) {
      notes->push_back(absl::StrCat(
          fleet->rollout_error,
          ": the control plane holds such a commit from every cluster (give the bundle "
          "partitions of its own, or mend the file)"));
    } else if (const v1::RolloutStrategy strategy =
                   FleetRolloutStrategy(fleet->rollout, fleet->file);
               Progressive(strategy)) {
      notes->push_back(absl::StrCat("rolled out partition by partition, by ", fleet->file,
                                    "'s rolloutStrategy: ", DescribeRolloutStrategy(strategy)));
      for (const std::string& note : fleet->rollout.notes) {
        notes->push_back(absl::StrCat(fleet->file, ": ", note));
      }
    }
  }
  std::string out;
  for (const auto& [key, object] : (*revision)->objects.objects()) {
    absl::StrAppend(&out, out.empty() ? "" : "---\n", object->yaml());
  }
  return out;
}

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Args> parsed = Args::Parse(args);
  if (!parsed.ok()) {
    err << "gitfleetctl: " << parsed.status().message() << " (see gitfleetctl --help)\n";
    return 2;
  }
  return Cli(*std::move(parsed), out, err).Run();
}

}  // namespace gitfleet::cli
