// CUDA-on-CPU shim: the CUDA C of gpudl's CuPy kernels compiles with g++ behind this
// header and runs every thread of every block. A block's threads are ucontext fibers on
// one OS thread; __syncthreads() switches to the block scheduler, which resumes the
// waiting threads only once every live thread of the block has arrived (a real barrier).
// Blocks run one after another, so `__shared__` (a function-local static) is per block.
// Not emulated (the kernels use none): warp shuffles and votes, atomics, dynamic
// (extern) shared memory, cooperative groups; warps do not run in lockstep here, so
// code that relies on implicit warp synchronism fails, as it may on Volta and later.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <functional>
#include <memory>
#include <utility>
#include <vector>
#include <ucontext.h>

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

// one OS thread runs a launch: these are the running fiber's coordinates
static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict

using std::exp;
using std::log;
using std::sqrt;
using std::min;
using std::max;
using std::nan;

__device__ inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}

namespace cuda_cpu {

enum State { RUNNING, AT_BARRIER, DONE };

struct Block {
    std::vector<ucontext_t> contexts;
    std::vector<State> states;
    std::vector<std::unique_ptr<char[]>> stacks;
    ucontext_t scheduler;
    unsigned int current = 0;
    std::function<void()> body;
};

static Block* running_block = nullptr;

static void fiber_entry() {
    running_block->body();
    running_block->states[running_block->current] = DONE;
    // returning resumes uc_link: the scheduler
}

inline void set_thread(unsigned int t) {
    threadIdx = dim3(t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y));
}

// Run the grid: every block in turn, every thread of a block as a fiber.
inline void run_grid(dim3 grid, dim3 block_dim, std::function<void()> body) {
    gridDim = grid;
    blockDim = block_dim;
    unsigned int threads = block_dim.x * block_dim.y * block_dim.z;
    Block block;
    block.body = std::move(body);
    block.contexts.resize(threads);
    block.states.resize(threads);
    const std::size_t stack_size = 64 * 1024;
    for (unsigned int t = 0; t < threads; ++t) block.stacks.emplace_back(new char[stack_size]);
    running_block = &block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
    for (unsigned int bx = 0; bx < grid.x; ++bx) {
        blockIdx = dim3(bx, by, bz);
        for (unsigned int t = 0; t < threads; ++t) {
            getcontext(&block.contexts[t]);
            block.contexts[t].uc_stack.ss_sp = block.stacks[t].get();
            block.contexts[t].uc_stack.ss_size = stack_size;
            block.contexts[t].uc_link = &block.scheduler;
            makecontext(&block.contexts[t], fiber_entry, 0);
            block.states[t] = RUNNING;
        }
        // rounds: run every live thread until it waits at a barrier or finishes; a
        // barrier opens when no thread is still running before it. Odd blocks run their
        // threads in reverse order, so a race that a missing barrier leaves open gives
        // different results in neighbouring blocks.
        bool reverse = (bx + grid.x * (by + grid.y * bz)) % 2 == 1;
        for (;;) {
            bool any_waiting = false;
            for (unsigned int k = 0; k < threads; ++k) {
                unsigned int t = reverse ? threads - 1 - k : k;
                if (block.states[t] == DONE) continue;
                block.states[t] = RUNNING;
                block.current = t;
                set_thread(t);
                swapcontext(&block.scheduler, &block.contexts[t]);
                any_waiting |= block.states[t] == AT_BARRIER;
            }
            if (!any_waiting) break;
        }
    }
    running_block = nullptr;
}

}  // namespace cuda_cpu

__device__ inline void __syncthreads() {
    cuda_cpu::Block* block = cuda_cpu::running_block;
    unsigned int t = block->current;
    block->states[t] = cuda_cpu::AT_BARRIER;
    swapcontext(&block->contexts[t], &block->scheduler);
}

namespace cuda_cpu {

// cudaLaunchKernel's convention: args[i] points at the i-th argument's value.
template <typename... A, std::size_t... I>
void call_with(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
}

template <typename... A>
void launch(void (*kernel)(A...), unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
            unsigned int by, unsigned int bz, void** args) {
    run_grid(dim3(gx, gy, gz), dim3(bx, by, bz),
             [=] { call_with(kernel, args, std::index_sequence_for<A...>{}); });
}

}  // namespace cuda_cpu

#define CUDA_CPU_LAUNCHER(symbol, kernel)                                                       \
    extern "C" void symbol(unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,  \
                           unsigned int by, unsigned int bz, void** args) {                     \
        cuda_cpu::launch(kernel, gx, gy, gz, bx, by, bz, args);                                 \
    }
