# node-gyp fallback build. `npm install` runs node-gyp-build, which uses a prebuild when one matches
# and otherwise runs `node-gyp rebuild` (never cmake-js), so this file must build the addon alone.
# Same sources as CMakeLists.txt: every native/addon/*.cc and native/cpu/*.cc except no_gpu.cc, plus
# native/gpu/*.cu through nvcc when nvcc is on PATH and SPLASH_CUDA is not 0 (else no_gpu.cc).
# No HIP here: the HIP variant is a separate, optional binary built by CMake only.
# Warnings are errors only with SPLASH_WERROR=1 (CI), so a newer compiler on a user's machine
# cannot break their install.
{
  "variables": {
    "splash_cuda%": "<!(sh -c 'case \"${SPLASH_CUDA:-}\" in (0|off|OFF|false|FALSE|no|NO) echo 0;; (*) command -v nvcc >/dev/null 2>&1 && echo 1 || echo 0;; esac')",
    "splash_werror%": "<!(sh -c 'case \"${SPLASH_WERROR:-}\" in (1|on|ON|true|TRUE|yes|YES) echo 1;; (*) echo 0;; esac')",
    # The toolkit root as nvcc itself reports it (nvcc may be a wrapper script outside the toolkit).
    "cuda_root%": "<!(sh -c 'command -v nvcc >/dev/null 2>&1 && nvcc -v --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n \"s/^#. TOP=//p\" || true')",
    "splash_version": "<!(node -p \"require('./package.json').version\")",
  },
  "targets": [
    {
      "target_name": "splash",
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      "sources": [
        "<!@(node -p \"['addon','cpu'].flatMap(d=>require('fs').readdirSync('native/'+d).filter(f=>f.endsWith('.cc')&&f!=='no_gpu.cc').map(f=>'native/'+d+'/'+f)).join(' ')\")",
      ],
      "include_dirs": ["native/include"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "SPLASH_VERSION=\"<(splash_version)\"",
      ],
      "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "conditions": [
        ["splash_werror==1", {"cflags_cc": ["-Werror"]}],
        ["splash_cuda==1", {
          "sources": [
            "<!@(node -p \"require('fs').readdirSync('native/gpu').filter(f=>f.endsWith('.cu')).map(f=>'native/gpu/'+f).join(' ')\")",
          ],
          "rules": [
            {
              "rule_name": "nvcc",
              "extension": "cu",
              "inputs": ["<(RULE_INPUT_PATH)"],
              "outputs": ["<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"],
              "action": [
                "nvcc", "-std=c++17", "-O3",
                "-gencode=arch=compute_80,code=sm_80",
                "-gencode=arch=compute_86,code=sm_86",
                "-gencode=arch=compute_89,code=sm_89",
                "-gencode=arch=compute_90,code=[sm_90,compute_90]",
                "-Xcompiler=-fPIC,-fvisibility=hidden,-Wall,-Wextra",
                "<!@(sh -c 'case \"${SPLASH_WERROR:-}\" in (1|on|ON|true|TRUE|yes|YES) echo --Werror=all-warnings -Xcompiler=-Werror;; esac')",
                "-I<(module_root_dir)/native/include",
                "-c", "<(RULE_INPUT_PATH)", "-o", "<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o",
              ],
              "process_outputs_as_sources": 1,
              "message": "nvcc <(RULE_INPUT_PATH)",
            },
          ],
          # Static cudart, as in the CMake build: the addon loads on machines without a GPU driver.
          "libraries": ["<(cuda_root)/lib64/libcudart_static.a", "-ldl", "-lpthread", "-lrt"],
        }, {
          "sources": ["native/addon/no_gpu.cc"],
        }],
      ],
    },
  ],
}
