#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "store/memory_store.h"
#include "store/object_store_contract.h"

namespace cbpipe {

namespace fs = std::filesystem;

void ObjectStoreContract::SetUp() {
  static std::atomic<int> serial{0};
  scratch_ = (fs::path(::testing::TempDir()) /
              ("store_contract_" + std::to_string(::getpid()) + "_" +
               std::to_string(serial++)))
                 .string();
  fs::remove_all(scratch_);
  fs::create_directories(scratch_);
  store_ = GetParam().make(scratch_);
  ASSERT_NE(store_, nullptr);
}

void ObjectStoreContract::TearDown() {
  store_.reset();
  fs::remove_all(scratch_);
}

namespace {

Status PutString(ObjectStore& store, const std::string& key,
                 const std::string& bytes) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> out, store.Put(key));
  CBPIPE_RETURN_IF_ERROR(out->Write(bytes.data(), bytes.size()));
  return out->Commit();
}

StatusOr<std::string> ReadAll(ObjectReader& in, size_t chunk = 4096) {
  std::string all;
  std::vector<char> buf(chunk);
  for (;;) {
    CBPIPE_ASSIGN_OR_RETURN(size_t n, in.Read(buf.data(), buf.size()));
    if (n == 0) return all;
    all.append(buf.data(), n);
  }
}

StatusOr<std::string> ReadObject(ObjectStore& store, const std::string& key) {
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> in, store.Get(key));
  return ReadAll(*in);
}

// The object's bytes; a failed Get or Read fails the test (and returns a
// text no test expects) instead of dereferencing an error StatusOr, which
// is undefined: a transient error of a real server under load crashed the
// whole binary (SIGSEGV) rather than failing the one check.
std::string GetString(ObjectStore& store, const std::string& key) {
  StatusOr<std::string> got = ReadObject(store, key);
  if (got.ok()) return std::move(*got);
  ADD_FAILURE() << "Get " << key << ": " << got.status().ToString();
  return "<Get failed: " + got.status().ToString() + ">";
}

// Whether `key` exists; a failed Exists fails the test (and reads false).
bool Exists(ObjectStore& store, const std::string& key) {
  StatusOr<bool> there = store.Exists(key);
  if (there.ok()) return *there;
  ADD_FAILURE() << "Exists " << key << ": " << there.status().ToString();
  return false;
}

std::vector<std::string> Keys(ObjectStore& store, const std::string& prefix) {
  StatusOr<std::vector<std::string>> keys = store.List(prefix);
  EXPECT_TRUE(keys.ok()) << keys.status().ToString();
  return keys.ok() ? *keys : std::vector<std::string>{};
}

// Byte i of the large object: a pattern with no short period, so a chunk
// written or read at the wrong offset shows.
char PatternByte(uint64_t i) {
  return static_cast<char>((i * 2654435761u) >> 13);
}

TEST_P(ObjectStoreContract, RefusesBadKeysEverywhere) {
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "a/", "..", "a b",
                          "a\\b", "./a", "a/.put-1.tmp", "caf\xc3\xa9"}) {
    const std::string key(bad);
    EXPECT_EQ(store_->Put(key).status().code(), StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->Get(key).status().code(), StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->Head(key).status().code(), StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->Delete(key).code(), StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(store_->Exists(key).status().code(),
              StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->LocalPath(key).status().code(),
              StatusCode::kInvalidArgument)
        << key;
  }
  EXPECT_EQ(store_->Put(std::string(1025, 'a')).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Keys(*store_, "").empty());
}

