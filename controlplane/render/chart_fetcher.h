#ifndef GITFLEET_CONTROLPLANE_RENDER_CHART_FETCHER_H_
#define GITFLEET_CONTROLPLANE_RENDER_CHART_FETCHER_H_

// Helm charts that live outside the repository: in a chart repository (its index.yaml and
// the archives it lists), as Rancher Fleet's `helm: {repo, chart, version}` names them, or
// at an archive's URL (`helm.chart: https://.../web-1.0.0.tgz`). The control plane fetches
// them (renders themselves have no network), only from the URL prefixes it is told to trust
// (--chart-repositories), each input bounded: the index, the archive, what it unpacks to.
//
//   ChartFetcher charts({.allowed = {"https://charts.example.com/"}});
//   GF_ASSIGN_OR_RETURN(std::shared_ptr<const FetchedChart> chart,
//                       charts.Fetch({"https://charts.example.com/", "web", "^1.2"}));
//   // chart->files: Chart.yaml, values.yaml, templates/... (paths inside the chart)
//
// Thread-safe. An index is read again after `index_ttl`; an archive, once read and checked
// against the index's digest, is kept (up to `max_cached_charts`); one at a URL, without a
// digest, is read again after `index_ttl`.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http.h"
#include "common/sync.h"
#include "controlplane/render/fetch_scope.h"
#include "controlplane/source/git_repository.h"
#include "controlplane/source/github_app.h"

namespace gitfleet {

struct ChartFetchOptions {
  // URL prefixes charts may be fetched from ("https://charts.example.com/"); "*" is any
  // http(s) URL. Empty: none, and a render that needs a chart from elsewhere fails saying so.
  std::vector<std::string> allowed;
  absl::Duration timeout = absl::Seconds(60);
  size_t max_index_bytes = 64 << 20;
  size_t max_archive_bytes = 32 << 20;
  size_t max_chart_bytes = 64 << 20;  // unpacked
  size_t max_chart_files = 10000;
  absl::Duration index_ttl = absl::Minutes(5);
  size_t max_cached_charts = 64;
  // A PEM file of certificate authorities to trust besides the system's; empty: none.
  std::string ca_file;
  // Private chart repositories and registries (--chart-credentials): the credential (a
  // folder of `credentials_dir`, as Git's, see git_credentials.h) each URL prefix uses, the
  // longest prefix a URL is under winning. A credential is sent only to URLs under its
  // prefix (an index's archive on another host gets none, as helm sends none there) and to
  // the token service a registry under it names (https only, as Docker sends it); read
  // again at every fetch, so a rotated Secret needs no restart.
  std::string credentials_dir;
  std::vector<std::pair<std::string, std::string>> credentials;  // prefix, credential name
  // Names charts' dependencies give repositories (`repository: "@stable"` or
  // "alias:stable" in Chart.yaml, which helm resolves from its own repository list, and
  // Argo CD from its repositories' names): name -> URL (--chart-repository-names).
  std::map<std::string, std::string> repository_names;
};

// Parses --chart-repository-names entries ("NAME=URL": a name of letters, digits, '.', '_'
// and '-', an https://, http:// or oci:// URL); at most 100, each name once. InvalidArgument
// naming the first bad entry.
absl::StatusOr<std::map<std::string, std::string>> ParseChartRepositoryNames(
    const std::vector<std::string>& entries);

// What a chart credential holds: a username and password (a token as the password), sent
// as HTTP basic auth or to a registry's token service, and/or the CAs (ca.crt) trusted for
// its servers on top of the system's.
struct ChartLogin {
  std::string name;
  std::string username;
  std::string password;
  std::string ca_pem;
  std::string bearer_token;  // sent as `Authorization: Bearer` instead (not to registries)
  // A GitHub App: its installation token is the password of x-access-token, fetched at use.
  std::optional<GitHubApp> github_app;
  // A client certificate and its key (tls.crt, tls.key), for servers that ask for one.
  std::string client_cert_pem;
  std::string client_key_pem;
};
// InvalidArgument naming the credential and what is wrong: no folder, an SSH key (charts
// are fetched over HTTPS), a username without a password or the reverse.
absl::StatusOr<ChartLogin> LoadChartLogin(const std::string& dir, const std::string& name);

// --chart-credentials=PREFIX=NAME,...: each PREFIX an https:// or oci:// URL prefix (or
// http:// on loopback, for tests) that `allowed` trusts, named once; NAME a credential.
// InvalidArgument naming the entry that is not.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseChartCredentials(
    const std::vector<std::string>& entries, const std::vector<std::string>& allowed);

