#ifndef GITFLEET_COMMON_GRPC_REFLECTION_H_
#define GITFLEET_COMMON_GRPC_REFLECTION_H_

// gRPC server reflection on a ServerLoop, both versions of it (grpc.reflection.v1 and
// v1alpha.ServerReflection, the same messages), so that grpcurl, grpcui, grpc_cli and other
// clients can list and call the services without .proto files. Answers
// from the descriptors compiled into the binary: the services it is told of, and the
// files that define any symbol, each with the files it imports (once per stream). A gate
// may refuse a stream before it answers anything (the control plane admits only callers
// its API admits: the schema is no one else's business).
//
//   ReflectionService reflection({"gitfleet.v1.AdminService", ...}, gate);
//   reflection.RegisterWith(&builder);
//   ServerLoop loop(&builder);
//   auto server = builder.BuildAndStart();
//   reflection.Serve(&loop);
//
// Thread-safe.

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/server_loop.h"
#include "grpcpp/server_builder.h"
#include "proto/grpc/reflection/v1/reflection.grpc.pb.h"
#include "proto/grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace gitfleet {

class ReflectionService {
 public:
  // Requests one stream may make; past it the stream ends with RESOURCE_EXHAUSTED.
  static constexpr int kMaxRequestsPerStream = 1000;

  // Whether a stream's caller may use it; a status not OK ends the stream with it.
  using Gate = std::function<grpc::Status(const grpc::ServerContext& context)>;

  // `services`: full names of the services the server offers; both reflection services
  // are added. No gate admits everyone.
  explicit ReflectionService(std::vector<std::string> services, Gate gate = nullptr);

  // Registers both versions; Serve serves them once the server is built.
  void RegisterWith(grpc::ServerBuilder* builder) {
    builder->RegisterService(&async_);
    builder->RegisterService(&async_v1_);
  }
  void Serve(ServerLoop* loop);

  // The answer to `request`; `sent` holds the files already sent on this stream.
  grpc::reflection::v1alpha::ServerReflectionResponse Answer(
      const grpc::reflection::v1alpha::ServerReflectionRequest& request,
      std::set<std::string>* sent) const;

 private:
  template <typename Request, typename Response>
  class Stream;

  grpc::reflection::v1alpha::ServerReflection::AsyncService async_;
  grpc::reflection::v1::ServerReflection::AsyncService async_v1_;
  std::vector<std::string> services_;
  const Gate gate_;
};

}  // namespace gitfleet

#endif  // GITFLEET_COMMON_GRPC_REFLECTION_H_