TEST_P(ObjectStoreContract, PutThenGetHeadAndReplace) {
  EXPECT_EQ(store_->Get("runs/r1/a.csv").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->Head("runs/r1/a.csv").status().code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(Exists(*store_, "runs/r1/a.csv"));
  ASSERT_TRUE(PutString(*store_, "runs/r1/a.csv", "first").ok());
  EXPECT_EQ(GetString(*store_, "runs/r1/a.csv"), "first");
  StatusOr<ObjectInfo> info = store_->Head("runs/r1/a.csv");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->size, 5u);
  EXPECT_GT(info->mtime_ms, 1'600'000'000'000);  // after 2020: epoch ms
  EXPECT_TRUE(Exists(*store_, "runs/r1/a.csv"));

  ASSERT_TRUE(PutString(*store_, "runs/r1/a.csv", "second, longer").ok());
  EXPECT_EQ(GetString(*store_, "runs/r1/a.csv"), "second, longer");
  EXPECT_EQ(store_->Head("runs/r1/a.csv")->size, 14u);
  // An empty object is an object.
  ASSERT_TRUE(PutString(*store_, "empty", "").ok());
  EXPECT_EQ(GetString(*store_, "empty"), "");
  EXPECT_EQ(store_->Head("empty")->size, 0u);
  EXPECT_EQ(Keys(*store_, ""),
            (std::vector<std::string>{"empty", "runs/r1/a.csv"}));
}

TEST_P(ObjectStoreContract, UncommittedPutIsInvisible) {
  ASSERT_TRUE(PutString(*store_, "k/replaced", "old").ok());
  auto fresh = store_->Put("k/fresh");
  auto replacing = store_->Put("k/replaced");
  ASSERT_TRUE(fresh.ok() && replacing.ok());
  ASSERT_TRUE((*fresh)->Write("new", 3).ok());
  ASSERT_TRUE((*replacing)->Write("new", 3).ok());
  // Written, not committed: nobody sees it.
  EXPECT_EQ(store_->Get("k/fresh").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Head("k/fresh").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(Exists(*store_, "k/fresh"));
  EXPECT_EQ(GetString(*store_, "k/replaced"), "old");
  EXPECT_EQ(store_->Head("k/replaced")->size, 3u);
  EXPECT_EQ(Keys(*store_, ""), std::vector<std::string>{"k/replaced"});

  ASSERT_TRUE((*fresh)->Commit().ok());
  ASSERT_TRUE((*replacing)->Commit().ok());
  EXPECT_EQ(GetString(*store_, "k/fresh"), "new");
  EXPECT_EQ(GetString(*store_, "k/replaced"), "new");
  // Once committed, a writer takes nothing more; Abort changes nothing.
  EXPECT_EQ((*fresh)->Write("x", 1).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*fresh)->Commit().code(), StatusCode::kFailedPrecondition);
  (*fresh)->Abort();
  EXPECT_EQ(GetString(*store_, "k/fresh"), "new");
}

TEST_P(ObjectStoreContract, AbortedOrDroppedPutLeavesNothing) {
  ASSERT_TRUE(PutString(*store_, "k/kept", "old").ok());
  {
    auto out = store_->Put("k/aborted");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->Write("partial", 7).ok());
    (*out)->Abort();
    (*out)->Abort();  // idempotent
    EXPECT_EQ((*out)->Write("x", 1).code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ((*out)->Commit().code(), StatusCode::kFailedPrecondition);
  }
  {
    auto out = store_->Put("k/dropped");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->Write("partial", 7).ok());
  }  // destroyed uncommitted: aborted
  {
    auto out = store_->Put("k/kept");
    ASSERT_TRUE(out.ok());
    ASSERT_TRUE((*out)->Write("partial", 7).ok());
  }
  EXPECT_EQ(Keys(*store_, ""), std::vector<std::string>{"k/kept"});
  EXPECT_EQ(GetString(*store_, "k/kept"), "old");
  EXPECT_EQ(store_->Get("k/aborted").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Get("k/dropped").status().code(), StatusCode::kNotFound);
  // Nothing is left behind for a clean-up to find either.
  StatusOr<int> stale = store_->RemoveStaleTemporaries();
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(*stale, 0);
}

