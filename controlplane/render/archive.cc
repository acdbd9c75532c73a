#include "controlplane/render/archive.h"

#include <bzlib.h>
#include <fnmatch.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gitfleet {
namespace {

// Room for what a tar adds to its files' content: a header and padding for each file, and
// the folders, links and extended headers between them.
size_t TarBound(const ArchiveBounds& bounds) {
  return bounds.max_bytes + (bounds.max_files + 16) * 2048;
}

absl::Status Exhausted(size_t max_bytes) {
  return absl::ResourceExhaustedError(
      absl::StrCat("it unpacks to more than ", max_bytes, " bytes"));
}

absl::Status CutShort(absl::string_view compression) {
  return absl::InvalidArgumentError(
      absl::StrCat("its ", compression, " data is damaged or cut short"));
}

// What one call of a decompressor did: the bytes it wrote, whether its stream ended, and
// why it cannot go on (not OK).
struct Step {
  size_t written = 0;
  bool ended = false;
  absl::Status error;
};

// Calls `step` (one call of a decompressor writing into the buffer it is given) until the
// stream ends, collecting at most `max_bytes`.
template <typename StepFn>
absl::StatusOr<std::string> Drain(size_t max_bytes, StepFn step) {
  std::string out;
  char buffer[64 << 10];
  while (true) {
    Step done = step(buffer, sizeof(buffer));
    out.append(buffer, done.written);
    if (!done.error.ok()) return done.error;
    if (out.size() > max_bytes) return Exhausted(max_bytes);
    if (done.ended) return out;
  }
}

absl::StatusOr<std::string> Gunzip(const std::string& in, size_t max_bytes) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) return absl::InternalError("zlib");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  stream.avail_in = static_cast<uInt>(in.size());
  absl::StatusOr<std::string> out = Drain(max_bytes, [&stream](char* buffer, size_t size) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = static_cast<uInt>(size);
    const int code = inflate(&stream, Z_NO_FLUSH);
    const bool stuck = code == Z_OK && stream.avail_in == 0 && stream.avail_out != 0;
    return Step{
        size - stream.avail_out, code == Z_STREAM_END,
        (code != Z_OK && code != Z_STREAM_END) || stuck ? CutShort("gzip") : absl::OkStatus()};
  });
  inflateEnd(&stream);
  return out;
}

absl::StatusOr<std::string> Bunzip2(const std::string& in, size_t max_bytes) {
  bz_stream stream{};
  if (BZ2_bzDecompressInit(&stream, 0, 0) != BZ_OK) return absl::InternalError("bzip2");
  stream.next_in = const_cast<char*>(in.data());
  stream.avail_in = static_cast<unsigned int>(in.size());
  absl::StatusOr<std::string> out = Drain(max_bytes, [&stream](char* buffer, size_t size) {
    stream.next_out = buffer;
    stream.avail_out = static_cast<unsigned int>(size);
    const int code = BZ2_bzDecompress(&stream);
    const bool stuck = code == BZ_OK && stream.avail_in == 0 && stream.avail_out != 0;
    return Step{
        size - stream.avail_out, code == BZ_STREAM_END,
        (code != BZ_OK && code != BZ_STREAM_END) || stuck ? CutShort("bzip2") : absl::OkStatus()};
  });
  BZ2_bzDecompressEnd(&stream);
  return out;
}

absl::StatusOr<std::string> Unxz(const std::string& in, size_t max_bytes) {
  lzma_stream stream = LZMA_STREAM_INIT;
  // The decoder's own memory, bounded as the output is (xz -9 needs 65 MiB; zstd's own
  // default bound on its window is 128 MiB too).
  if (lzma_stream_decoder(&stream, 128 << 20, LZMA_CONCATENATED) != LZMA_OK) {
    return absl::InternalError("lzma");
  }
  stream.next_in = reinterpret_cast<const uint8_t*>(in.data());
  stream.avail_in = in.size();
  absl::StatusOr<std::string> out = Drain(max_bytes, [&stream](char* buffer, size_t size) {
    stream.next_out = reinterpret_cast<uint8_t*>(buffer);
    stream.avail_out = size;
    const lzma_ret code = lzma_code(&stream, LZMA_FINISH);
    Step done{size - stream.avail_out, code == LZMA_STREAM_END, absl::OkStatus()};
    if (code == LZMA_MEMLIMIT_ERROR) {
      done.error =
          absl::ResourceExhaustedError("its xz data needs more than 128 MiB of memory to unpack");
    } else if (code != LZMA_OK && code != LZMA_STREAM_END) {
      done.error = CutShort("xz");
    }
    return done;
  });
  lzma_end(&stream);
  return out;
}

