// Whether the HIP addon (splash_hip.node) may be loaded into this process, decided without calling
// into HIP. Loading the file registers its GPU code objects with the HIP runtime, and the runtime's
// first call can abort the whole process (hipErrorNoBinaryForGpu) when a GPU it sees has no code
// object in the file (an MI300X, gfx942, with a build for gfx940 only). So, in order:
//
//   1. the AMD GPUs here, from the kernel driver's topology (plain files, no library): none, no load;
//   2. the GPU targets the file holds, from its offload-bundle entry names (read as bytes);
//   3. every GPU covered: load; none covered: no load; some covered (the runtime may or may not be
//      limited to those by HIP_VISIBLE_DEVICES and friends): a child process loads the file first,
//      and only if it comes back with a device does this process load it.
//
// SPLASH_KFD_TOPOLOGY=<dir> reads the topology from <dir> instead of /sys (tests).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const DEFAULT_TOPOLOGY = '/sys/class/kfd/kfd/topology/nodes';

export interface HipProbe {
  /** Load the HIP addon into this process. */
  load: boolean;
  /** Why not; null when it may load. */
  reason: string | null;
  /** The AMD GPUs' targets (gfx names), one per GPU. */
  gpus: string[];
  /** The targets the file holds code objects for. */
  compiled: string[];
}

/** The gfx name of a KFD gfx_target_version (major * 10000 + minor * 100 + stepping): 90402 → gfx942. */
export function gfxName(version: number): string {
  const major = Math.floor(version / 10000);
  const minor = Math.floor(version / 100) % 100;
  const stepping = version % 100;
  return `gfx${major}${minor.toString(16)}${stepping.toString(16)}`;
}

/** HSA_OVERRIDE_GFX_VERSION ("9.4.2") as the gfx name every GPU then reports, or null. */
function overrideTarget(): string | null {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(process.env.HSA_OVERRIDE_GFX_VERSION ?? '');
  return m ? gfxName(Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3])) : null;
}

/** The gfx names of the GPU nodes of a KFD topology directory; [] when there is none. */
export function amdGpuTargets(topology = process.env.SPLASH_KFD_TOPOLOGY || DEFAULT_TOPOLOGY): string[] {
  let nodes: string[];
  try {
    nodes = fs.readdirSync(topology);
  } catch {
    return [];  // no amdgpu kernel driver (or not Linux)
  }
  const targets: string[] = [];
  for (const node of nodes.sort((a, b) => Number(a) - Number(b))) {
    let props: string;
    try {
      props = fs.readFileSync(path.join(topology, node, 'properties'), 'utf8');
    } catch {
      continue;
    }
    const m = /^gfx_target_version\s+(\d+)\s*$/m.exec(props);
    const version = m ? Number(m[1]) : 0;
    if (version > 0) targets.push(gfxName(version));  // CPU nodes report 0
  }
  const forced = overrideTarget();
  return forced === null ? targets : targets.map(() => forced);
}

/** The GPU targets of the HIP code objects in a binary (clang offload bundle entries). */
export function compiledHipTargets(file: string): string[] {
  const bytes = fs.readFileSync(file).toString('latin1');
  const found = new Set<string>();
  for (const m of bytes.matchAll(/hipv4-amdgcn-amd-amdhsa--(gfx[0-9a-f]+)/g)) found.add(m[1]);
  return [...found].sort();
}

/** Whether a binary links the HIP runtime (its dynamic section names libamdhip64). */
export function linksHipRuntime(file: string): boolean {
  try {
    return fs.readFileSync(file).includes('libamdhip64');
  } catch {
    return false;
  }
}

/** Loads `file` in a child Node process and asks it how many HIP devices it sees. */
function probeInChild(file: string): { failure: string | null } {
  const code = `const i = require(${JSON.stringify(file)}).info();` +
    'process.stdout.write(JSON.stringify({ devices: i.hip.deviceCount, error: i.hip.error }));';
  const r = spawnSync(process.execPath, ['-e', code], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
  });
  if (r.status !== 0) {
    const how = r.signal !== null ? `killed by ${r.signal}` : r.error ? r.error.message : `exit code ${r.status}`;
    return { failure: `the HIP runtime, tried in a child process, failed (${how}): ${r.stderr.trim().split('\n').pop() ?? ''}` };
  }
  try {
    const v = JSON.parse(r.stdout) as { devices: number; error: string | null };
    return { failure: v.devices > 0 ? null : v.error ?? 'the runtime reports 0 devices' };
  } catch {
    return { failure: `the child process's answer was not understood: ${r.stdout.slice(0, 200)}` };
  }
}

/** Decides whether the HIP addon at `file` may be loaded here (see the top of this file). */
export function probeHipAddon(file: string): HipProbe {
  const gpus = amdGpuTargets();
  if (gpus.length === 0) return { load: false, reason: 'no AMD GPU (no GPU node in the amdgpu driver\'s topology)', gpus, compiled: [] };
  let compiled: string[];
  try {
    compiled = compiledHipTargets(file);
  } catch (e) {
    return { load: false, reason: `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`, gpus, compiled: [] };
  }
  const covered = gpus.filter((g) => compiled.includes(g));
  const describe = `GPUs ${gpus.join(', ')}; code objects for ${compiled.join(', ') || 'none'}`;
  if (covered.length === gpus.length) return { load: true, reason: null, gpus, compiled };
  if (covered.length === 0) {
    return { load: false, reason: `no AMD GPU this build has code for (${describe}; rebuild with SPLASH_HIP_ARCHS)`, gpus, compiled };
  }
  const child = probeInChild(file);
  if (child.failure !== null) return { load: false, reason: `${describe}: ${child.failure}`, gpus, compiled };
  return { load: true, reason: null, gpus, compiled };
}
