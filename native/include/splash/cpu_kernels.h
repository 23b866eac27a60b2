// Entry points of the CPU kernels (native/cpu). The addon calls them off the event loop; the GPU test
// harness (native/tests) links them as its oracle. They trust the params: every size and pointer was
// checked by the caller against the real buffers.
#pragma once

#include "splash/params.h"

namespace splash {
namespace cpu {

// out (and lse when p.save_lse) from q, k, v over the forward schedule p.fwd.
void forward(const AttentionParams& p);

// dq, dk, dv from q, k, v, out, lse, dout: split (p.dq_sched then p.dkv_sched) or fused (p.fused_bwd).
void backward(const AttentionParams& p);

}  // namespace cpu
}  // namespace splash
