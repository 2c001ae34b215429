// For the contract tests of ports (one typed suite run against every
// adapter): the adapters' test harnesses for an SQLite adapter and an
// in-memory one, and a fresh SQLite file under the test's temporary folder.
//
//   using Adapters = ::testing::Types<
//       SqliteAdapterFor<DeliveryLedger, SqliteDeliveryLedger>,
//       InMemoryAdapterFor<DeliveryLedger, InMemoryDeliveryLedger>>;
//   TYPED_TEST_SUITE(LedgerContract, Adapters, AdapterName);
//   ...
//   std::unique_ptr<DeliveryLedger> ledger = adapter.Open(&env);
//   std::shared_ptr<DeliveryLedger> other = adapter.Connect(&env,
//   ledger.get());
//
// Open() makes the adapter under test (for SQLite: a connection to the
// harness's file); Connect() another handle on the same data (a second
// SQLite connection, as a second process would have; for memory the same
// object, the only way to share it).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/env.h"

namespace cbpipe {

// <tmp>/<stem>_<pid>.db, removed with its -wal and -shm files before and
// after.
class TestSqliteFile {
 public:
  explicit TestSqliteFile(const std::string& stem)
      : path_((std::filesystem::path(::testing::TempDir()) /
               (stem + "_" + std::to_string(::getpid()) + ".db"))
                  .string()) {
    Remove();
  }
  ~TestSqliteFile() { Remove(); }
  TestSqliteFile(const TestSqliteFile&) = delete;
  TestSqliteFile& operator=(const TestSqliteFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path_ + suffix);
  }
  std::string path_;
};

// `Sqlite::Open(path, env)` returns StatusOr<std::unique_ptr<Port>>.
template <typename Port, typename Sqlite>
class SqliteAdapterFor {
 public:
  static constexpr char kName[] = "Sqlite";
  std::unique_ptr<Port> Open(Env* env) {
    auto opened = Sqlite::Open(file_.path(), env);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }
  std::shared_ptr<Port> Connect(Env* env, Port* /*opened*/) {
    return std::shared_ptr<Port>(Open(env));
  }

 private:
  TestSqliteFile file_{"contract"};
};

// `Memory(env)` constructs the adapter.
template <typename Port, typename Memory>
class InMemoryAdapterFor {
 public:
  static constexpr char kName[] = "InMemory";
  std::unique_ptr<Port> Open(Env* env) { return std::make_unique<Memory>(env); }
  std::shared_ptr<Port> Connect(Env*, Port* opened) {
    return std::shared_ptr<Port>(opened, [](Port*) {});
  }
};

// gtest's name generator for typed tests: the type's kName.
struct AdapterName {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

}  // namespace cbpipe
