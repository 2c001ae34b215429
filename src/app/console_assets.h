// The operations console's files (docs/console.md), embedded in the binary
// so that `cbpipe serve` needs no files on disk and no CDN.
//
//   for (const EmbeddedAsset& a : ConsoleAssets()) {
//     if (a.path == "index.html") Serve(a.content_type, a.body);
//   }
//
// console_assets.cc is generated at build time by embed_assets.cmake from
// the console's sources (CBPIPE_CONSOLE_DIR, default console/src/: plain ES
// modules and CSS, served as written, no build step). The admin API serves
// asset "x/y.js" as /console/x/y.js and "index.html" as /console/
// (app/admin_api.h).
//
// Thread safety: the table is immutable static data; read it from any
// thread. Ownership: the views point into static storage, valid for the
// life of the process.
#pragma once

#include <span>
#include <string_view>

namespace cbpipe {

struct EmbeddedAsset {
  std::string_view path;          // relative, '/'-separated: "assets/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;          // the file's bytes
};

// Every embedded file, sorted by path; paths are unique.
std::span<const EmbeddedAsset> ConsoleAssets();

}  // namespace cbpipe
