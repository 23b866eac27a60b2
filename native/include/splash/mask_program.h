// The postfix mask program (MaskOp in params.h; lib/mask.ts compiles it): instruction widths,
// the one well-formedness check, and a plain host evaluator. The CPU kernels, the GPU planner and the
// addon's schedule check all read programs through this header, so a malformed program is rejected
// by the same rule everywhere.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "splash/params.h"

namespace splash {

// Words an instruction occupies (opcode + arguments), 0 for an unknown opcode.
inline int64_t mask_instruction_width(int32_t op) {
  switch (static_cast<MaskOp>(op)) {
    case MaskOp::Full: return 1;
    case MaskOp::Causal: return 2;
    case MaskOp::Local: return 6;
    case MaskOp::Chunked: return 2;
    case MaskOp::And: return 1;
    case MaskOp::Or: return 1;
  }
  return 0;
}

// Primitives push one value; And / Or pop two and push one.
inline bool mask_op_is_primitive(int32_t op) {
  return op != static_cast<int32_t>(MaskOp::And) && op != static_cast<int32_t>(MaskOp::Or);
}

// The stack depth a program needs, or -1 with *error (when given) saying what is wrong: an unknown
// opcode, a truncated instruction, a non-positive chunk size, a stack underflow, or not exactly one
// result. An empty program has depth 0.
inline int64_t mask_program_depth(const int32_t* program, int64_t length, std::string* error = nullptr) {
  auto bad = [error](const std::string& what) {
    if (error != nullptr) *error = "mask program: " + what;
    return int64_t{-1};
  };
  int64_t sp = 0, depth = 0;
  for (int64_t pc = 0; pc < length;) {
    const int32_t op = program[pc];
    const int64_t width = mask_instruction_width(op);
    if (width == 0) return bad("unknown opcode " + std::to_string(op) + " at " + std::to_string(pc));
    if (pc + width > length) return bad("truncated instruction at " + std::to_string(pc));
    if (op == static_cast<int32_t>(MaskOp::Chunked) && program[pc + 1] <= 0) {
      return bad("chunk size must be positive, got " + std::to_string(program[pc + 1]));
    }
    if (mask_op_is_primitive(op)) {
      depth = std::max(depth, ++sp);
    } else {
      if (sp < 2) return bad("stack underflow at " + std::to_string(pc));
      --sp;
    }
    pc += width;
  }
  if (length > 0 && sp != 1) return bad("leaves " + std::to_string(sp) + " values instead of 1");
  return depth;
}

// The program's value at one (q, kv) position. Assumes a program mask_program_depth accepted.
inline bool eval_mask_program(const int32_t* program, int64_t length, int64_t q, int64_t kv) {
  std::vector<uint8_t> st;
  for (int64_t pc = 0; pc < length; pc += mask_instruction_width(program[pc])) {
    const int32_t* ins = program + pc;
    switch (static_cast<MaskOp>(ins[0])) {
      case MaskOp::Full: st.push_back(1); break;
      case MaskOp::Causal: st.push_back(q + ins[1] >= kv); break;
      case MaskOp::Local: {
        const int64_t x = q + ins[5];
        st.push_back((ins[1] == 0 || x - ins[2] <= kv) && (ins[3] == 0 || x + ins[4] >= kv));
        break;
      }
      case MaskOp::Chunked: {
        const int64_t c = ins[1];
        st.push_back(q - q % c == kv - kv % c && q >= kv);
        break;
      }
      case MaskOp::And:
      case MaskOp::Or: {
        const uint8_t b = st.back();
        st.pop_back();
        st.back() = static_cast<MaskOp>(ins[0]) == MaskOp::And ? (st.back() & b) : (st.back() | b);
        break;
      }
    }
  }
  return !st.empty() && st.back() != 0;
}

}  // namespace splash
