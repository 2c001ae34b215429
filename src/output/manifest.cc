#include "output/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "common/crash_point.h"

namespace cbpipe {
namespace {

using nlohmann::json;

constexpr int kManifestVersion = 1;

bool IsPlainName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

bool IsHex64(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// nlohmann converts a negative number to uint64_t without complaint; these
// insist on the JSON type the writer produced.
struct BadManifest : std::runtime_error {
  using std::runtime_error::runtime_error;
};

uint64_t Unsigned(const json& object, const char* key) {
  const json& value = object.at(key);
  if (!value.is_number_unsigned()) {
    throw BadManifest(std::string(key) + " is not a non-negative integer");
  }
  return value.get<uint64_t>();
}

int Positive(const json& object, const char* key) {
  const json& value = object.at(key);
  if (!value.is_number_unsigned() || value.get<uint64_t>() == 0 ||
      value.get<uint64_t>() > 1000000000) {
    throw BadManifest(std::string(key) + " is not a positive integer");
  }
  return static_cast<int>(value.get<uint64_t>());
}

int64_t Integer(const json& value, const std::string& what) {
  if (!value.is_number_integer()) {
    throw BadManifest(what + " is not an integer");
  }
  return value.get<int64_t>();
}

}  // namespace

std::string ManifestJson(const Batch& batch) {
  json files = json::array();
  for (const FileSummary& f : batch.files) {
    json totals = json::object();
    for (const auto& [code, minor] : f.totals) totals[code] = minor;
    files.push_back({
        {"destination", f.destination},
        {"network", std::string(NetworkName(f.network))},
        {"name", f.name},
        {"records", f.records},
        {"bytes", f.bytes},
        {"sha256", f.sha256},
        {"totals", std::move(totals)},
        {"file_seq", f.file_seq},
        {"layout", f.layout},
        {"columns", f.columns},
        {"trailer", std::string(TrailerKindName(f.trailer))},
    });
  }
  json doc = {
      {"version", kManifestVersion},
      {"batch_id", batch.id},
      {"seq", batch.seq},
      {"input_id", batch.input_id},
      {"files", std::move(files)},
  };
  return doc.dump(2) + "\n";
}

Status WriteManifest(const Batch& batch, const std::string& path) {
  const std::string text = ManifestJson(batch);
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    return UnavailableError("cannot create " + path + ": " +
                            std::strerror(errno));
  }
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return UnavailableError("cannot write " + path + ": " +
                              std::strerror(err));
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return UnavailableError("cannot fsync " + path + ": " +
                            std::strerror(errno));
  }
  DurablePoint("manifest.fsync");
  return OkStatus();
}

StatusOr<Batch> ParseManifest(std::string_view text, const std::string& dir) {
  // nlohmann reports wrong types and missing keys by throwing; they become a
  // kDataLoss naming the manifest here, at the library boundary.
  try {
    const json doc = json::parse(text);
    if (!doc.is_object()) return DataLossError("manifest is not an object");
    if (doc.at("version").get<int>() != kManifestVersion) {
      return DataLossError("manifest version " + doc.at("version").dump() +
                           " is not supported");
    }
    Batch batch;
    batch.id = doc.at("batch_id").get<std::string>();
    batch.seq = Positive(doc, "seq");
    batch.input_id = doc.at("input_id").get<std::string>();
    batch.dir = dir;
    batch.manifest_path = dir + "/" + std::string(kManifestFileName);
    if (!doc.at("files").is_array()) throw BadManifest("files is not a list");
    for (const json& f : doc.at("files")) {
      FileSummary s;
      s.destination = f.at("destination").get<std::string>();
      auto network = ParseNetwork(f.at("network").get<std::string>());
      if (!network) {
        return DataLossError("manifest: unknown network " +
                             f.at("network").dump());
      }
      s.network = *network;
      s.name = f.at("name").get<std::string>();
      if (!IsPlainName(s.name) || s.name == kManifestFileName) {
        return DataLossError("manifest: file name \"" + s.name +
                             "\" is not a plain file name");
      }
      s.path = dir + "/" + s.name;
      s.records = Unsigned(f, "records");
      s.bytes = Unsigned(f, "bytes");
      s.sha256 = f.at("sha256").get<std::string>();
      if (!IsHex64(s.sha256)) {
        return DataLossError("manifest: " + s.name +
                             ": sha256 is not 64 lower-case hex digits");
      }
      for (const auto& [code, minor] : f.at("totals").items()) {
        s.totals[code] = Integer(minor, "totals." + code);
      }
      s.batch_seq = batch.seq;
      s.file_seq = Positive(f, "file_seq");
      s.layout = f.at("layout").get<std::string>();
      s.columns = Positive(f, "columns");
      auto trailer = ParseTrailerKind(f.at("trailer").get<std::string>());
      if (!trailer) {
        return DataLossError("manifest: " + s.name + ": unknown trailer " +
                             f.at("trailer").dump());
      }
      s.trailer = *trailer;
      batch.files.push_back(std::move(s));
    }
    return batch;
  } catch (const json::exception& e) {
    return DataLossError(std::string("manifest: ") + e.what());
  } catch (const BadManifest& e) {
    return DataLossError(std::string("manifest: ") + e.what());
  }
}

StatusOr<Batch> ReadManifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return NotFoundError("no manifest at " + path);
    return UnavailableError("cannot read " + path + ": " +
                            std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return UnavailableError("cannot read " + path);
  std::string dir = path;
  const size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  auto batch = ParseManifest(text.str(), dir);
  if (!batch.ok()) {
    return Status(batch.status().code(),
                  path + ": " + batch.status().message());
  }
  return batch;
}

}  // namespace cbpipe
