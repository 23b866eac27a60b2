// Version strings compiled into the addon. The build passes the package.json version as
// SPLASH_VERSION so that info().version always matches the JS package it ships in.
#pragma once

#ifndef SPLASH_VERSION
#error "SPLASH_VERSION must be defined by the build (CMakeLists.txt / binding.gyp read package.json)"
#endif

namespace splash {

inline constexpr const char kVersion[] = SPLASH_VERSION;

}  // namespace splash
