#include "common/server_loop.h"

#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_health.h"
#include "common/grpc_reflection.h"
#include "common/sync.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"

namespace gitfleet {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using grpc::reflection::v1alpha::ServerReflection;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

// A server with the health and reflection services, all on one ServerLoop.
class Served {
 public:
  explicit Served(ServerLoopOptions options = {}, ReflectionService::Gate gate = nullptr)
      : health_({"test.Service"}),
        reflection_({"test.Service", Health::service_full_name()}, std::move(gate)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(health_.service());
    reflection_.RegisterWith(&builder);
    loop_ = std::make_unique<ServerLoop>(&builder, options);
    server_ = builder.BuildAndStart();
    health_.Serve(loop_.get());
    reflection_.Serve(loop_.get());
    loop_->Start();
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
  }
  ~Served() { Stop(); }

  void Stop() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    loop_->Stop();
    server_.reset();
  }

  HealthService& health() { return health_; }
  ServerLoop* loop() { return loop_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

  grpc::Status Check(const std::string& service, HealthCheckResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HealthCheckRequest request;
    request.set_service(service);
    return Health::NewStub(channel_)->Check(&context, request, response);
  }

 private:
  HealthService health_;
  ReflectionService reflection_;
  int port_ = 0;
  std::unique_ptr<ServerLoop> loop_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST(ServerLoop, AnswersUnaryCallsFromItsHandlers) {
  Served served;
  HealthCheckResponse response;
  ASSERT_TRUE(served.Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  served.health().SetServing(true);
  ASSERT_TRUE(served.Check("test.Service", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  grpc::Status unknown = served.Check("other.Service", &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("other.Service"), std::string::npos);
}

TEST(ServerLoop, RefusesCallsPastTheHandlerQueueBound) {
  ServerLoopOptions options;
  options.max_waiting_handlers = 0;  // no handler may wait: every call is refused
  Served served(options);
  HealthCheckResponse response;
  grpc::Status status = served.Check("", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("too many calls waiting"), std::string::npos);
}

TEST(ServerLoop, StreamsWatchUpdatesUntilTheClientCancels) {
  Served served;
  for (int round = 0; round < 3; ++round) {  // each watch ends, so its slot comes back
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HealthCheckRequest request;
    served.health().SetServing(false);  // before the watch: its first answer
    auto stub = Health::NewStub(served.channel());
    auto reader = stub->Watch(&context, request);
    HealthCheckResponse response;
    ASSERT_TRUE(reader->Read(&response));
    EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
    served.health().SetServing(true);
    ASSERT_TRUE(reader->Read(&response));
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
    context.TryCancel();
    EXPECT_FALSE(reader->Read(&response));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
}

TEST(ServerLoop, WatchOfAnUnknownServiceSaysSo) {
  Served served;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest request;
  request.set_service("nope");
  auto reader = Health::NewStub(served.channel())->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  context.TryCancel();
}

TEST(ServerLoop, StopEndsStreamsStillOpen) {
  auto served = std::make_unique<Served>();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = Health::NewStub(served->channel())->Watch(&context, HealthCheckRequest());
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  absl::Time start = absl::Now();
  served->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_FALSE(reader->Finish().ok());
}

// One reflection stream, several requests on it, in the version whose stub, request and
// response types are given.
template <typename Reflection, typename Request, typename Response>
void ListsServicesAndSendsTheirFiles(Served& served) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = Reflection::NewStub(served.channel())->ServerReflectionInfo(&context);
  Request request;
  Response response;

  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"test.Service", "grpc.health.v1.Health",
                                             "grpc.reflection.v1.ServerReflection",
                                             "grpc.reflection.v1alpha.ServerReflection"}));

  request.set_file_containing_symbol("grpc.health.v1.Health.Check");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.file_descriptor_response().file_descriptor_proto_size(), 1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.package(), "grpc.health.v1");
  ASSERT_EQ(file.service_size(), 1);
  EXPECT_EQ(file.service(0).method_size(), 2);

  request.set_file_containing_symbol("no.Such");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error_response().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(response.error_response().error_message().find("no.Such"), std::string::npos);
  EXPECT_EQ(response.original_request().file_containing_symbol(), "no.Such");

  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

// Both versions of the protocol are served: newer clients (grpcurl since 1.8.8, grpcui)
// ask v1 first, older ones (grpc_cli) v1alpha alone.
TEST(ServerLoop, ReflectionListsServicesAndSendsTheirFiles) {
  Served served;
  ListsServicesAndSendsTheirFiles<ServerReflection, ServerReflectionRequest,
                                  ServerReflectionResponse>(served);
  ListsServicesAndSendsTheirFiles<grpc::reflection::v1::ServerReflection,
                                  grpc::reflection::v1::ServerReflectionRequest,
                                  grpc::reflection::v1::ServerReflectionResponse>(served);
}

// A gate refuses a stream before it answers anything, and admits whom it admits.
TEST(ServerLoop, ReflectionAnswersOnlyWhomItsGateAdmits) {
  Served served({}, [](const grpc::ServerContext& context) {
    auto it = context.client_metadata().find("authorization");
    return it != context.client_metadata().end() && it->second == "Bearer yes"
               ? grpc::Status::OK
               : grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "who are you?");
  });
  for (const char* token : {"", "Bearer no", "Bearer yes"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (*token != '\0') context.AddMetadata("authorization", token);
    auto stream = ServerReflection::NewStub(served.channel())->ServerReflectionInfo(&context);
    ServerReflectionRequest request;
    request.set_list_services("");
    stream->Write(request);
    ServerReflectionResponse response;
    const bool read = stream->Read(&response);
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    if (std::string(token) == "Bearer yes") {
      EXPECT_TRUE(read);
      EXPECT_EQ(response.list_services_response().service_size(), 4);
      EXPECT_TRUE(status.ok()) << status.error_message();
    } else {
      EXPECT_FALSE(read) << token << ": nothing is answered";
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
      EXPECT_EQ(status.error_message(), "who are you?");
    }
  }
}

// Files go with the files they import, each import once per stream.
TEST(ServerLoop, ReflectionSendsImportsOncePerStream) {
  ReflectionService reflection({});
  std::set<std::string> sent;
  ServerReflectionRequest request;
  request.set_file_by_filename("google/protobuf/type.proto");  // imports any, source_context
  ServerReflectionResponse first = reflection.Answer(request, &sent);
  std::vector<std::string> files;
  for (const std::string& bytes : first.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    files.push_back(file.name());
  }
  EXPECT_EQ(files,
            (std::vector<std::string>{"google/protobuf/type.proto", "google/protobuf/any.proto",
                                      "google/protobuf/source_context.proto"}));
  ServerReflectionResponse again = reflection.Answer(request, &sent);
  EXPECT_EQ(again.file_descriptor_response().file_descriptor_proto_size(), 1)
      << "asked for by name, a file is sent again, but not its imports";
  request.set_file_by_filename("no/such.proto");
  EXPECT_EQ(reflection.Answer(request, &sent).error_response().error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// A reactor that records its reactions, for the tests of the stream semantics.
class Recorder : public StreamReactor<ServerReflectionRequest, ServerReflectionResponse> {
 public:
  struct Log {
    Mutex mu;
    std::vector<std::string> events ABSL_GUARDED_BY(mu);
    void Add(const std::string& event) {
      MutexLock lock(&mu);
      events.push_back(event);
    }
    bool WaitFor(const std::string& event) {
      MutexLock lock(&mu);
      return mu.AwaitWithTimeout(
          [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
            return std::find(events.begin(), events.end(), event) != events.end();
          },
          absl::Seconds(10));
    }
    std::vector<std::string> Events() {
      MutexLock lock(&mu);
      return events;
    }
  };
  // `write_then_finish`: OnStart writes one message and finishes at once, with the write
  // still in flight; otherwise it starts nothing and waits to be cancelled.
  Recorder(Log* log, bool write_then_finish) : log_(log), write_then_finish_(write_then_finish) {}

  void OnStart() override {
    log_->Add("start");
    if (write_then_finish_) {
      out_.set_valid_host("first");
      StartWrite(&out_);
      Finish(grpc::Status(grpc::StatusCode::ABORTED, "after the write"));
      StartWrite(&out_);  // after Finish: ignored
    }
  }
  void OnWriteDone(bool ok) override { log_->Add(ok ? "write ok" : "write failed"); }
  void OnCancel() override {
    log_->Add("cancel");
    Finish(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    log_->Add("done");
    delete this;
  }

 private:
  Log* const log_;
  const bool write_then_finish_;
  ServerReflectionResponse out_;
};

// A server whose reflection method is served by Recorders.
class RecorderServer {
 public:
  RecorderServer(Recorder::Log* log, bool write_then_finish) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    loop_ = std::make_unique<ServerLoop>(&builder);
    server_ = builder.BuildAndStart();
    ServeBidi<ServerReflectionRequest, ServerReflectionResponse>(
        loop_.get(),
        [this](grpc::ServerContext* context,
               grpc::ServerAsyncReaderWriter<ServerReflectionResponse, ServerReflectionRequest>*
                   stream,
               grpc::CompletionQueue* new_call_cq, grpc::ServerCompletionQueue* cq, void* tag) {
          service_.RequestServerReflectionInfo(context, stream, new_call_cq, cq, tag);
        },
        [log, write_then_finish](grpc::ServerContext*) {
          return new Recorder(log, write_then_finish);
        });
    loop_->Start();
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
  }
  ~RecorderServer() {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    loop_->Stop();
  }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  ServerReflection::AsyncService service_;
  int port_ = 0;
  std::unique_ptr<ServerLoop> loop_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST(ServerLoop, AFinishWhileAWriteIsInFlightGoesOutAfterIt) {
  Recorder::Log log;
  RecorderServer server(&log, /*write_then_finish=*/true);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = ServerReflection::NewStub(server.channel())->ServerReflectionInfo(&context);
  ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.valid_host(), "first");
  EXPECT_FALSE(stream->Read(&response)) << "the write after Finish must not go out";
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(status.error_message(), "after the write");
  ASSERT_TRUE(log.WaitFor("done"));
  EXPECT_EQ(log.Events(), (std::vector<std::string>{"start", "write ok", "done"}));
}

TEST(ServerLoop, OnCancelComesWhenTheClientLeavesWithNothingInFlight) {
  Recorder::Log log;
  RecorderServer server(&log, /*write_then_finish=*/false);
  {
    grpc::ClientContext context;
    auto stream = ServerReflection::NewStub(server.channel())->ServerReflectionInfo(&context);
    ASSERT_TRUE(log.WaitFor("start"));
    context.TryCancel();
  }
  ASSERT_TRUE(log.WaitFor("done"));
  EXPECT_EQ(log.Events(), (std::vector<std::string>{"start", "cancel", "done"}));
}

TEST(LoopAlarm, FiresOnTheLoopOrSaysItWasCancelled) {
  Served served;  // its loop runs
  ServerLoop* loop = served.loop();
  Notification fired_done, cancelled_done;
  bool fired = false, cancelled = true;
  std::thread::id fired_on;
  auto alarm = LoopAlarm::Set(loop, absl::Now() + absl::Milliseconds(20), [&](bool ok) {
    fired = ok;
    fired_on = std::this_thread::get_id();
    fired_done.Notify();
  });
  // Set from another thread, cancelled at once: the callback says so.
  std::shared_ptr<LoopAlarm> other;
  std::thread([&] {
    other = LoopAlarm::Set(loop, absl::Now() + absl::Hours(1), [&](bool ok) {
      cancelled = !ok;
      cancelled_done.Notify();
    });
  }).join();
  other->Cancel();
  other.reset();  // the alarm holds itself until its callback has run
  ASSERT_TRUE(fired_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(cancelled_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(fired);
  EXPECT_TRUE(cancelled);
  EXPECT_NE(fired_on, std::this_thread::get_id());
  alarm->Cancel();  // after it fired: nothing more happens
}

// This process's threads: (thread id, name).
std::vector<std::pair<int, std::string>> Threads() {
  std::vector<std::pair<int, std::string>> threads;
  DIR* tasks = opendir("/proc/self/task");
  if (tasks == nullptr) return threads;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream comm(absl::StrCat("/proc/self/task/", entry->d_name, "/comm"));
    std::string name;
    std::getline(comm, name);
    threads.emplace_back(std::atoi(entry->d_name), name);
  }
  closedir(tasks);
  return threads;
}

// The point of ServerLoop: none of gRPC's own polling threads exist, so one thread polls.
TEST(ServerLoop, NoOtherThreadPolls) {
  Served served;
  HealthCheckResponse response;
  ASSERT_TRUE(served.Check("", &response).ok());
  int pollers = 0;
  for (const auto& [tid, name] : Threads()) {
    if (name == "gf-grpc-loop") ++pollers;
    // The callback API's pollers, and the synchronous server's.
    EXPECT_NE(name, "nexting_thread");
    EXPECT_NE(name, "grpcpp_sync_ser");
  }
  EXPECT_EQ(pollers, 1);
}

// The scheduling policy of the thread named gf-grpc-loop; -1 if there is none.
int LoopPolicy() {
  for (const auto& [tid, name] : Threads()) {
    if (name == "gf-grpc-loop") return sched_getscheduler(tid);
  }
  return -1;
}

// Woken for a completion, the loop must not preempt the thread that caused it (see
// ServerLoopOptions::batch_scheduling); the option turns that off.
TEST(ServerLoop, PollsAsABatchThreadUnlessToldOtherwise) {
  {
    Served served;
    HealthCheckResponse response;
    ASSERT_TRUE(served.Check("", &response).ok());  // the loop has run
    EXPECT_EQ(LoopPolicy(), SCHED_BATCH);
  }
  ServerLoopOptions options;
  options.batch_scheduling = false;
  Served served(options);
  HealthCheckResponse response;
  ASSERT_TRUE(served.Check("", &response).ok());
  EXPECT_EQ(LoopPolicy(), SCHED_OTHER);
}

}  // namespace
}  // namespace gitfleet
