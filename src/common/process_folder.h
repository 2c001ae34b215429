// A process's private temporary folders: copies of objects a store makes
// for LocalPath ("cache"), private key files a secret store writes for
// libcurl ("secrets"). They hold card numbers and keys, so none may outlive
// its process for long.
//
//   CBPIPE_ASSIGN_OR_RETURN(dir_, MakeProcessFolder("cache", Describe()));
//   ...
//   RemoveProcessFolder(dir_);          // in the owner's destructor
//   RemoveProcessFoldersOfThisProcess();  // before std::_Exit
//
// A folder is <TMPDIR or /tmp>/cbpipe-<kind>-<pid namespace>-<pid>-<random>,
// mode 0700. A process killed with its owners (SIGKILL, out of memory, a
// Lambda timeout: the next invocation finds the same /tmp) never removes
// its own, so MakeProcessFolder and RemoveProcessFolder first remove the
// folders of ended processes (kill(pid, 0) says ESRCH) of the same kind,
// pid namespace and user: never another namespace's, whose pids mean
// nothing here, nor another user's, nor a symlink.
// Thread safety: every function from any thread.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// A new folder of this process; `what` names its owner in the error
// (kUnavailable when it cannot be made). `kind`: lowercase letters.
StatusOr<std::string> MakeProcessFolder(std::string_view kind,
                                        const std::string& what);
// Removes `dir` ("" does nothing) and the folders of its kind of ended
// processes beside it. Best effort.
void RemoveProcessFolder(const std::string& dir);
// The folders of `kind` in `tmp` of ended processes of this pid namespace,
// removed; returns how many. 0 when the namespace cannot be read.
int RemoveProcessFoldersOfEndedProcesses(const std::filesystem::path& tmp,
                                         std::string_view kind);
// For a process that ends without running destructors (std::_Exit, as
// `cbpipe serve` does): removes every folder of this process, of any kind,
// in the temporary folder, and those of ended processes. Whatever still
// reads them loses them, so call it only on the way out.
void RemoveProcessFoldersOfThisProcess();

}  // namespace cbpipe
