// One destination's options: where its files go, how the connection is made
// and how an upload behaves (deliver/deliverer.h, the transports). config/
// fills them from a [[destination]] table; docs/configuration.md describes
// each key. The routing fields (networks, file name template, layout) are
// read by output/ through its own OutputRoute (output/options.h), which
// config/ builds from these.
//
//   DestinationConfig d;
//   d.name = "visa";
//   d.url = "sftp://files.example.com/in";
//   d.private_key_ref = "file:/etc/cbpipe/id_ed25519";
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport,
//                           MakeTransport(d));  // deliver/deliverer.h
#pragma once

#include <string>
#include <vector>

#include "common/retry.h"
#include "domain/network.h"

namespace cbpipe {

enum class FtpsMode { kExplicit, kImplicit };
enum class OnConflict { kFail, kReplace, kRename };

struct DestinationConfig {
  std::string name;                // unique, [a-z0-9_-]
  std::vector<Network> networks;   // which records it receives
  std::string url;                 // sftp:// ftps:// ftp:// file://
  std::string file_name_template =
      "{network}_{date}_{input_id}_b{batch}_f{file}.csv";
  std::string layout = "";         // built-in or [layout.NAME]; default:
                                   // the first network's built-in layout
  // Connection (sftp/ftps/ftp).
  std::string username;            // or user@ in the URL
  std::string password_ref;        // secret reference, never the secret
  std::string private_key_ref;     // sftp: a secret reference to a key file
  std::string public_key_path;     // sftp: optional
  std::string known_hosts;         // sftp: known_hosts file
  std::string host_key_sha256;     // sftp: base64 SHA-256 fingerprint
  bool insecure_skip_host_key = false;
  std::string ca_file;             // ftps: CA bundle; default system store
  FtpsMode ftps_mode = FtpsMode::kExplicit;
  bool allow_insecure = false;     // required for ftp://
  bool active_mode = false;        // ftp/ftps: PORT instead of EPSV/PASV
  std::string temp_suffix = ".part";
  // The server refuses every request but upload and rename (a drop box):
  // no STAT, size or list is sent (docs/interop.md).
  bool write_only = false;
  // sftp: fsync@openssh.com before the rename, where the server offers it
  // (the bytes are on the server's disk before the final name appears).
  bool remote_fsync = true;
  OnConflict on_conflict = OnConflict::kFail;
  double connect_timeout_seconds = 15;
  double transfer_timeout_seconds = 600;
  double stall_timeout_seconds = 30;   // no progress for this long: abort
  RetryPolicy retry;
};

}  // namespace cbpipe
