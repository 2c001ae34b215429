# simdjson for the arm64 cross build (cmake/aarch64-linux-gnu.cmake points
# find_package(simdjson) here when there is no aarch64 config of Debian's).
# Debian 12's libsimdjson-dev is not Multi-Arch: same: its :arm64 package
# would remove the amd64 one that the native build needs. What it adds for
# aarch64 is only this target; the header (/usr/include/simdjson.h, one
# amalgamated file for every architecture) comes from the amd64 package and
# the library from libsimdjson14:arm64 (Multi-Arch: same), both of the same
# Debian version. The target's settings are those of Debian's config.
find_library(SIMDJSON_AARCH64_LIBRARY NAMES libsimdjson.so.14
  PATHS /usr/lib/aarch64-linux-gnu NO_DEFAULT_PATH)
if(NOT SIMDJSON_AARCH64_LIBRARY OR NOT EXISTS /usr/include/simdjson.h)
  set(simdjson_FOUND FALSE)
  set(simdjson_NOT_FOUND_MESSAGE "needs libsimdjson14:arm64 and libsimdjson-dev "
      "(scripts/bootstrap-arm64, scripts/bootstrap)")
  return()
endif()
if(NOT TARGET simdjson::simdjson)
  add_library(simdjson::simdjson SHARED IMPORTED)
  set_target_properties(simdjson::simdjson PROPERTIES
    IMPORTED_LOCATION "${SIMDJSON_AARCH64_LIBRARY}"
    IMPORTED_SONAME libsimdjson.so.14
    INTERFACE_COMPILE_DEFINITIONS SIMDJSON_THREADS_ENABLED=1)
endif()
set(simdjson_FOUND TRUE)
