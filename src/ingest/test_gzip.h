// Gzip inputs for tests, made with zlib as the test runs: nothing large is
// stored in the repository, and a bomb is streamed, never held whole.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace cbpipe::testing {

// One gzip member holding `repeat` copies of `unit`, compressed at level 9
// while streamed through zlib a block at a time.
inline std::string GzipRepeated(const std::string& unit, uint64_t repeat) {
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) !=
      Z_OK)
    return "";
  std::string block;
  const uint64_t per_block =
      unit.empty() ? 1 : std::max<uint64_t>(1, (1u << 20) / unit.size());
  std::string out;
  char buf[1 << 16];
  uint64_t left = repeat;
  do {
    const uint64_t n = std::min(left, per_block);
    block.clear();
    for (uint64_t i = 0; i < n; ++i) block += unit;
    left -= n;
    zs.next_in = reinterpret_cast<Bytef*>(block.data());
    zs.avail_in = static_cast<uInt>(block.size());
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    int rc;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof(buf);
      rc = deflate(&zs, flush);
      out.append(buf, sizeof(buf) - zs.avail_out);
    } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
  } while (left > 0);
  deflateEnd(&zs);
  return out;
}

// Writes a gzip bomb to `path`: a member holding `head`, then members of
// `member_bytes` newlines (blank lines, which readers skip: the input holds
// no record at all however far it is read) until about `inflated_bytes`.
// The member is compressed once and written again and again, so an 11 GiB
// bomb is made in a moment and takes about 11 MB on disk.
inline bool WriteGzipBomb(const std::string& path, const std::string& head,
                          uint64_t inflated_bytes,
                          uint64_t member_bytes = 64ull << 20) {
  const std::string first = GzipRepeated(head, 1);
  const std::string member = GzipRepeated("\n", member_bytes);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(first.data(), 1, first.size(), f) == first.size();
  for (uint64_t done = head.size(); ok && done < inflated_bytes;
       done += member_bytes) {
    ok = std::fwrite(member.data(), 1, member.size(), f) == member.size();
  }
  return std::fclose(f) == 0 && ok;
}

}  // namespace cbpipe::testing
