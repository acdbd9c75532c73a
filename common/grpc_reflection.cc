#include "common/grpc_reflection.h"

#include <algorithm>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"

namespace gitfleet {

using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;
namespace protobuf = google::protobuf;

namespace {

constexpr const char* kReflectionServices[] = {"grpc.reflection.v1.ServerReflection",
                                               "grpc.reflection.v1alpha.ServerReflection"};

// v1's messages are v1alpha's under another package: the same fields, numbers and types.
template <typename To, typename From>
To Converted(const From& from) {
  To to;
  to.ParseFromString(from.SerializeAsString());
  return to;
}

// Adds `file` and, first, every file it imports that this stream has not been sent yet.
void AddFile(const protobuf::FileDescriptor* file, std::set<std::string>* sent,
             ServerReflectionResponse* response) {
  if (!sent->insert(file->name()).second) return;
  protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  response->mutable_file_descriptor_response()->add_file_descriptor_proto(
      proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) AddFile(file->dependency(i), sent, response);
}

void Error(grpc::StatusCode code, const std::string& message, ServerReflectionResponse* response) {
  response->mutable_error_response()->set_error_code(code);
  response->mutable_error_response()->set_error_message(message);
}

// Answers a request for one file: `file` (sent even if it was before, since it was asked
// for) with the imports not sent yet, or NOT_FOUND saying `missing`.
void SendFile(const protobuf::FileDescriptor* file, const std::string& missing,
              std::set<std::string>* sent, ServerReflectionResponse* response) {
  if (file == nullptr) {
    Error(grpc::StatusCode::NOT_FOUND, missing, response);
    return;
  }
  sent->erase(file->name());
  AddFile(file, sent, response);
}

}  // namespace

ReflectionService::ReflectionService(std::vector<std::string> services, Gate gate)
    : services_(std::move(services)), gate_(std::move(gate)) {
  for (const char* reflection : kReflectionServices) {
    if (std::find(services_.begin(), services_.end(), reflection) == services_.end()) {
      services_.push_back(reflection);
    }
  }
}

ServerReflectionResponse ReflectionService::Answer(const ServerReflectionRequest& request,
                                                   std::set<std::string>* sent) const {
  const protobuf::DescriptorPool* pool = protobuf::DescriptorPool::generated_pool();
  ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  // Names are echoed in errors; keep them short.
  auto quoted = [](const std::string& name) {
    return absl::StrCat("\"", name.substr(0, 256), "\"");
  };
  switch (request.message_request_case()) {
    case ServerReflectionRequest::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      break;
    case ServerReflectionRequest::kFileByFilename:
      SendFile(pool->FindFileByName(request.file_by_filename()),
               absl::StrCat("no file ", quoted(request.file_by_filename())), sent, &response);
      break;
    case ServerReflectionRequest::kFileContainingSymbol:
      SendFile(pool->FindFileContainingSymbol(request.file_containing_symbol()),
               absl::StrCat("no symbol ", quoted(request.file_containing_symbol())), sent,
               &response);
      break;
    case ServerReflectionRequest::kFileContainingExtension: {
      const auto& wanted = request.file_containing_extension();
      const protobuf::Descriptor* type = pool->FindMessageTypeByName(wanted.containing_type());
      const protobuf::FieldDescriptor* extension =
          type == nullptr ? nullptr : pool->FindExtensionByNumber(type, wanted.extension_number());
      SendFile(extension == nullptr ? nullptr : extension->file(),
               absl::StrCat("no extension ", wanted.extension_number(), " of ",
                            quoted(wanted.containing_type())),
               sent, &response);
      break;
    }
    case ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const protobuf::Descriptor* type =
          pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        Error(grpc::StatusCode::NOT_FOUND,
              absl::StrCat("no type ", quoted(request.all_extension_numbers_of_type())), &response);
      } else {
        std::vector<const protobuf::FieldDescriptor*> extensions;
        pool->FindAllExtensions(type, &extensions);
        auto* numbers = response.mutable_all_extension_numbers_response();
        numbers->set_base_type_name(type->full_name());
        for (const protobuf::FieldDescriptor* extension : extensions) {
          numbers->add_extension_number(extension->number());
        }
      }
      break;
    }
    default:
      Error(grpc::StatusCode::UNIMPLEMENTED, "empty or unknown reflection request", &response);
  }
  return response;
}

// One reflection stream of either version: reads a request, writes its answer, and again.
template <typename Request, typename Response>
class ReflectionService::Stream : public StreamReactor<Request, Response> {
 public:
  Stream(const ReflectionService* service, grpc::Status admitted)
      : service_(service), admitted_(std::move(admitted)) {}

  // Reactions of a bidi stream all run on the loop's thread, one at a time.
  void OnStart() override {
    if (!admitted_.ok()) {
      this->Finish(admitted_);
      return;
    }
    this->StartRead(&request_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status::OK);  // the client is done
      return;
    }
    if (++requests_ > kMaxRequestsPerStream) {
      this->Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("more than ", kMaxRequestsPerStream, " reflection requests on one stream")));
      return;
    }
    if constexpr (std::is_same_v<Request, ServerReflectionRequest>) {
      response_ = service_->Answer(request_, &sent_);
    } else {
      response_ = Converted<Response>(
          service_->Answer(Converted<ServerReflectionRequest>(request_), &sent_));
    }
    this->StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "reflection stream broken"));
      return;
    }
    this->StartRead(&request_);
  }
  void OnCancel() override { this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }
  void OnDone() override { delete this; }

 private:
  const ReflectionService* const service_;
  const grpc::Status admitted_;
  Request request_;
  Response response_;
  std::set<std::string> sent_;
  int requests_ = 0;
};

void ReflectionService::Serve(ServerLoop* loop) {
  // The gate runs on the loop's thread, as the stream does (the control plane's gate reads
  // its token files at most once a second). Run on a handler thread, it would start the
  // stream's first read from there: a hand-off inside gRPC that ThreadSanitizer cannot see.
  ServeBidi<ServerReflectionRequest, ServerReflectionResponse>(
      loop,
      [this](
          grpc::ServerContext* context,
          grpc::ServerAsyncReaderWriter<ServerReflectionResponse, ServerReflectionRequest>* stream,
          grpc::CompletionQueue* new_call_cq, grpc::ServerCompletionQueue* cq,
          void* tag) { async_.RequestServerReflectionInfo(context, stream, new_call_cq, cq, tag); },
      [this](grpc::ServerContext* context) {
        return new Stream<ServerReflectionRequest, ServerReflectionResponse>(
            this, gate_ == nullptr ? grpc::Status::OK : gate_(*context));
      });
  using V1Request = grpc::reflection::v1::ServerReflectionRequest;
  using V1Response = grpc::reflection::v1::ServerReflectionResponse;
  ServeBidi<V1Request, V1Response>(
      loop,
      [this](grpc::ServerContext* context,
             grpc::ServerAsyncReaderWriter<V1Response, V1Request>* stream,
             grpc::CompletionQueue* new_call_cq, grpc::ServerCompletionQueue* cq, void* tag) {
        async_v1_.RequestServerReflectionInfo(context, stream, new_call_cq, cq, tag);
      },
      [this](grpc::ServerContext* context) {
        return new Stream<V1Request, V1Response>(
            this, gate_ == nullptr ? grpc::Status::OK : gate_(*context));
      });
}

}  // namespace gitfleet