// A chart to fetch: `name` in the repository at `repo`, at the newest version `version`
// allows (a semver constraint as helm takes it: "1.2.3", "^1.2", "~1.2.0", ">=1 <2", "1.x";
// empty: the newest release); or, when `url` is set, the archive there; or, when `url` is
// an OCI reference ("oci://ghcr.io/org/charts/web"), that chart at the newest tag `version`
// allows.
struct ChartRef {
  std::string repo;
  std::string name;
  std::string version;
  std::string url;
  // "https://charts.example.com/ web ^1.2", for messages.
  std::string Describe() const;
};

// Whether the chart `ref` names can change while `ref` stays the same: the newest version
// (no version), or a range ("^1.2", "1.x") in a chart repository or OCI registry. An exact
// version, or an archive's URL, names one chart.
bool ChartRefMoves(const ChartRef& ref);

struct FetchedChart {
  std::string name;             // from its Chart.yaml
  std::string version;          // the version chosen (from the index), or the archive's
  std::string url;              // the archive's
  std::string digest;           // the index's sha256 of it, when it gives one
  std::vector<RepoFile> files;  // paths inside the chart (Chart.yaml, templates/...)
};

// A chart repository's index.yaml, as much as a fetch needs: each chart's versions.
struct ChartVersion {
  std::string version;
  std::string url;     // the archive's, resolved against the repository's URL
  std::string digest;  // sha256, lower-case hex; empty when the index gives none
};
using ChartIndex = std::map<std::string, std::vector<ChartVersion>>;

// A chart archive's URL with go-getter's `checksum` parameter (`?checksum=sha256:HEX`; the
// type md5, sha1, sha256 or sha512, or none, then known by the digest's length), which
// Fleet's docs offer to check a download: the URL without it, and the digest it asks for
// (`algorithm` empty when it has none). InvalidArgument for a checksum that cannot be
// read, or one in a file (`file:URL`, which gitfleet does not fetch).
struct UrlChecksum {
  std::string url;
  std::string algorithm;  // "sha256", ...
  std::string hex;        // lower case
};
absl::StatusOr<UrlChecksum> SplitUrlChecksum(const std::string& url);

// An archive's URL as go-getter reads it (Fleet's `helm.chart`): the URL to fetch, without
// a folder after "//" in its path (`https://host/v1.tar.gz//charts/web?x=1` fetches
// `https://host/v1.tar.gz?x=1`) nor the `archive` parameter (go-getter's way to say the
// format; gitfleet reads it from the archive itself), and that folder. The folder is read
// only where the URL's path before it names an archive (.tgz, .tar.gz, .zip, ...) or the
// URL says `archive=`: elsewhere "//" is a path's doubled slash, and stays. InvalidArgument
// for `archive=false` (a file, not an archive: no chart).
struct ArchiveUrl {
  std::string url;
  std::string folder;
};
absl::StatusOr<ArchiveUrl> SplitArchiveUrl(const std::string& url);
// InvalidArgument naming `url` (the index's) when `text` is not a chart repository's index.
absl::StatusOr<ChartIndex> ReadChartIndex(const std::string& text, const std::string& repo,
                                          const std::string& url);

// An OCI registry's answer to a request: its status, body and WWW-Authenticate header.
// One bounded HTTP GET: at most `max_bytes` of body, `timeout`, redirects (at most 5) to
// http(s) only; an Authorization header is never sent on to another host (HttpFetch). With `login`,
// its CAs are trusted on top of the system's (and `ca_file`'s), and with `basic` its username and
// password sent, or its bearer token, to that host only (never on a redirect elsewhere, nor
// from https to http).
// An error status is an answer, not an error; ResourceExhausted past `max_bytes`,
// Unavailable when the server cannot be reached.
struct HttpOptions {
  size_t max_bytes = 16 << 20;
  absl::Duration timeout = absl::Seconds(60);
  std::vector<std::string> headers;
  std::string ca_file;
  const ChartLogin* login = nullptr;
  bool basic = false;
};
// A host that answered with a rate limit (RateLimitWait: a 429, or a 403 saying so) is not
// asked again until the time it named: meanwhile HttpGet fails at once (Unavailable,
// naming the host and how long), sending nothing, for every caller.
absl::StatusOr<HttpAnswer> HttpGet(const std::string& url, const HttpOptions& options);