TEST_P(ObjectStoreContract, StreamsALargeObjectInChunks) {
  constexpr uint64_t kSize = 20u << 20;  // 20 MiB
  constexpr size_t kChunk = 64 << 10;    // 64 KiB
  {
    auto out = store_->Put("large/object");
    ASSERT_TRUE(out.ok());
    std::vector<char> chunk(kChunk);
    for (uint64_t done = 0; done < kSize; done += kChunk) {
      for (size_t i = 0; i < kChunk; ++i) chunk[i] = PatternByte(done + i);
      ASSERT_TRUE((*out)->Write(chunk.data(), chunk.size()).ok());
    }
    ASSERT_TRUE((*out)->Commit().ok());
  }
  EXPECT_EQ(store_->Head("large/object")->size, kSize);
  // Read back in chunks of another size, checking each as it comes.
  auto in = store_->Get("large/object");
  ASSERT_TRUE(in.ok());
  std::vector<char> buf(kChunk - 7);
  uint64_t offset = 0;
  for (;;) {
    StatusOr<size_t> n = (*in)->Read(buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_LE(*n, buf.size());
    if (*n == 0) break;
    for (size_t i = 0; i < *n; ++i) {
      ASSERT_EQ(buf[i], PatternByte(offset + i)) << "at " << offset + i;
    }
    offset += *n;
  }
  EXPECT_EQ(offset, kSize);
  EXPECT_EQ(*(*in)->Read(buf.data(), buf.size()), 0u);  // still the end
}

TEST_P(ObjectStoreContract, AReaderKeepsWhatItOpened) {
  ASSERT_TRUE(PutString(*store_, "snap", "version one").ok());
  auto before_replace = store_->Get("snap");
  ASSERT_TRUE(before_replace.ok());
  char first[3];
  ASSERT_EQ(*(*before_replace)->Read(first, sizeof first), 3u);
  ASSERT_TRUE(PutString(*store_, "snap", "version two!").ok());
  auto before_delete = store_->Get("snap");
  ASSERT_TRUE(before_delete.ok());
  ASSERT_TRUE(store_->Delete("snap").ok());
  EXPECT_EQ(std::string(first, 3) + *ReadAll(**before_replace),
            "version one");
  EXPECT_EQ(*ReadAll(**before_delete), "version two!");
}

TEST_P(ObjectStoreContract, ListsByPrefixAndDeletesIdempotently) {
  for (const char* key : {"inputs/b", "inputs/ab", "inputs/a", "inputsx",
                          "batches/r1/visa.csv", "batches/r1/mc.csv"}) {
    ASSERT_TRUE(PutString(*store_, key, key).ok()) << key;
  }
  EXPECT_EQ(Keys(*store_, "inputs/"),
            (std::vector<std::string>{"inputs/a", "inputs/ab", "inputs/b"}));
  EXPECT_EQ(Keys(*store_, "inputs/a"),
            (std::vector<std::string>{"inputs/a", "inputs/ab"}));
  EXPECT_EQ(Keys(*store_, "inputs"),
            (std::vector<std::string>{"inputs/a", "inputs/ab", "inputs/b",
                                      "inputsx"}));
  EXPECT_EQ(Keys(*store_, "batches/r1/"),
            (std::vector<std::string>{"batches/r1/mc.csv",
                                      "batches/r1/visa.csv"}));
  EXPECT_TRUE(Keys(*store_, "nothing/").empty());
  EXPECT_EQ(Keys(*store_, "").size(), 6u);

  ASSERT_TRUE(store_->Delete("inputs/ab").ok());
  EXPECT_EQ(store_->Get("inputs/ab").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Head("inputs/ab").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->LocalPath("inputs/ab").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Keys(*store_, "inputs/a"), std::vector<std::string>{"inputs/a"});
  // Deleting what is not there is OK: a retried Delete succeeds.
  EXPECT_TRUE(store_->Delete("inputs/ab").ok());
  EXPECT_TRUE(store_->Delete("never/stored").ok());
  EXPECT_EQ(GetString(*store_, "inputs/a"), "inputs/a");
  // A deleted key can be written again.
  ASSERT_TRUE(PutString(*store_, "inputs/ab", "again").ok());
  EXPECT_EQ(GetString(*store_, "inputs/ab"), "again");
}

TEST_P(ObjectStoreContract, GetObjectBytesStopsAtItsLimit) {
  const std::string big(200 * 1024, 'x');
  ASSERT_TRUE(PutString(*store_, "limit/big", big).ok());
  StatusOr<std::string> whole = GetObjectBytes(*store_, "limit/big", big.size());
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(*whole, big);
  StatusOr<std::string> over =
      GetObjectBytes(*store_, "limit/big", big.size() - 1);
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
}

TEST_P(ObjectStoreContract, ConcurrentPutsOfDifferentKeysAllLand) {
  constexpr int kThreads = 8, kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  // gtest's failures are thread-safe: each one says which call failed how.
  auto failed = [&](const std::string& what, const Status& s) {
    ++failures;
    ADD_FAILURE() << what << ": " << s.ToString();
  };
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key =
            "c/t" + std::to_string(t) + "/k" + std::to_string(i);
        // Several Writes per object, interleaved with the other threads.
        auto out = store_->Put(key);
        if (!out.ok()) {
          failed("Put " + key, out.status());
          continue;
        }
        for (int part = 0; part < 3; ++part) {
          const std::string bytes = key + "#" + std::to_string(part) + ";";
          Status s = (*out)->Write(bytes.data(), bytes.size());
          if (!s.ok()) failed("Write " + key, s);
        }
        Status s = (*out)->Commit();
        if (!s.ok()) failed("Commit " + key, s);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Keys(*store_, "c/").size(),
            static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string key =
          "c/t" + std::to_string(t) + "/k" + std::to_string(i);
      EXPECT_EQ(GetString(*store_, key),
                key + "#0;" + key + "#1;" + key + "#2;");
    }
  }
}