absl::StatusOr<std::string> Unzstd(const std::string& in, size_t max_bytes) {
  ZSTD_DStream* stream = ZSTD_createDStream();
  if (stream == nullptr) return absl::InternalError("zstd");
  ZSTD_initDStream(stream);
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  absl::StatusOr<std::string> out = Drain(max_bytes, [&](char* buffer, size_t size) {
    const size_t before = input.pos;
    ZSTD_outBuffer output{buffer, size, 0};
    // What the frame still needs; 0 once a frame ends (another may follow).
    const size_t left = ZSTD_decompressStream(stream, &output, &input);
    const bool stuck = left != 0 && output.pos == 0 && input.pos == before;
    return Step{output.pos, !ZSTD_isError(left) && left == 0 && input.pos == input.size,
                ZSTD_isError(left) || stuck ? CutShort("zstd") : absl::OkStatus()};
  });
  ZSTD_freeDStream(stream);
  return out;
}

// Octal, as tar writes its numbers.
std::optional<uint64_t> Octal(absl::string_view field) {
  field = absl::StripAsciiWhitespace(
      absl::string_view(field.data(), strnlen(field.data(), field.size())));
  uint64_t value = 0;
  for (char c : field) {
    if (c < '0' || c > '7') return std::nullopt;
    if (value > (uint64_t{1} << 60)) return std::nullopt;
    value = value * 8 + (c - '0');
  }
  return value;
}

// Whether `data` starts with a tar header: ustar's magic, or (old tars) a header whose
// checksum holds.
bool IsTar(absl::string_view data) {
  if (data.size() < 512) return false;
  if (data.substr(257, 5) == "ustar") return true;
  std::optional<uint64_t> sum = Octal(data.substr(148, 8));
  if (!sum.has_value() || data[0] == '\0') return false;
  uint64_t computed = 0;
  for (size_t i = 0; i < 512; ++i) {
    computed += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(data[i]);
  }
  return computed == *sum;
}

// `path` as a path inside the archive ("./" and a trailing "/" taken off); InvalidArgument
// when it leaves it.
absl::StatusOr<std::string> InsidePath(std::string path) {
  while (absl::StartsWith(path, "./")) path.erase(0, 2);
  if (path.empty() || path[0] == '/' || absl::StrContains(absl::StrCat("/", path, "/"), "/../")) {
    return absl::InvalidArgumentError(
        absl::StrCat("it holds ", path.substr(0, 256), ", a path outside the archive"));
  }
  return path;
}

// Adds a file, the last of a path winning (as tar extracts), within `bounds`.
class Collected {
 public:
  explicit Collected(const ArchiveBounds& bounds) : bounds_(bounds) {}
  absl::Status Add(std::string path, std::string content) {
    auto [it, added] = index_.emplace(path, files_.size());
    if (!added) {
      total_ -= files_[it->second].content.size();
      files_[it->second].content.clear();
    }
    total_ += content.size();
    if (index_.size() > bounds_.max_files || total_ > bounds_.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("it holds more than ", bounds_.max_files,
                                                       " files or ", bounds_.max_bytes, " bytes"));
    }
    if (added) {
      files_.push_back({std::move(path), std::move(content)});
    } else {
      files_[it->second].content = std::move(content);
    }
    return absl::OkStatus();
  }
  std::vector<RepoFile> Take() { return std::move(files_); }

 private:
  const ArchiveBounds& bounds_;
  std::map<std::string, size_t> index_;
  std::vector<RepoFile> files_;
  size_t total_ = 0;
};

