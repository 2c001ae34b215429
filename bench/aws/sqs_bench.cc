// Messages per second through SqsQueue against an SQS endpoint (moto in
// bench/aws/sqs.sh): send, receive and delete N messages, one per call
// (what the `aws sqs` CLI loop does) and in batches of 10.
//
//   bench_sqs ENDPOINT N
//
// Prints "sqs single send/s X receive+delete/s Y" and "sqs batch ...".
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "queue/sqs_queue.h"

namespace cbpipe {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since)
      .count();
}

int Run(const std::string& endpoint, int n) {
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["sqs"] = endpoint;
  auto client = AwsClient::Create(
      options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<AwsClient> aws(std::move(*client));
  for (int batch : {1, kMaxBatchEntries}) {
    SqsQueueOptions create;
    create.create_if_missing = true;
    create.max_receive_count = 0;
    auto q = SqsQueue::Open(aws, "bench-" + std::to_string(batch), create);
    if (!q.ok()) {
      std::fprintf(stderr, "%s\n", q.status().ToString().c_str());
      return 1;
    }
    const std::string body(200, 'x');
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; i += batch) {
      std::vector<OutgoingMessage> out(batch);
      for (OutgoingMessage& m : out) m.body = body;
      auto sent = (*q)->SendBatch(out);
      if (!sent.ok()) {
        std::fprintf(stderr, "%s\n", sent.status().ToString().c_str());
        return 1;
      }
    }
    const double send_s = Seconds(start);
    start = std::chrono::steady_clock::now();
    int done = 0;
    while (done < n) {
      auto got = (*q)->Receive(batch, 60'000, 1000);
      if (!got.ok()) {
        std::fprintf(stderr, "%s\n", got.status().ToString().c_str());
        return 1;
      }
      if (got->empty()) break;
      std::vector<std::string> receipts;
      for (const Message& m : *got) receipts.push_back(m.receipt);
      auto deleted = (*q)->DeleteBatch(receipts);
      if (!deleted.ok()) {
        std::fprintf(stderr, "%s\n", deleted.status().ToString().c_str());
        return 1;
      }
      done += static_cast<int>(got->size());
    }
    const double receive_s = Seconds(start);
    std::printf("sqs %s messages %d send/s %.1f receive+delete/s %.1f\n",
                batch == 1 ? "single" : "batch10", done, n / send_s,
                done / receive_s);
  }
  return 0;
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_sqs ENDPOINT N\n");
    return 2;
  }
  return cbpipe::Run(argv[1], std::atoi(argv[2]));
}
