// efgen_dataflow.h - stream-of-blocks channels and concurrent processes of a DATAFLOW
// region, for Vitis HLS and for C-simulation with g++.
//
// Under Vitis HLS (__SYNTHESIS__) this is hls::stream_of_blocks (hls_streamofblocks.h,
// UG1399 "Specifying Arrays as Stream-of-Blocks"): a ping-pong of two blocks between
// exactly one producer and one consumer process of a DATAFLOW region; the producer
// acquires a free block with a write_lock, the consumer a full one with a read_lock, and
// the lock's destructor releases it. The processes are plain function calls in the region.
//
// In C-simulation the same source runs with a model of those semantics:
//   efgen_sob<B, N>      N blocks of array type B (heap-allocated: blocks are large);
//   efgen_wlock<B> / efgen_rlock<B>  block until a block is free / full, release on scope exit;
//   EFGEN_REGION(group)              opens the region's process group;
//   EFGEN_PROCESS(group, call)       runs `call` as a concurrent process (a thread);
//   EFGEN_JOIN(group)                waits for every process of the region.
// Under synthesis EFGEN_REGION and EFGEN_JOIN are empty and EFGEN_PROCESS(g, call) is
// `call`: the region is exactly the canonical form.
// The processes of a region run concurrently, as in hardware, and every channel holds at
// most N blocks, so C-simulation needs the same buffering as the hardware (no unbounded
// queue) and a channel protocol that would deadlock in hardware deadlocks here too.
// Results do not depend on thread timing: each channel has one producer and one consumer
// and blocks are taken in FIFO order (a Kahn process network).
#ifndef EFGEN_DATAFLOW_H
#define EFGEN_DATAFLOW_H

#ifdef __SYNTHESIS__

#include "hls_streamofblocks.h"

template <class B, int N = 2>
using efgen_sob = hls::stream_of_blocks<B, N>;
template <class B>
using efgen_wlock = hls::write_lock<B>;
template <class B>
using efgen_rlock = hls::read_lock<B>;

// The region is the function body: process calls only, nothing to create or join.
#define EFGEN_REGION(group)
#define EFGEN_PROCESS(group, call) call
#define EFGEN_JOIN(group)

#else  // C-simulation

#include <condition_variable>
#include <mutex>
#include <thread>

// Internal linkage throughout (an unnamed namespace, no std::function/vector/unique_ptr
// instantiated on the block types): two C-simulation libraries built with different
// parameters in one process share no symbol.
namespace {

template <class B>
class efgen_sob_port {
 public:
  virtual B& acquire_write() = 0;
  virtual void release_write() = 0;
  virtual B& acquire_read() = 0;
  virtual void release_read() = 0;

 protected:
  ~efgen_sob_port() {}
};

template <class B, int N = 2>
class efgen_sob : public efgen_sob_port<B> {
 public:
  static_assert(N >= 2, "a stream of blocks holds at least two blocks");
  efgen_sob() : blocks_(new B[N]) {
    for (int i = 0; i < N; ++i) state_[i] = kFree;
  }
  ~efgen_sob() { delete[] blocks_; }
  efgen_sob(const efgen_sob&) = delete;
  efgen_sob& operator=(const efgen_sob&) = delete;

  B& acquire_write() override { return acquire(wr_, kFree, kWriting); }
  void release_write() override { release(wr_, kFull); }
  B& acquire_read() override { return acquire(rd_, kFull, kReading); }
  void release_read() override { release(rd_, kFree); }

 private:
  enum State { kFree, kWriting, kFull, kReading };
  B& acquire(int& slot, State want, State become) {
    std::unique_lock<std::mutex> lock(mu_);
    while (state_[slot] != want) cv_.wait(lock);
    state_[slot] = become;
    return blocks_[slot];
  }
  void release(int& slot, State become) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_[slot] = become;
      slot = (slot + 1) % N;
    }
    cv_.notify_all();
  }
  B* blocks_;
  State state_[N];
  int wr_ = 0, rd_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

template <class B>
class efgen_wlock {
 public:
  explicit efgen_wlock(efgen_sob_port<B>& s) : s_(s), blk_(s.acquire_write()) {}
  ~efgen_wlock() { s_.release_write(); }
  efgen_wlock(const efgen_wlock&) = delete;
  efgen_wlock& operator=(const efgen_wlock&) = delete;
  operator B&() { return blk_; }

 private:
  efgen_sob_port<B>& s_;
  B& blk_;
};

template <class B>
class efgen_rlock {
 public:
  explicit efgen_rlock(efgen_sob_port<B>& s) : s_(s), blk_(s.acquire_read()) {}
  ~efgen_rlock() { s_.release_read(); }
  efgen_rlock(const efgen_rlock&) = delete;
  efgen_rlock& operator=(const efgen_rlock&) = delete;
  operator B&() { return blk_; }

 private:
  efgen_sob_port<B>& s_;
  B& blk_;
};

// The processes of one DATAFLOW region; join() (also run by the destructor) waits for all.
class efgen_process_group {
 public:
  static constexpr int kMax = 8;
  efgen_process_group() = default;
  efgen_process_group(const efgen_process_group&) = delete;
  efgen_process_group& operator=(const efgen_process_group&) = delete;
  ~efgen_process_group() { join(); }
  template <class F>
  void spawn(F f) {
    if (n_ == kMax) {   // never in efgen's kernels: run inline rather than overflow
      f();
      return;
    }
    threads_[n_++] = std::thread(f);
  }
  void join() {
    for (int i = 0; i < n_; ++i) threads_[i].join();
    n_ = 0;
  }

 private:
  std::thread threads_[kMax];
  int n_ = 0;
};

}  // namespace

#define EFGEN_REGION(group) efgen_process_group group
#define EFGEN_PROCESS(group, call) (group).spawn([&] { call; })
#define EFGEN_JOIN(group) (group).join()

#endif  // __SYNTHESIS__

#endif  // EFGEN_DATAFLOW_H
