#include "common/metrics/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/metrics/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gitfleet::metrics {
namespace {

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
  auto& latency = BuildHistogram()
                      .Name("gitfleet_latency_seconds")
                      .Help("Latency.")
                      .Register(registry);
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

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  close(fd);
  return response;
}

TEST(HttpServerTest, ServesMetricsHealthAndReadiness) {
  Registry registry;
  BuildGauge().Name("gitfleet_up").Help("Up.").Register(registry).Add({}).Set(1);
  std::string not_ready = "store not open";
  auto server = HttpServer::Start("127.0.0.1:0", &registry,
                                  [&] { return not_ready; });
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  ASSERT_GT(port, 0);
  EXPECT_THAT(HttpGet(port, "/metrics"), HasSubstr("gitfleet_up 1"));
  EXPECT_THAT(HttpGet(port, "/healthz"), HasSubstr("200 OK"));
  EXPECT_THAT(HttpGet(port, "/readyz"), HasSubstr("store not open"));
  EXPECT_THAT(HttpGet(port, "/readyz"), HasSubstr("503"));
  not_ready.clear();
  EXPECT_THAT(HttpGet(port, "/readyz"), HasSubstr("200 OK"));
  EXPECT_THAT(HttpGet(port, "/nope"), HasSubstr("404"));
}

TEST(HttpServerTest, RejectsMalformedListenAddress) {
  Registry registry;
  auto server = HttpServer::Start("7071", &registry, nullptr);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("\"7071\""));
}

}  // namespace
}  // namespace gitfleet::metrics