TEST_P(ObjectStoreContract, ConcurrentPutsOfOneKeyLeaveOneWhole) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const std::string bytes(1000 + 100 * t, static_cast<char>('a' + t));
        EXPECT_TRUE(PutString(*store_, "same", bytes).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const std::string got = GetString(*store_, "same");
  ASSERT_FALSE(got.empty());
  const int t = got[0] - 'a';
  EXPECT_EQ(got, std::string(1000 + 100 * t, got[0]));
  EXPECT_EQ(Keys(*store_, ""), std::vector<std::string>{"same"});
}

TEST_P(ObjectStoreContract, PutContentAddressedNamesTheBytes) {
  const std::string src = scratch_ + "/input.csv";
  std::ofstream(src) << "hello";
  const int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::lseek(fd, 3, SEEK_SET);  // pread: the offset does not matter
  auto put = store_->PutContentAddressed("inputs/", fd);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(put->key, "inputs/" + put->sha256);
  EXPECT_EQ(put->size, 5u);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 3);
  EXPECT_EQ(GetString(*store_, put->key), "hello");
  const int64_t mtime = store_->Head(put->key)->mtime_ms;
  auto again = store_->PutContentAddressed("inputs/", fd);  // kept as it is
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->key, put->key);
  EXPECT_EQ(store_->Head(put->key)->mtime_ms, mtime);
  ::close(fd);
  EXPECT_EQ(Keys(*store_, "inputs/"), std::vector<std::string>{put->key});

  const std::string empty = scratch_ + "/empty.csv";
  std::ofstream(empty).flush();
  const int efd = ::open(empty.c_str(), O_RDONLY | O_CLOEXEC);
  auto none = store_->PutContentAddressed("inputs/", efd);
  ::close(efd);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(none->size, 0u);
  EXPECT_EQ(GetString(*store_, none->key), "");
  EXPECT_EQ(store_->PutContentAddressed("../", efd).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_P(ObjectStoreContract, PutFileAndLocalPath) {
  const std::string src = scratch_ + "/src.csv";
  std::ofstream(src) << "a,b\n1,2\n";
  ASSERT_TRUE(store_->PutFile("inputs/x.csv", src).ok());
  EXPECT_EQ(GetString(*store_, "inputs/x.csv"), "a,b\n1,2\n");
  EXPECT_EQ(store_->PutFile("inputs/y.csv", scratch_ + "/missing").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->PutFile("../y.csv", src).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Keys(*store_, ""), std::vector<std::string>{"inputs/x.csv"});

  StatusOr<std::string> path = store_->LocalPath("inputs/x.csv");
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  std::ifstream in(*path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "a,b\n1,2\n");
  // After a new Put the path gives the new bytes.
  ASSERT_TRUE(PutString(*store_, "inputs/x.csv", "new").ok());
  path = store_->LocalPath("inputs/x.csv");
  ASSERT_TRUE(path.ok());
  std::ifstream again(*path, std::ios::binary);
  std::stringstream text2;
  text2 << again.rdbuf();
  EXPECT_EQ(text2.str(), "new");
  EXPECT_EQ(store_->LocalPath("inputs/none").status().code(),
            StatusCode::kNotFound);
}

// Writes `size` pattern bytes (PatternByte) to a new file at `path`; its
// SHA-256 hex.
std::string WritePatternFile(const std::string& path, uint64_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  Sha256 sha;
  std::string block;
  for (uint64_t done = 0; done < size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(1 << 20, size - done));
    block.resize(n);
    for (size_t i = 0; i < n; ++i) block[i] = PatternByte(done + i);
    out.write(block.data(), static_cast<std::streamsize>(n));
    sha.Update(block.data(), n);
    done += n;
  }
  StatusOr<std::string> hex = sha.FinishHex();
  EXPECT_TRUE(hex.ok());
  return hex.ok() ? *hex : "";
}

