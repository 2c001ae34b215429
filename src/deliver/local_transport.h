// file:// destinations: a local folder standing in for a card company's
// server (development, demos, and a mounted share).
//
// Upload writes the whole file and fsyncs it; Rename without `replace` uses
// renameat2(RENAME_NOREPLACE) so an existing file is never overwritten, then
// fsyncs the folder so the new name survives a power cut.
#pragma once

#include <memory>
#include <string>

#include "deliver/transport.h"

namespace cbpipe {

class LocalFolderTransport : public Transport {
 public:
  // `folder` is created (with parents) on first use when missing.
  explicit LocalFolderTransport(std::string folder);

  Status Upload(const std::string& local_path,
                const std::string& remote_name) override;
  Status Rename(const std::string& from, const std::string& to,
                bool replace) override;
  StatusOr<std::optional<uint64_t>> RemoteSize(
      const std::string& remote_name) override;
  Status Remove(const std::string& remote_name) override;
  std::string Describe() const override { return "file://" + folder_; }

  // A local destination can prove an existing file identical without
  // trusting the ledger alone.
  StatusOr<std::optional<std::string>> RemoteSha256(
      const std::string& remote_name) override;

 private:
  Status EnsureFolder();
  std::string PathOf(const std::string& remote_name) const;

  std::string folder_;
};

// The folder of a file:// URL: what follows "file://", as written
// ("file:///srv/out" -> "/srv/out"). Config load accepts only absolute
// paths without "." or ".." segments (config.cc, CheckFileUrl).
std::string FolderFromFileUrl(const std::string& url);

// SHA-256 of a local file as lower-case hex.
StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace cbpipe
