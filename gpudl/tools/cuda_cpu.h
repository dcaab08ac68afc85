// CUDA-on-CPU shim: the CUDA C of gpudl's CuPy kernels compiles with g++ behind this
// header and runs every thread of a block. A block's threads are ucontext fibers on one
// OS thread; __syncthreads() switches to the block scheduler, which resumes the waiting
// threads only once every live thread of the block has arrived (a real barrier).
// The launcher runs ONE block per call (cuda_cpu.py runs each block alone from the same
// starting memory, to find races between blocks); `__shared__` (a function-local static)
// is poisoned by cuda_cpu.py before each block.
// Sanitizers: the code is compiled with -fsanitize=bounds, and the handlers below end the
// block with a message (a shared or local array indexed out of its bounds); a segmentation
// fault (a read or write into the guard pages around the device buffers) ends it too.
// Not emulated (the kernels use none): warp shuffles and votes, atomics, dynamic
// (extern) shared memory, cooperative groups; warps do not run in lockstep here, so
// code that relies on implicit warp synchronism fails, as it may on Volta and later.
#pragma once
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
    ucontext_t scheduler;
    unsigned int current = 0;
    std::function<void()> body;
};

static Block* running_block = nullptr;
static char failure[512];  // why the block ended early
static sigjmp_buf block_exit;  // where a failure returns to

// End the running block: the launcher returns 1 with `failure` set.
[[noreturn]] inline void fail() { siglongjmp(block_exit, 1); }

static void on_fault(int signal, siginfo_t* info, void*) {
    std::snprintf(failure, sizeof failure, "FAULT %p %s", info->si_addr,
                  signal == SIGSEGV ? "segmentation fault" : "bus error");
    fail();
}

static void fiber_entry() {
    running_block->body();
    running_block->states[running_block->current] = DONE;
    // returning resumes uc_link: the scheduler
}

inline void set_thread(unsigned int t) {
    threadIdx = dim3(t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y));
}

const std::size_t STACK_SIZE = 64 * 1024;
static std::vector<std::unique_ptr<char[]>> stacks;  // one per thread, kept between calls

// Run block `index` of the grid, every thread a fiber; reverse: resume the threads in
// the opposite order (a result that depends on it is a race inside the block).
inline int run_block(dim3 grid, dim3 block_dim, dim3 index, bool reverse, std::function<void()> body) {
    gridDim = grid;
    blockDim = block_dim;
    blockIdx = index;
    unsigned int threads = block_dim.x * block_dim.y * block_dim.z;
    Block block;
    block.body = std::move(body);
    block.contexts.resize(threads);
    block.states.resize(threads);
    while (stacks.size() < threads) stacks.emplace_back(new char[STACK_SIZE]);
    // a fault ends the block with a message (the handler runs on the faulting fiber's stack)
    struct sigaction handler = {}, saved_segv, saved_bus;
    handler.sa_sigaction = on_fault;
    handler.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &handler, &saved_segv);
    sigaction(SIGBUS, &handler, &saved_bus);
    failure[0] = 0;
    int status = 0;
    running_block = &block;
    if (sigsetjmp(block_exit, 1) == 0) {
        for (unsigned int t = 0; t < threads; ++t) {
            getcontext(&block.contexts[t]);
            block.contexts[t].uc_stack.ss_sp = stacks[t].get();
            block.contexts[t].uc_stack.ss_size = STACK_SIZE;
            block.contexts[t].uc_link = &block.scheduler;
            makecontext(&block.contexts[t], fiber_entry, 0);
            block.states[t] = RUNNING;
        }
        // rounds: run every live thread until it waits at a barrier or finishes; a
        // barrier opens when no thread is still running before it
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
    } else {
        status = 1;
    }
    running_block = nullptr;
    sigaction(SIGSEGV, &saved_segv, nullptr);
    sigaction(SIGBUS, &saved_bus, nullptr);
    return status;
}

}  // namespace cuda_cpu

__device__ inline void __syncthreads() {
    cuda_cpu::Block* block = cuda_cpu::running_block;
    unsigned int t = block->current;
    block->states[t] = cuda_cpu::AT_BARRIER;
    swapcontext(&block->contexts[t], &block->scheduler);
}

// -fsanitize=bounds calls these on an array index out of its array's bounds (shared
// arrays, local arrays, every dimension of a 2-D array); the data layout is UBSan's.
extern "C" {
struct cuda_cpu_source_location { const char* file; unsigned int line, column; };
struct cuda_cpu_type { unsigned short kind, info; char name[1]; };
struct cuda_cpu_bounds_data { cuda_cpu_source_location location; const cuda_cpu_type* array; const cuda_cpu_type* index; };

__attribute__((visibility("default"))) void __ubsan_handle_out_of_bounds(cuda_cpu_bounds_data* data, intptr_t index) {
    std::snprintf(cuda_cpu::failure, sizeof cuda_cpu::failure,
                  "BOUNDS index %lld out of bounds for type %s at line %u (thread %u of block %u)",
                  (long long)index, data->array->name, data->location.line,
                  threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z),
                  blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
    cuda_cpu::fail();
}

__attribute__((visibility("default"))) void __ubsan_handle_out_of_bounds_abort(cuda_cpu_bounds_data* data,
                                                                               intptr_t index) {
    __ubsan_handle_out_of_bounds(data, index);
}
}

namespace cuda_cpu {

// cudaLaunchKernel's convention: args[i] points at the i-th argument's value.
template <typename... A, std::size_t... I>
void call_with(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
}

// dims: grid x, y, z, block x, y, z, then the index of the block to run
template <typename... A>
int launch_block(void (*kernel)(A...), const unsigned int* dims, int reverse, void** args, char* message,
                 std::size_t message_size) {
    int status = run_block(dim3(dims[0], dims[1], dims[2]), dim3(dims[3], dims[4], dims[5]),
                           dim3(dims[6], dims[7], dims[8]), reverse != 0,
                           [=] { call_with(kernel, args, std::index_sequence_for<A...>{}); });
    std::snprintf(message, message_size, "%s", failure);
    return status;
}

}  // namespace cuda_cpu

#define CUDA_CPU_LAUNCHER(symbol, kernel)                                                               \
    extern "C" __attribute__((visibility("default"))) int symbol(const unsigned int* dims, int reverse, void** args, char* message,           \
                          std::size_t message_size) {                                                  \
        return cuda_cpu::launch_block(kernel, dims, reverse, args, message, message_size);             \
    }