// Whether the object under `key` is the `size` pattern bytes.
bool HoldsPattern(ObjectStore& store, const std::string& key, uint64_t size) {
  const std::string got = GetString(store, key);
  if (got.size() != size) {
    ADD_FAILURE() << key << " has " << got.size() << " bytes, not " << size;
    return false;
  }
  for (uint64_t i = 0; i < size; ++i) {
    if (got[i] != PatternByte(i)) {
      ADD_FAILURE() << key << ": byte " << i << " differs";
      return false;
    }
  }
  return true;
}

TEST_P(ObjectStoreContract, PutFileStoresTheWholeFileWithOrWithoutItsHash) {
  // Larger than an S3 part (8 MiB), so a Put would be multipart.
  constexpr uint64_t kSize = (9u << 20) + 4321;
  const std::string big = scratch_ + "/big.csv";
  const std::string sha = WritePatternFile(big, kSize);
  ASSERT_TRUE(store_->PutFile("batches/b1/big.csv", big).ok());
  EXPECT_TRUE(HoldsPattern(*store_, "batches/b1/big.csv", kSize));
  Status s = store_->PutFile("batches/b1/hashed.csv", big, sha);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(HoldsPattern(*store_, "batches/b1/hashed.csv", kSize));
  StatusOr<ObjectInfo> info = store_->Head("batches/b1/hashed.csv");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->size, kSize);
  // The file is only read.
  EXPECT_EQ(fs::file_size(big), kSize);

  const std::string empty = scratch_ + "/empty.csv";
  std::ofstream(empty).close();
  ASSERT_TRUE(store_->PutFile("batches/b1/empty.csv", empty).ok());
  EXPECT_EQ(GetString(*store_, "batches/b1/empty.csv"), "");
  s = store_->PutFile(
      "batches/b1/empty2.csv", empty,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(GetString(*store_, "batches/b1/empty2.csv"), "");
}

