#include "app/audit.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "common/sha256.h"

namespace cbpipe {

void WriteAudit(const AuditRecord& r, Logger& logger) {
  const std::string event = "audit." + r.action;
  const std::string msg = r.action + " " + r.outcome;
  LogContext context;
  context.run_id = r.run_id;
  context.destination = r.destination;
  logger.Write(r.outcome == "ok" ? LogLevel::kInfo : LogLevel::kWarn, context,
               event, msg,
               {{"actor", r.actor},
                {"via", r.via},
                {"origin", r.origin},
                {"dead_letter_id", r.dead_letter_id},
                {"count", r.count},
                {"outcome", r.outcome},
                {"error", r.error}});
}

std::string TokenActor(std::string_view token) {
  Sha256 sha;
  sha.Update(token.data(), token.size());
  StatusOr<std::string> hex = sha.FinishHex();
  return hex.ok() ? "token:" + hex->substr(0, 8) : "token:unknown";
}

std::string LocalActor(std::string* origin) {
  const uid_t uid = ::getuid();
  std::string name;
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found &&
      found->pw_name)
    name = found->pw_name;
  if (origin) {
    *origin =
        "uid=" + std::to_string(uid) + " pid=" + std::to_string(::getpid());
    const char* sudo_user = std::getenv("SUDO_USER");
    if (sudo_user && *sudo_user)
      *origin += " sudo_user=" + std::string(sudo_user);
  }
  return "user:" + (name.empty() ? std::to_string(uid) : name);
}

}  // namespace cbpipe
