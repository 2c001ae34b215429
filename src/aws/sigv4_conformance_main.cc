// sigv4-conformance DIR: runs every SigV4 conformance case folder under DIR
// (see tests/data/aws-sigv4/README.md) against cbpipe's signer, header and
// query signing, and prints "PASS name" or "FAIL name: what differed".
// Exit 0 when every case passes, 1 on any failure, 2 on bad usage or when
// DIR holds no case.
#include <iostream>

#include "aws/sigv4_conformance.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: sigv4-conformance DIR\n";
    return 2;
  }
  auto cases = cbpipe::ListAwsConformanceCases(argv[1]);
  if (!cases.ok() || cases->empty()) {
    std::cerr << "sigv4-conformance: no case folder under " << argv[1] << "\n";
    return 2;
  }
  int failed = 0;
  for (const std::string& dir : *cases) {
    auto c = cbpipe::LoadAwsConformanceCase(dir);
    if (!c.ok()) {
      std::cout << "FAIL " << dir << ": " << c.status().ToString() << "\n";
      ++failed;
      continue;
    }
    std::vector<std::string> diffs = cbpipe::CheckAwsConformanceCase(*c);
    if (diffs.empty()) {
      std::cout << "PASS " << c->name << "\n";
      continue;
    }
    ++failed;
    std::cout << "FAIL " << c->name << ":";
    for (const std::string& diff : diffs) std::cout << " " << diff << ";";
    std::cout << "\n";
  }
  std::cout << (cases->size() - failed) << "/" << cases->size()
            << " cases pass (header and query signing)\n";
  return failed == 0 ? 0 : 1;
}