TEST_P(ObjectStoreContract, PutFileReplacesWholeOrRefusesAndKeepsTheOld) {
  const std::string src = scratch_ + "/src.csv";
  std::ofstream(src) << "old\n";
  ASSERT_TRUE(store_->PutFile("inputs/x.csv", src).ok());
  std::ofstream(src, std::ios::trunc) << "new, longer\n";
  ASSERT_TRUE(store_->PutFile("inputs/x.csv", src).ok());
  EXPECT_EQ(GetString(*store_, "inputs/x.csv"), "new, longer\n");

  // A hash that is not the file's: refused, the object before untouched.
  const std::string wrong(64, 'a');
  std::ofstream(src, std::ios::trunc) << "newest\n";
  EXPECT_EQ(store_->PutFile("inputs/x.csv", src, wrong).code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(GetString(*store_, "inputs/x.csv"), "new, longer\n");
  EXPECT_EQ(store_->PutFile("inputs/z.csv", src, wrong).code(),
            StatusCode::kDataLoss);
  EXPECT_FALSE(Exists(*store_, "inputs/z.csv"));
  const std::string empty = scratch_ + "/empty";
  std::ofstream(empty).close();
  EXPECT_EQ(store_->PutFile("inputs/z.csv", empty, wrong).code(),
            StatusCode::kDataLoss);
  EXPECT_FALSE(Exists(*store_, "inputs/z.csv"));

  // A malformed hash, a folder, no file: nothing stored.
  for (const char* bad : {"abc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    EXPECT_EQ(store_->PutFile("inputs/z.csv", src, bad).code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(store_->PutFile("inputs/z.csv", scratch_).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->PutFile("inputs/z.csv", scratch_ + "/missing").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Keys(*store_, "inputs/"), std::vector<std::string>{"inputs/x.csv"});
  // Never moved nor deleted.
  EXPECT_TRUE(fs::exists(src));
  EXPECT_TRUE(fs::exists(empty));
}

TEST_P(ObjectStoreContract, ReleasedLocalCopiesGo) {
  ASSERT_TRUE(PutString(*store_, "batches/b1/x.csv", "abc").ok());
  const bool copies = !store_->LocalRoot().has_value();
  StatusOr<std::string> first = store_->LocalPath("batches/b1/x.csv");
  StatusOr<std::string> second = store_->LocalPath("batches/b1/x.csv");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(*first, *second);
  // One hold given back: the other still reads the object.
  store_->ReleaseLocalPath("batches/b1/x.csv");
  std::ifstream held(*first, std::ios::binary);
  std::stringstream text;
  text << held.rdbuf();
  EXPECT_EQ(text.str(), "abc");
  // The last one: a copy goes, with the folders it needed; a folder's
  // object is the file itself and stays.
  store_->ReleaseLocalPath("batches/b1/x.csv");
  EXPECT_EQ(fs::exists(*first), !copies);
  EXPECT_EQ(fs::exists(fs::path(*first).parent_path()), !copies);
  EXPECT_EQ(GetString(*store_, "batches/b1/x.csv"), "abc");
  // Releasing what is not held does nothing.
  store_->ReleaseLocalPath("batches/b1/x.csv");
  store_->ReleaseLocalPath("batches/none");
  EXPECT_EQ(GetString(*store_, "batches/b1/x.csv"), "abc");

  std::string scoped;
  {
    LocalCopies held_here(*store_);
    StatusOr<std::string> path = held_here.Path("batches/b1/x.csv");
    ASSERT_TRUE(path.ok()) << path.status().ToString();
    scoped = *path;
    EXPECT_TRUE(fs::exists(scoped));
    EXPECT_EQ(held_here.Path("batches/none").status().code(),
              StatusCode::kNotFound);
  }
  EXPECT_EQ(fs::exists(scoped), !copies);
}

TEST_P(ObjectStoreContract, ALocalRootHoldsEachObjectAsItsFile) {
  ASSERT_TRUE(PutString(*store_, "runs/r1/rejects.csv", "x,y\n").ok());
  const std::optional<std::string> root = store_->LocalRoot();
  if (!root) {
    EXPECT_FALSE(IsLocalFolder(*store_, scratch_));
    return;
  }
  const fs::path file = fs::path(*root) / "runs/r1/rejects.csv";
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "x,y\n");
  StatusOr<std::string> local = store_->LocalPath("runs/r1/rejects.csv");
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  EXPECT_EQ(*local, file.string());
  EXPECT_TRUE(IsLocalFolder(*store_, *root));
  EXPECT_TRUE(IsLocalFolder(*store_, *root + "/"));
  EXPECT_TRUE(IsLocalFolder(*store_, *root + "/runs/.."));
  EXPECT_FALSE(IsLocalFolder(*store_, *root + "/runs"));
}

// The local adapters; s3_store_test.cc compiles this file again with
// CBPIPE_OBJECT_STORE_CONTRACT_NO_LOCAL and instantiates it over S3.
#ifndef CBPIPE_OBJECT_STORE_CONTRACT_NO_LOCAL
INSTANTIATE_TEST_SUITE_P(
    Adapters, ObjectStoreContract,
    ::testing::Values(
        ObjectStoreFactory{"LocalFolder",
                           [](const std::string& scratch) {
                             return std::unique_ptr<ObjectStore>(
                                 new LocalFolderStore(scratch + "/objects"));
                           }},
        ObjectStoreFactory{"InMemory",
                           [](const std::string&) {
                             return std::unique_ptr<ObjectStore>(
                                 new InMemoryObjectStore());
                           }}),
    ObjectStoreContract::Name);
#endif

}  // namespace
}  // namespace cbpipe