absl::StatusOr<std::vector<RepoFile>> ReadTar(const std::string& tar, const ArchiveBounds& bounds) {
  Collected files(bounds);
  std::string long_name;
  size_t at = 0;
  while (at + 512 <= tar.size()) {
    const absl::string_view header(tar.data() + at, 512);
    if (header.find_first_not_of('\0') == absl::string_view::npos) break;  // the end
    std::optional<uint64_t> size = Octal(header.substr(124, 12));
    if (!size.has_value() || *size > tar.size() - at - 512) {
      return absl::InvalidArgumentError("a tar header is damaged, or the tar is cut short");
    }
    const char type = header[156];
    const absl::string_view data(tar.data() + at + 512, *size);
    at += 512 + (*size + 511) / 512 * 512;
    std::string path;
    if (!long_name.empty()) {
      path = std::move(long_name);
      long_name.clear();
    } else {
      const absl::string_view name = header.substr(0, strnlen(header.data(), 100));
      const absl::string_view prefix = header.substr(257, 5) == "ustar"
                                           ? header.substr(345, strnlen(header.data() + 345, 155))
                                           : absl::string_view();
      path = prefix.empty() ? std::string(name) : absl::StrCat(prefix, "/", name);
    }
    if (type == 'L') {  // GNU: the next entry's long name
      long_name = std::string(data.substr(0, strnlen(data.data(), data.size())));
      continue;
    }
    if (type == 'x') {  // pax: "LEN key=value\n" records; the next entry's path
      for (absl::string_view record : absl::StrSplit(data, '\n', absl::SkipEmpty())) {
        const size_t space = record.find(' ');
        if (space == absl::string_view::npos) continue;
        absl::string_view entry = record.substr(space + 1);
        if (absl::ConsumePrefix(&entry, "path=")) long_name = std::string(entry);
      }
      continue;
    }
    // Folders, links, devices, GNU's long link names, pax's global headers: passed over.
    if (type != '0' && type != '\0' && type != '7') continue;
    if (absl::EndsWith(path, "/")) continue;  // an old tar's folder
    absl::StatusOr<std::string> inside = InsidePath(std::move(path));
    if (!inside.ok()) return inside.status();
    if (absl::Status s = files.Add(*std::move(inside), std::string(data)); !s.ok()) return s;
  }
  return files.Take();
}

uint32_t Le(absl::string_view data, size_t at, int bytes) {
  uint32_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    value = value << 8 | static_cast<unsigned char>(data[at + i]);
  }
  return value;
}

absl::StatusOr<std::string> Inflate(absl::string_view in, size_t size) {
  z_stream stream{};
  if (inflateInit2(&stream, -15) != Z_OK) return absl::InternalError("zlib");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  stream.avail_in = static_cast<uInt>(in.size());
  std::string out(size + 1, '\0');  // one more: a stream longer than it says is damaged
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int code = inflate(&stream, Z_FINISH);
  const size_t written = out.size() - stream.avail_out;
  inflateEnd(&stream);
  if (code != Z_STREAM_END || written != size) return CutShort("deflate");
  out.resize(size);
  return out;
}