// The parameters of a `WWW-Authenticate: Bearer realm="...",service="...",scope="..."`
// header (lower-cased names); empty when it is not a Bearer challenge.
std::map<std::string, std::string> ReadBearerChallenge(const std::string& header);

// InvalidArgument naming the first of `prefixes` (ChartFetchOptions::allowed) that is not
// an http(s) or oci:// URL prefix, nor "*".
absl::Status CheckChartPrefixes(const std::vector<std::string>& prefixes);

class ChartFetcher {
 public:
  explicit ChartFetcher(ChartFetchOptions options);
  // FailedPrecondition when the URL is not allowed (naming --chart-repositories);
  // NotFound when the repository lists no such chart or no version the constraint allows
  // (naming the newest versions it has); Unavailable when a server cannot be reached or
  // answers an error; InvalidArgument for an index or archive that cannot be read;
  // ResourceExhausted past a bound.
  absl::StatusOr<std::shared_ptr<const FetchedChart>> Fetch(const ChartRef& ref,
                                                            const FetchScope& scope = {});
  // Whether `url` may be fetched.
  bool Allowed(const std::string& url) const;
  // Forgets what the registry repositories `repos` (OciRepositoryKey) listed and their tags
  // named: the next fetch of a chart there reads them again, however recently they were
  // read (a push of a chart told by a webhook).
  void FetchAgain(const std::set<std::string>& repos);
  // Forgets every index and tag list read: the next fetch of any chart reads its
  // repository's anew (an operator's refresh).
  void FetchAllAgain();
  // The URL of the repository a chart's dependency names `name` (ChartFetchOptions::
  // repository_names); nullopt when no name is given it.
  std::optional<std::string> RepositoryNamed(const std::string& name) const;

 private:
  struct Index {
    absl::Time read;
    std::shared_ptr<const ChartIndex> charts;
  };
  // GET `url`, with the credential of the prefix it is under, if any.
  absl::StatusOr<std::string> Get(const std::string& url, size_t max_bytes) const;
  // One request with `headers`; an error status is an answer, not an error. With `login`,
  // its CAs are trusted, and with `basic` its username and password sent (to that host only:
  // never on a redirect elsewhere, nor from https to http).
  absl::StatusOr<HttpAnswer> Request(const std::string& url, size_t max_bytes,
                                     const std::vector<std::string>& headers,
                                     const ChartLogin* login = nullptr, bool basic = false) const;
  // The credential for `url` (an http(s) URL or an oci:// reference): the one of the longest
  // prefix it is under, read now; nullopt under none.
  absl::StatusOr<std::optional<ChartLogin>> LoginFor(const std::string& url) const;
  // A chart in an OCI registry (ref.url "oci://HOST/PATH/NAME", ref.version a version or a
  // constraint), as helm pulls one: its tags, the manifest, the chart layer by digest.
  absl::StatusOr<std::shared_ptr<const FetchedChart>> FetchOci(const ChartRef& ref,
                                                               const FetchScope& scope);
  // How one fetch speaks to a registry: the credential of the chart's prefix, if any, and
  // what the registry asked for (a bearer token from its token service, kept for the next
  // request, or basic auth).
  struct RegistryAuth {
    std::optional<ChartLogin> login;
    std::string token;
    bool basic = false;
  };
  // GET from a registry, with the bearer token it asks for (anonymous, or granted for the
  // credential) or basic auth; *next, when given, is the next page's URL (from a Link
  // header; "" on the last page).
  absl::StatusOr<std::string> RegistryGet(const std::string& url, const std::string& accept,
                                          size_t max_bytes, RegistryAuth* auth,
                                          std::string* next = nullptr) const;
  void Remember(const std::string& key, std::shared_ptr<const FetchedChart> chart, absl::Time now);

