// cbpipe export-asl: the Step Functions definition generated from the
// workflow definition compiled in (workflow/asl_export.h).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "app/commands.h"
#include "workflow/asl_export.h"
#include "workflow/definition.h"

namespace cbpipe {

int RunExportAsl(const std::string& out_path) {
  StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
  StatusOr<nlohmann::json> asl =
      def.ok() ? ExportAsl(*def, AslExportOptions{})
               : StatusOr<nlohmann::json>(def.status());
  if (!asl.ok()) {
    std::fprintf(stderr, "cbpipe export-asl: %s\n",
                 asl.status().ToString().c_str());
    return kExitUsage;
  }
  const std::string text = AslText(*asl);
  if (out_path.empty() || out_path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? kExitOk : kExitUsage;
  }
  std::FILE* out = std::fopen(out_path.c_str(), "wb");
  if (!out) {
    std::fprintf(stderr, "cbpipe export-asl: cannot write %s: %s\n",
                 out_path.c_str(), std::strerror(errno));
    return kExitUsage;
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), out) ==
                       text.size();
  if (std::fclose(out) != 0 || !written) {
    std::fprintf(stderr, "cbpipe export-asl: cannot write %s\n",
                 out_path.c_str());
    return kExitUsage;
  }
  return kExitOk;
}

}  // namespace cbpipe