absl::StatusOr<std::vector<RepoFile>> ReadZip(const std::string& zip, const ArchiveBounds& bounds) {
  const absl::string_view data(zip);
  // The end of central directory record, within the last 64 KiB (its comment) and 22 bytes.
  size_t end = std::string::npos;
  for (size_t at = data.size() >= 22 ? data.size() - 22 : std::string::npos;
       at != std::string::npos && data.size() - at <= 22 + 0xFFFF; --at) {
    if (data.substr(at, 4) == absl::string_view("PK\x05\x06", 4)) {
      end = at;
      break;
    }
    if (at == 0) break;
  }
  if (end == std::string::npos) {
    return absl::InvalidArgumentError("a zip archive without its central directory (cut short?)");
  }
  const uint32_t entries = Le(data, end + 10, 2);
  const uint32_t directory_size = Le(data, end + 12, 4);
  const uint32_t directory = Le(data, end + 16, 4);
  if (entries == 0xFFFF || directory == 0xFFFFFFFF) {
    return absl::InvalidArgumentError("a ZIP64 archive, which gitfleet does not read");
  }
  if (uint64_t{directory} + directory_size > end) {
    return absl::InvalidArgumentError("a zip archive whose central directory is damaged");
  }
  if (entries > bounds.max_files * 4 + 64) {
    return absl::ResourceExhaustedError(
        absl::StrCat("it holds more than ", bounds.max_files, " files"));
  }
  Collected files(bounds);
  size_t declared = 0;
  size_t at = directory;
  for (uint32_t i = 0; i < entries; ++i) {
    if (at + 46 > end || Le(data, at, 4) != 0x02014b50) {
      return absl::InvalidArgumentError("a zip archive whose central directory is damaged");
    }
    const uint32_t made_by = Le(data, at + 4, 2);
    const uint32_t flags = Le(data, at + 8, 2);
    const uint32_t method = Le(data, at + 10, 2);
    const uint32_t crc = Le(data, at + 16, 4);
    const uint32_t compressed = Le(data, at + 20, 4);
    const uint32_t size = Le(data, at + 24, 4);
    const size_t name_size = Le(data, at + 28, 2);
    const size_t skip = name_size + Le(data, at + 30, 2) + Le(data, at + 32, 2);
    const uint32_t external = Le(data, at + 38, 4);
    const uint32_t local = Le(data, at + 42, 4);
    if (at + 46 + skip > end) {
      return absl::InvalidArgumentError("a zip archive whose central directory is damaged");
    }
    std::string path(data.substr(at + 46, name_size));
    at += 46 + skip;
    const bool link = (made_by >> 8) == 3 && ((external >> 16) & 0170000) == 0120000;
    if (absl::EndsWith(path, "/") || link) continue;
    absl::StatusOr<std::string> inside = InsidePath(std::move(path));
    if (!inside.ok()) return inside.status();
    if (flags & 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("its ", inside->substr(0, 256), " is encrypted"));
    }
    if (method != 0 && method != 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("its ", inside->substr(0, 256), " is compressed by method ", method,
                       "; gitfleet reads stored and deflated entries"));
    }
    declared += size;
    if (declared > bounds.max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("it holds more than ", bounds.max_bytes, " bytes"));
    }
    if (uint64_t{local} + 30 > end || Le(data, local, 4) != 0x04034b50) {
      return absl::InvalidArgumentError(
          absl::StrCat("its ", inside->substr(0, 256), " has a damaged header"));
    }
    const uint64_t start = uint64_t{local} + 30 + Le(data, local + 26, 2) + Le(data, local + 28, 2);
    if (start + compressed > end) {
      return absl::InvalidArgumentError(
          absl::StrCat("its ", inside->substr(0, 256), " is cut short"));
    }
    const absl::string_view stored = data.substr(start, compressed);
    std::string content;
    if (method == 0) {
      if (compressed != size) {
        return absl::InvalidArgumentError(
            absl::StrCat("its ", inside->substr(0, 256), " is damaged"));
      }
      content = std::string(stored);
    } else {
      absl::StatusOr<std::string> inflated = Inflate(stored, size);
      if (!inflated.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("its ", inside->substr(0, 256), ": ", inflated.status().message()));
      }
      content = *std::move(inflated);
    }
    if (crc32(0, reinterpret_cast<const Bytef*>(content.data()),
              static_cast<uInt>(content.size())) != crc) {
      return absl::InvalidArgumentError(
          absl::StrCat("its ", inside->substr(0, 256), " fails its CRC check"));
    }
    if (absl::Status s = files.Add(*std::move(inside), std::move(content)); !s.ok()) return s;
  }
  return files.Take();
}

}  // namespace