  const ChartFetchOptions options_;
  mutable Mutex mu_;
  std::map<std::string, Index> indexes_ ABSL_GUARDED_BY(mu_);  // by repository, or registry
  // The chart layer an OCI tag (OciRepositoryKey, ":", the tag) named when last read.
  struct Layer {
    absl::Time read;
    std::string digest;
  };
  std::map<std::string, Layer> layers_ ABSL_GUARDED_BY(mu_);
  struct Cached {
    std::shared_ptr<const FetchedChart> chart;
    absl::Time fetched;
  };
  std::map<std::string, Cached> charts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> chart_order_ ABSL_GUARDED_BY(mu_);  // oldest first
};

// The newest version of `name` in `index` that `constraint` allows (an exact version names
// itself, pre-release or not). NotFound naming the newest versions there are.
absl::StatusOr<ChartVersion> ChooseChartVersion(const ChartIndex& index, const std::string& repo,
                                                const std::string& name,
                                                const std::string& constraint);

// Whether `version` satisfies `constraint` (helm's: Masterminds semver). InvalidArgument
// naming the constraint when it cannot be read.
absl::StatusOr<bool> SemverSatisfies(const std::string& version, const std::string& constraint);

// The files of a chart archive (what `helm package` writes, .tgz: gzip over tar, the chart
// in one top folder; or any archive UnpackArchive reads, the chart at its top), their paths
// inside the chart; with `folder` (go-getter's `URL//FOLDER`, ArchiveFolder's patterns),
// the chart in that folder of the archive. InvalidArgument for what is not such an
// archive, or a path leaving it; NotFound for a folder it does not have; ResourceExhausted
// past the bounds.
absl::StatusOr<std::vector<RepoFile>> UnpackChartArchive(const std::string& archive,
                                                         size_t max_bytes, size_t max_files,
                                                         absl::string_view folder = "");

// A dependency a chart's Chart.yaml (a v1 chart's requirements.yaml) lists.
struct ChartDependency {
  std::string name, version, repository;
};
// The dependencies of the chart at `chart` (a folder path in `files`), with the versions
// its lock file (Chart.lock, requirements.lock) pins when it has one, as `helm dependency
// build` reads them. InvalidArgument naming the file that cannot be read.
absl::StatusOr<std::vector<ChartDependency>> ChartDependencies(
    const std::string& chart, const std::map<std::string, const RepoFile*>& files);
// Whether the chart at `chart` holds `name` in its charts/ folder (unpacked, or an archive
// NAME-VERSION.tgz), as helm looks for a dependency.
bool HasSubchart(const std::string& chart, const std::string& name,
                 const std::map<std::string, const RepoFile*>& files);
// Adds to *files what `helm dependency build` would put in the charts/ folder of the chart
// at `chart`, and of the charts it adds (to `depth` 3; call with 0): each dependency the
// folder lacks, fetched by `charts` from a chart repository or OCI registry (the version the
// lock pins, else the newest the constraint allows), or copied from a file:// folder among
// `files`, else read with `read_folder` (the repository at the render's commit; its folder
// then goes into *read_paths). *fetched counts the charts fetched, at most 32. Errors name
// the chart and the dependency: a file:// folder outside the repository, or outside `files`
// without `read_folder`, a repository named by helm's own list ("@name"), none given for
// one not vendored; `charts` null: none may be fetched. *read_remote (when set) is made
// true when one is fetched at a range no lock pins (ChartRefMoves).
using ReadFolder = std::function<absl::StatusOr<std::vector<RepoFile>>(const std::string& folder)>;
absl::Status AddChartDependencies(const std::string& chart, ChartFetcher* charts, int depth,
                                  std::vector<RepoFile>* files, int* fetched,
                                  std::vector<std::string>* notes,
                                  const ReadFolder& read_folder = nullptr,
                                  std::vector<std::string>* read_paths = nullptr,
                                  const FetchScope& scope = {}, bool* read_remote = nullptr);

}  // namespace gitfleet

#endif  // GITFLEET_CONTROLPLANE_RENDER_CHART_FETCHER_H_
