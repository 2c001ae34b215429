// Operations per second of the SQLite queue (WAL, synchronous=FULL: every
// commit waits for an fsync) against a plain std::deque + mutex, the cost
// floor of any queue that keeps nothing on disk.
//
//   bench_queue [--messages 2000] [--dir /tmp]
//
// One thread, one message per call unless the row says batch: send, receive
// (visibility 60 s) and delete each move all the messages once. The file
// lives in --dir, so point it at the disk the service will use.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "queue/sqlite_queue.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

// The peer: what a queue costs when it is only memory.
class MemoryQueue {
 public:
  void Send(std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    visible_.push_back(std::move(body));
  }
  std::vector<std::string> Receive(int max) {  // returns receipts
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> receipts;
    while (!visible_.empty() && static_cast<int>(receipts.size()) < max) {
      std::string receipt = std::to_string(next_receipt_++);
      in_flight_.emplace(receipt, std::move(visible_.front()));
      visible_.pop_front();
      receipts.push_back(std::move(receipt));
    }
    return receipts;
  }
  bool Delete(const std::string& receipt) {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_.erase(receipt) == 1;
  }

 private:
  std::mutex mu_;
  std::deque<std::string> visible_;
  std::unordered_map<std::string, std::string> in_flight_;
  uint64_t next_receipt_ = 0;
};

double OpsPerSecond(int ops, const std::function<void()>& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  const std::chrono::duration<double> s =
      std::chrono::steady_clock::now() - start;
  return ops / s.count();
}

void Die(const Status& st) {
  std::fprintf(stderr, "bench_queue: %s\n", st.ToString().c_str());
  std::exit(1);
}

struct Row {
  const char* op;
  double sqlite;
  double memory;
};

// Measures send, receive, delete with `batch` messages per send/receive call.
void Measure(int n, int batch, const std::string& path, std::vector<Row>* rows,
             const char* send_name, const char* receive_name,
             const char* delete_name) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
  auto opened = SqliteQueue::Open(path, "bench");
  if (!opened.ok()) Die(opened.status());
  SqliteQueue& q = **opened;
  const std::string body(200, 'x');  // about an S3 event's size

  const double send_sqlite = OpsPerSecond(n, [&] {
    for (int i = 0; i < n; i += batch) {
      std::vector<OutgoingMessage> msgs(batch, OutgoingMessage{body, {}, 0});
      auto ids = q.SendBatch(msgs);
      if (!ids.ok()) Die(ids.status());
    }
  });
  std::vector<std::string> receipts;
  const double receive_sqlite = OpsPerSecond(n, [&] {
    while (static_cast<int>(receipts.size()) < n) {
      auto got = q.Receive(batch, 60'000);
      if (!got.ok()) Die(got.status());
      if (got->empty()) Die(InternalError("queue ran dry"));
      for (Message& m : *got) receipts.push_back(std::move(m.receipt));
    }
  });
  const double delete_sqlite = OpsPerSecond(n, [&] {
    for (const std::string& r : receipts) {
      Status st = q.Delete(r);
      if (!st.ok()) Die(st);
    }
  });

  MemoryQueue mem;
  std::vector<std::string> mem_receipts;
  const double send_memory = OpsPerSecond(n, [&] {
    for (int i = 0; i < n; ++i) mem.Send(body);
  });
  const double receive_memory = OpsPerSecond(n, [&] {
    while (static_cast<int>(mem_receipts.size()) < n) {
      for (std::string& r : mem.Receive(batch)) {
        mem_receipts.push_back(std::move(r));
      }
    }
  });
  const double delete_memory = OpsPerSecond(n, [&] {
    for (const std::string& r : mem_receipts) {
      if (!mem.Delete(r)) Die(InternalError("memory delete"));
    }
  });
  rows->push_back({send_name, send_sqlite, send_memory});
  rows->push_back({receive_name, receive_sqlite, receive_memory});
  if (delete_name != nullptr) {
    rows->push_back({delete_name, delete_sqlite, delete_memory});
  }
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
}

int Main(int argc, char** argv) {
  int n = 2000;
  std::string dir = fs::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--messages") == 0) {
      n = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--dir") == 0) {
      dir = argv[i + 1];
    } else {
      std::fprintf(stderr, "usage: bench_queue [--messages N] [--dir D]\n");
      return 2;
    }
  }
  n = std::max(kMaxBatchEntries, n / kMaxBatchEntries * kMaxBatchEntries);
  const std::string path =
      (fs::path(dir) / ("bench_queue_" + std::to_string(getpid()) + ".db"))
          .string();

  std::vector<Row> rows;
  Measure(n, 1, path, &rows, "send", "receive", "delete");
  Measure(n, kMaxBatchEntries, path, &rows, "send (batch of 10)",
          "receive (10 per call)", nullptr);

  std::printf("%d messages of 200 bytes, one thread, file in %s\n\n", n,
              dir.c_str());
  std::printf("| %-22s | %18s | %18s | %9s |\n", "op (msgs/s)",
              "sqlite sync=FULL", "deque+mutex", "mem/sqlite");
  std::printf("| %-22s | %18s | %18s | %9s |\n", "---", "---:", "---:", "---:");
  for (const Row& r : rows) {
    std::printf("| %-22s | %18.0f | %18.0f | %8.0fx |\n", r.op, r.sqlite,
                r.memory, r.memory / r.sqlite);
  }
  return 0;
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) { return cbpipe::Main(argc, argv); }
