#include "common/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/metrics/heartbeat.h"
#include "common/metrics/http_server.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/process.h"

namespace gitfleet::metrics {
namespace {

using ::gitfleet::testing::ClosedByPeer;
using ::gitfleet::testing::ConnectLoopback;
using ::gitfleet::testing::HttpGet;
using ::testing::HasSubstr;

TEST(MetricsTest, SerializesCountersGaugesAndHistograms) {
  Registry registry;
  auto& fetches = BuildCounter()
                      .Name("gitfleet_fetches_total")
                      .Help("Fetches.")
                      .LabelNames({"result"})
                      .Register(registry);
  fetches.Add({{"result", "ok"}}).Increment();
  fetches.Add({{"result", "ok"}}).Increment(2);
  fetches.Add({{"result", "error"}}).Increment();
  auto& agents = BuildGauge().Name("gitfleet_agents").Help("Agents.").Register(registry);
  agents.Add({}).Set(3);
  agents.Add({}).Decrement();
  auto& latency =
      BuildHistogram().Name("gitfleet_latency_seconds").Help("Latency.").Register(registry);
  Histogram& h = latency.Add({}, Histogram::BucketBoundaries{0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);

  std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE gitfleet_fetches_total counter\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_fetches_total{result=\"ok\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_fetches_total{result=\"error\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_agents 2\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_latency_seconds_bucket{le=\"0.1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_latency_seconds_bucket{le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("gitfleet_latency_seconds_sum 5.55"));
  EXPECT_THAT(text, HasSubstr("gitfleet_latency_seconds_count 3\n"));
}

TEST(MetricsTest, EscapesLabelValues) {
  Registry registry;
  auto& f = BuildCounter().Name("x_total").Help("x").Register(registry);
  f.Add({{"msg", "a\"b\\c\nd"}}).Increment();
  EXPECT_THAT(registry.Serialize(), HasSubstr(R"(x_total{msg="a\"b\\c\nd"} 1)"));
}

TEST(HttpServerTest, ServesMetricsHealthAndReadiness) {
  Registry registry;
  BuildGauge().Name("gitfleet_up").Help("Up.").Register(registry).Add({}).Set(1);
  std::string not_ready = "store not open";
  bool alive = true;
  HttpServer::Probes probes;
  probes.ready = [&] { return Probe{not_ready.empty(), not_ready}; };
  probes.live = [&] { return Probe{alive, alive ? "" : "main loop stalled"}; };
  auto server = HttpServer::Start("127.0.0.1:0", &registry, probes);
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  int status;
  EXPECT_THAT(HttpGet(port, "/metrics", &status), HasSubstr("gitfleet_up 1"));
  EXPECT_EQ(status, 200);
  EXPECT_EQ(HttpGet(port, "/healthz", &status), "ok\n");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(HttpGet(port, "/readyz", &status), "not ready: store not open\n");
  EXPECT_EQ(status, 503);
  not_ready.clear();
  EXPECT_EQ(HttpGet(port, "/readyz", &status), "ready\n");
  EXPECT_EQ(status, 200);
  alive = false;
  EXPECT_EQ(HttpGet(port, "/healthz", &status), "not ok: main loop stalled\n");
  EXPECT_EQ(status, 503);
  HttpGet(port, "/nope", &status);
  EXPECT_EQ(status, 404);
}

// An idle connection (a browser's preconnect, a client that stalls) holds one worker until
// a read of it times out, never the server: with one worker left, /healthz answers at
// once; with none, once the idle ones time out (kRequestTimeoutMs, not civetweb's 30 s).
// And a server stops at once, not at its listening thread's next poll (up to 2 s).
TEST(HttpServerTest, IdleConnectionsDoNotHoldTheProbesAndAStopIsPrompt) {
  Registry registry;
  auto server = HttpServer::Start("127.0.0.1:0", &registry, {});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::vector<int> idle;
  auto open_idle = [&](int n) {
    for (int i = 0; i < n; ++i) {
      int fd = ConnectLoopback(port);
      ASSERT_GE(fd, 0);
      idle.push_back(fd);
    }
    absl::SleepFor(absl::Milliseconds(200));  // each taken by a worker
  };
  open_idle(HttpServer::kWorkerThreads - 1);
  absl::Time start = absl::Now();
  EXPECT_EQ(HttpGet(port, "/healthz"), "ok\n");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(HttpServer::kRequestTimeoutMs))
      << "answered only once the idle connections timed out";
  open_idle(1);  // every worker holds one
  start = absl::Now();
  EXPECT_EQ(HttpGet(port, "/healthz"), "ok\n");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(HttpServer::kRequestTimeoutMs) * 2)
      << "the idle connections held their workers past their timeout";
  for (int fd : idle) close(fd);

  for (int i = 0; i < 3; ++i) {  // civetweb alone takes 0-2 s, at random
    auto stopping = HttpServer::Start("127.0.0.1:0", &registry, {});
    ASSERT_TRUE(stopping.ok()) << stopping.status();
    absl::SleepFor(absl::Milliseconds(100));
    start = absl::Now();
    stopping->reset();
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "stop " << i;
  }
}

// Clients that send a request head and then trickle its body, a byte every 100 ms (each
// read of civetweb's is then answered well within its timeout), more of them than there
// are workers: a route reads at most max_in_flight bodies at once, each cut at its deadline;
// the others are answered busy and cut within a moment; /healthz answers all along, and
// each connection is closed. Before, each held a worker for good and /healthz never
// answered.
TEST(HttpServerTest, TricklingBodiesAreCutAndTheProbesStayUp) {
  Registry registry;
  Mutex mu;
  std::map<std::string, int> seen;
  HttpServer::PostRoute route;
  route.max_in_flight = 2;
  route.deadline = absl::Seconds(2);
  route.handler = [&](const HttpRequest& request) {
    MutexLock lock(&mu);
    ++seen[request.busy ? "busy" : request.too_slow ? "too_slow" : "read"];
    return HttpResponse{request.busy ? 503 : 200, "text/plain", "answered\n"};
  };
  auto server = HttpServer::Start("127.0.0.1:0", &registry, {}, {}, {{"/hook", route}});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const int clients = HttpServer::kWorkerThreads + 4;
  std::vector<int> fds;
  for (int i = 0; i < clients; ++i) {
    int fd = ConnectLoopback(port);
    ASSERT_GE(fd, 0);
    const std::string head = "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\na";
    ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), head.size());
    fds.push_back(fd);
  }
  const absl::Time start = absl::Now();
  std::vector<absl::Duration> closed_after(clients, absl::InfiniteDuration());
  std::vector<std::string> received(clients);
  for (int step = 0; step < 100; ++step) {  // 10 s at most
    bool open = false;
    for (int i = 0; i < clients; ++i) {
      if (closed_after[i] != absl::InfiniteDuration()) continue;
      if (ClosedByPeer(fds[i], &received[i]) ||
          send(fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        closed_after[i] = absl::Now() - start;
      } else {
        open = true;
      }
    }
    if (!open) break;
    if (step % 5 == 0) {
      const absl::Time asked = absl::Now();
      EXPECT_EQ(HttpGet(port, "/healthz"), "ok\n") << "at step " << step;
      EXPECT_LT(absl::Now() - asked, absl::Milliseconds(HttpServer::kRequestTimeoutMs))
          << "/healthz waited for a worker at step " << step;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  int busy_answers = 0;
  for (int i = 0; i < clients; ++i) {
    EXPECT_LT(closed_after[i], absl::Seconds(8)) << "client " << i << " was never cut";
    if (absl::StrContains(received[i], "503")) ++busy_answers;
    close(fds[i]);
  }
  MutexLock lock(&mu);
  EXPECT_GE(seen["too_slow"], route.max_in_flight);
  EXPECT_GE(seen["busy"], HttpServer::kWorkerThreads - route.max_in_flight);
  EXPECT_EQ(seen["busy"] + seen["too_slow"], clients);
  EXPECT_EQ(seen["read"], 0);
  EXPECT_GT(busy_answers, 0) << "a busy client is answered before it is cut";
}

// A body no one reads (a GET's, here) is read for a moment, then cut: civetweb would read
// it after the answer with no bound but its per-read timeout.
TEST(HttpServerTest, ABodyNoOneReadsIsCut) {
  Registry registry;
  auto server = HttpServer::Start("127.0.0.1:0", &registry, {});
  ASSERT_TRUE(server.ok()) << server.status();
  int fd = ConnectLoopback((*server)->port());
  ASSERT_GE(fd, 0);
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), head.size());
  const absl::Time start = absl::Now();
  std::string received;
  bool closed = false;
  for (int step = 0; step < 100 && !closed; ++step) {  // 10 s at most
    closed = ClosedByPeer(fd, &received) || send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(absl::Now() - start, HttpServer::kLeftBodyTime + absl::Seconds(4));
  EXPECT_THAT(received, HasSubstr("ok\n"));
  close(fd);
}

// A server of POST routes alone: no metrics and no probes there.
TEST(HttpServerTest, PostOnlyServesItsRoutesAlone) {
  HttpServer::PostRoute route;
  route.handler = [](const HttpRequest& request) {
    return HttpResponse{200, "text/plain", "got " + request.body};
  };
  auto server = HttpServer::StartPostOnly("127.0.0.1:0", {{"/hook", route}});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  int status;
  EXPECT_EQ(testing::HttpRequest(port, "POST", "/hook", {}, "push", &status), "got push");
  EXPECT_EQ(status, 200);
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    HttpGet(port, path, &status);
    EXPECT_EQ(status, 404) << path;
  }
  EXPECT_EQ(HttpServer::StartPostOnly("7072", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A route that takes one segment more gets the path it was asked at; others do not.
TEST(HttpServerTest, ARouteMayTakeOneSegmentMore) {
  HttpServer::PostRoute route;
  route.one_more_segment = true;
  route.handler = [](const HttpRequest& request) {
    return HttpResponse{200, "text/plain", "at " + request.path};
  };
  HttpServer::PostRoute exact;
  exact.handler = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "exact"}; };
  auto server =
      HttpServer::StartPostOnly("127.0.0.1:0", {{"/hooks/git", route}, {"/other", exact}});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  int status;
  EXPECT_EQ(testing::HttpRequest(port, "POST", "/hooks/git", {}, "", &status), "at /hooks/git");
  EXPECT_EQ(testing::HttpRequest(port, "POST", "/hooks/git/0123abcd", {}, "", &status),
            "at /hooks/git/0123abcd");
  EXPECT_EQ(status, 200);
  for (const std::string& path :
       std::vector<std::string>{"/hooks/git/a/b", "/hooks/git/" + std::string(257, 'a'),
                                "/other/token", "/hooks/gitx"}) {
    testing::HttpRequest(port, "POST", path, {}, "", &status);
    EXPECT_EQ(status, 404) << path;
  }
}

TEST(HeartbeatTest, AStalledLoopFailsTheProbe) {
  absl::Time start = absl::FromUnixSeconds(1000);
  Heartbeat heartbeat("the agent's loop", start);
  EXPECT_TRUE(heartbeat.Check(absl::Seconds(60), start + absl::Seconds(59)).ok);
  Probe stalled = heartbeat.Check(absl::Seconds(60), start + absl::Seconds(61));
  EXPECT_FALSE(stalled.ok);
  EXPECT_THAT(stalled.detail, HasSubstr("the agent's loop has not come round for 1m1s"));
  heartbeat.Beat(start + absl::Seconds(61));
  EXPECT_TRUE(heartbeat.Check(absl::Seconds(60), start + absl::Seconds(62)).ok);
}

TEST(HttpServerTest, RejectsMalformedListenAddress) {
  Registry registry;
  auto server = HttpServer::Start("7071", &registry, {});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("\"7071\""));
}

}  // namespace
}  // namespace gitfleet::metrics
