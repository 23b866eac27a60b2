# CMake toolchain for cross-compiling the addon to linux-arm64 on another Linux machine (see
# scripts/build-arm64.sh). SPLASH_CROSS_PREFIX overrides the compiler prefix (default: Debian's and
# Ubuntu's aarch64-linux-gnu- cross compilers).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(DEFINED ENV{SPLASH_CROSS_PREFIX})
  set(SPLASH_CROSS_PREFIX "$ENV{SPLASH_CROSS_PREFIX}")
else()
  set(SPLASH_CROSS_PREFIX aarch64-linux-gnu-)
endif()
set(CMAKE_C_COMPILER "${SPLASH_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${SPLASH_CROSS_PREFIX}g++")

# Libraries and headers come from the cross sysroot only; build tools from the host.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
