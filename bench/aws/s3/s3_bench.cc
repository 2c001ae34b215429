// bench_s3: the S3 object store's side of bench/aws/s3/run.sh. Each command
// moves files between the local disk and s3://bucket/prefix through
// S3ObjectStore (streaming, as `cbpipe serve` does) on the endpoint given by
// AWS_ENDPOINT_URL_S3 (moto), and prints nothing on success.
// PARALLEL_PARTS=N sets S3StoreOptions::parallel_parts (default 4).
//
//   bench_s3 put FILE s3://bucket/key
//   bench_s3 get s3://bucket/key FILE
//   bench_s3 put-dir DIR s3://bucket/prefix THREADS   (every file of DIR)
//   bench_s3 get-dir s3://bucket/prefix DIR THREADS   (every key under it)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aws/make_client.h"
#include "store/s3_store.h"

namespace fs = std::filesystem;
using namespace cbpipe;

namespace {

StatusOr<std::unique_ptr<S3ObjectStore>> Open(const std::string& url,
                                              std::string* key) {
  std::string bucket, path;
  CBPIPE_RETURN_IF_ERROR(ParseS3Url(url, &bucket, &path));
  AwsOptions options;
  if (const char* e = std::getenv("AWS_ENDPOINT_URL_S3")) options.endpoints["s3"] = e;
  CBPIPE_ASSIGN_OR_RETURN(std::shared_ptr<AwsClient> aws, MakeAwsClient(options));
  if (key) {  // the last segment is the key, the rest the prefix
    const size_t cut = path.rfind('/');
    *key = cut == std::string::npos ? path : path.substr(cut + 1);
    path = cut == std::string::npos ? "" : path.substr(0, cut);
  }
  S3StoreOptions store_options;  // PARALLEL_PARTS=N: parts sent at once
  if (const char* e = std::getenv("PARALLEL_PARTS"))
    store_options.parallel_parts = std::atoi(e);
  return S3ObjectStore::Create(aws, bucket, path, store_options);
}

Status GetToFile(ObjectStore& store, const std::string& key,
                 const std::string& file) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> in, store.Get(key));
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  std::vector<char> buf(1 << 20);
  for (;;) {
    CBPIPE_ASSIGN_OR_RETURN(size_t n, in->Read(buf.data(), buf.size()));
    if (n == 0) break;
    out.write(buf.data(), static_cast<std::streamsize>(n));
  }
  out.close();
  if (!out) return UnavailableError("write " + file);
  return OkStatus();
}

// Runs `work(i)` for i in [0, n) on `threads` threads; the first error.
Status Parallel(size_t n, int threads,
                const std::function<Status(size_t)>& work) {
  std::mutex mu;
  size_t next = 0;
  Status first;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (;;) {
        size_t i;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (next >= n || !first.ok()) return;
          i = next++;
        }
        Status s = work(i);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = s;
        }
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return first;
}

Status Main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "put" && argc == 4) {
    std::string key;
    CBPIPE_ASSIGN_OR_RETURN(auto store, Open(argv[3], &key));
    return store->PutFile(key, argv[2]);
  }
  if (cmd == "get" && argc == 4) {
    std::string key;
    CBPIPE_ASSIGN_OR_RETURN(auto store, Open(argv[2], &key));
    return GetToFile(*store, key, argv[3]);
  }
  if (cmd == "put-dir" && argc == 5) {
    CBPIPE_ASSIGN_OR_RETURN(auto store, Open(argv[3], nullptr));
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(argv[2]))
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    const std::string dir = argv[2];
    return Parallel(names.size(), std::atoi(argv[4]), [&](size_t i) {
      return store->PutFile(names[i], dir + "/" + names[i]);
    });
  }
  if (cmd == "get-dir" && argc == 5) {
    CBPIPE_ASSIGN_OR_RETURN(auto store, Open(argv[2], nullptr));
    CBPIPE_ASSIGN_OR_RETURN(std::vector<std::string> keys, store->List(""));
    const std::string dir = argv[3];
    fs::create_directories(dir);
    return Parallel(keys.size(), std::atoi(argv[4]), [&](size_t i) {
      return GetToFile(*store, keys[i], dir + "/" + keys[i]);
    });
  }
  return InvalidArgumentError(
      "usage: bench_s3 put FILE s3://b/key | get s3://b/key FILE | "
      "put-dir DIR s3://b/prefix THREADS | get-dir s3://b/prefix DIR THREADS");
}

}  // namespace

int main(int argc, char** argv) {
  Status s = Main(argc, argv);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_s3: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
