# Cross build for arm64 (AWS Graviton) on an x86_64 Debian 12 machine:
#   cmake -S . -B build-lambda-arm64 -DCBPIPE_TESTS=OFF \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# scripts/package-lambda --arch arm64 does this. Needs the cross compilers
# and the :arm64 libraries (scripts/bootstrap-arm64). Libraries and CMake
# packages are looked up in Debian's multiarch folders for aarch64
# (/usr/lib/aarch64-linux-gnu); headers in /usr/include are shared with the
# native build (nlohmann-json, CLI11, Boost are headers only); programs
# (pkg-config, cmake -P for the embedded console) run natively.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_STRIP aarch64-linux-gnu-strip CACHE FILEPATH "")

# pkg-config sees only the aarch64 .pc files (and the arch-independent ones).
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Libraries never from the build machine's x86_64 folders: CMake searches
# /usr/lib/aarch64-linux-gnu for CMAKE_LIBRARY_ARCHITECTURE, and these keep
# it from falling back to anything it finds for the host elsewhere.
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu
    /usr/lib/x86_64-linux-gnu/cmake)

# simdjson: Debian's aarch64 config comes with libsimdjson-dev:arm64, which
# cannot be installed beside the amd64 one; see the file named here.
if(NOT EXISTS /usr/lib/aarch64-linux-gnu/cmake/simdjson/simdjson-config.cmake)
  set(simdjson_DIR "${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu")
endif()