bool NamesArchive(absl::string_view name) {
  static constexpr absl::string_view kSuffixes[] = {".tar.gz", ".tgz", ".tar.bz2", ".tbz2",
                                                    ".tar.xz", ".txz", ".tar.zst", ".tar.zstd",
                                                    ".tzst",   ".tar", ".zip"};
  const std::string lower = absl::AsciiStrToLower(name);
  return std::any_of(std::begin(kSuffixes), std::end(kSuffixes),
                     [&lower](absl::string_view suffix) { return absl::EndsWith(lower, suffix); });
}

absl::StatusOr<std::vector<RepoFile>> UnpackArchive(const std::string& archive,
                                                    const ArchiveBounds& bounds) {
  const absl::string_view head(archive.data(), std::min<size_t>(archive.size(), 6));
  absl::StatusOr<std::string> tar;
  if (absl::StartsWith(head, "PK\x03\x04") || absl::StartsWith(head, "PK\x05\x06")) {
    return ReadZip(archive, bounds);
  } else if (absl::StartsWith(head, "\x1f\x8b")) {
    tar = Gunzip(archive, TarBound(bounds));
  } else if (absl::StartsWith(head, "BZh")) {
    tar = Bunzip2(archive, TarBound(bounds));
  } else if (head == absl::string_view("\xfd"
                                       "7zXZ\0",
                                       6)) {
    tar = Unxz(archive, TarBound(bounds));
  } else if (absl::StartsWith(head, "\x28\xb5\x2f\xfd")) {
    tar = Unzstd(archive, TarBound(bounds));
  } else if (IsTar(archive)) {
    if (archive.size() > TarBound(bounds)) return Exhausted(TarBound(bounds));
    return ReadTar(archive, bounds);
  } else {
    return absl::InvalidArgumentError(
        "it is no archive gitfleet reads (a tar, as it is or compressed with gzip, bzip2, xz "
        "or zstd, or a zip)");
  }
  if (!tar.ok()) return tar.status();
  if (!IsTar(*tar)) {
    return absl::InvalidArgumentError(
        "it is compressed, but what it holds is no tar (gitfleet unpacks archives, not single "
        "compressed files)");
  }
  return ReadTar(*tar, bounds);
}

absl::StatusOr<std::vector<RepoFile>> ArchiveFolder(std::vector<RepoFile> files,
                                                    absl::string_view pattern) {
  std::string wanted(pattern);
  while (absl::StartsWith(wanted, "./")) wanted.erase(0, 2);
  while (absl::EndsWith(wanted, "/")) wanted.pop_back();
  if (wanted.empty() || wanted == ".") return files;
  const std::vector<std::string> parts = absl::StrSplit(wanted, '/', absl::SkipEmpty());
  if (wanted[0] == '/' || wanted.size() > 1024 ||
      std::find(parts.begin(), parts.end(), "..") != parts.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the folder ", wanted.substr(0, 256), " after \"//\" is not a path inside the archive"));
  }
  // The archive's folders of that depth that the pattern's parts match, part by part.
  std::set<std::string> matched;
  for (const RepoFile& file : files) {
    const std::vector<absl::string_view> names = absl::StrSplit(file.path, '/');
    if (names.size() <= parts.size()) continue;
    bool match = true;
    for (size_t i = 0; i < parts.size() && match; ++i) {
      match = fnmatch(parts[i].c_str(), std::string(names[i]).c_str(), FNM_PERIOD) == 0;
    }
    if (match) {
      matched.insert(absl::StrJoin(names.begin(), names.begin() + parts.size(), "/"));
    }
  }
  if (matched.empty()) {
    return absl::NotFoundError(
        absl::StrCat("the archive has no folder ", wanted.substr(0, 256), " (after \"//\")"));
  }
  if (matched.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the folder ", wanted.substr(0, 256), " (after \"//\") matches ",
                     matched.size(), " folders of the archive (", *matched.begin(), " and ",
                     *std::next(matched.begin()), "); it must name one"));
  }
  const std::string prefix = *matched.begin() + "/";
  std::vector<RepoFile> inside;
  for (RepoFile& file : files) {
    if (absl::StartsWith(file.path, prefix)) {
      inside.push_back({file.path.substr(prefix.size()), std::move(file.content)});
    }
  }
  return inside;
}

}  // namespace gitfleet
