"""NVRTC, the CUDA runtime compiler, through ctypes (the nvidia-cuda-nvrtc wheel or the
system's library): compile CUDA C as CuPy does, and read a kernel's resources from ptxas."""

import glob
import importlib.util
import os
import re

# registers a device allots per block (every GPU since compute capability 3.0 ... 9.0):
# per warp, the thread's registers rounded up to 8, times 32 lanes
REGISTERS_PER_BLOCK = 65536


def parse_ptxas(log):
    """(registers, spill bytes (stores + loads), static shared bytes) from a ptxas -v log
    of one kernel."""
    registers = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", log))
    shared = re.search(r"(\d+) bytes smem", log)
    return registers, spills, int(shared.group(1)) if shared else 0


def find_nvrtc():
    """The NVRTC library of the nvidia-cuda-nvrtc wheel (or the system's); None if absent."""
    import ctypes

    spec = importlib.util.find_spec("nvidia")
    candidates = [p for d in (spec.submodule_search_locations if spec else [])
                  for p in sorted(glob.glob(os.path.join(d, "*", "lib", "libnvrtc.so*")), reverse=True)]
    for path in candidates + ["libnvrtc.so"]:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def nvrtc_compile(nvrtc, source, name_expression, options):
    """Compile with NVRTC to a cubin; (ok, log). CuPy compiles the same way: NVRTC with the
    caller's options, then -ftz=true and -arch (sm_XX: a cubin)."""
    import ctypes

    program = ctypes.c_void_p()
    nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"kernel.cu", 0, None, None)
    try:
        if name_expression:
            nvrtc.nvrtcAddNameExpression(program, name_expression.encode())
        encoded = [o.encode() for o in options]
        status = nvrtc.nvrtcCompileProgram(program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded))
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, log)
        return status == 0, log.value.decode(errors="replace")
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))


def registers_per_block(registers, threads):
    """Registers a block of `threads` threads takes at `registers` per thread (allocated per
    warp in units of 256)."""
    warps = -(-threads // 32)
    return warps * (-(-registers * 32 // 256) * 256)
