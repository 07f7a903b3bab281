// efgen_hls.h - the macros every efgen kernel header shares.
//
// HLS pragmas and loop labels reach Vitis HLS only: under g++ (C-simulation)
// `#pragma HLS` would trip -Wunknown-pragmas and labels -Wunused-label, and the project
// compiles with -Wall -Wextra -Werror. So:
//   EFGEN_PRAGMA(HLS PIPELINE II=1)   -> _Pragma("HLS PIPELINE II=1") under __SYNTHESIS__
//   EFGEN_HLS(PIPELINE II=1)          -> the same, with macro arguments expanded first
//   EFGEN_LABEL(name)                 -> `name:` under __SYNTHESIS__
//   EFGEN_ASSERT(x)                   -> assert(x) in C-simulation only
#ifndef EFGEN_HLS_H
#define EFGEN_HLS_H

#ifndef __SYNTHESIS__
#include <cassert>
#endif

#ifdef __SYNTHESIS__
#define EFGEN_PRAGMA(x) _Pragma(#x)
#define EFGEN_LABEL(name) name:
#define EFGEN_ASSERT(x)
#else
#define EFGEN_PRAGMA(x)
#define EFGEN_LABEL(name)
#define EFGEN_ASSERT(x) assert(x)
#endif

#define EFGEN_HLS(x) EFGEN_PRAGMA(HLS x)

#endif  // EFGEN_HLS_H
