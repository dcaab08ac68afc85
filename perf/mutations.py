"""The mutation catalogue: realistic GPU bugs planted one at a time in a scratch copy of the
kernels, each followed by `gpudl selftest --quick --family F` (F: the mutated kernel module);
which check caught it, naming which kernel.

    python perf/mutations.py                    # every mutation (10 to 60 s each on 2 cores)
    python perf/mutations.py sgd-store-garbage  # the ones named
    python perf/mutations.py --json perf/mutations.json

The scratch copy is the committed tree (git archive HEAD: gpudl/, kernels/ as gpudl/kernels,
frontend/ as gpudl/frontend) in a temporary folder that the selftest imports first (it
runs from there), so the working tree is never touched. The unchanged copy is run first:
it must pass, or no catch means anything. A mutation is caught when the selftest exits
non-zero; it names the kernel when a failed row's kernel contains the mutation's `names`.
Prints one row per mutation; the last line is the headline (caught, and caught naming the
kernel, out of the planted bugs).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Mutation(NamedTuple):
    name: str
    kind: str  # the class of bug (issue 18's list)
    file: str  # under kernels/
    edits: tuple  # ((old text, new text), ...): each old text must occur exactly once
    names: str  # a failed row's kernel must contain this to name the kernel
    family: str = ""  # the selftest family to run (default: the module `file`)


MUTATIONS = (
    Mutation("sgd-store-garbage", "in-place update", "optimizer_updates.py",
             (("tl.store(param_ptr + offsets, param - lr * grad, mask=mask)",
               "tl.store(param_ptr + offsets, param * 0 + 12345.0, mask=mask)"),), "triton sgd"),
    Mutation("cupy-sgd-store-garbage", "in-place update", "optimizer_updates.py",
             (('"param -= lr * grad;"', '"param = (T)12345;"'),), "cupy sgd"),
    Mutation("batchnorm-running-var-not-updated", "in-place update", "batchnorm.py",
             (("tl.store(running_var_ptr + cols, running_var * keep + blend * var, mask=col_ok)",
               "tl.store(running_var_ptr + cols, running_var, mask=col_ok)"),), "triton batchnorm forward_train"),
    Mutation("batchnorm-one-pass-variance", "reduction", "batchnorm.py",
             (("x = tl.where(mask, x - shift[None, :], 0.0)", "x = tl.where(mask, x, 0.0)"),
              ("centered = tl.where(mask, x - tile_mean[None, :], 0.0)\n"
               "            tile_m2 = tl.sum(centered * centered, axis=0)",
               "tile_m2 = tl.sum(x * x, axis=0) - n_b * tile_mean * tile_mean"),
              ("mean += tl.load(x_ptr + cols, mask=col_ok, other=0.0)  # undo the shift by row 0", "")),
             "triton batchnorm forward_train"),
    Mutation("cupy-batchnorm-one-pass-variance", "reduction", "batchnorm.py",
             (("T shift = x[c];", "T shift = 0;"),
              ("        T delta = v - mean;\n        mean += delta / (T)(i - start + 1);\n"
               "        m2 += delta * (v - mean);", "        mean += v; m2 += v * v;"),
              ("    part_mean[split * C + c] = mean;",
               "    { T n = (T)(end - start); mean /= n; m2 -= n * mean * mean; }\n"
               "    part_mean[split * C + c] = mean;")), "cupy batchnorm forward_train"),
    Mutation("softmax-no-max-subtraction", "precision", "softmax_cross_entropy.py",
             (("row_max = tl.load(z_row)", "row_max = tl.zeros((), dtype)"),
              ("new_max = tl.maximum(row_max, tl.max(z, axis=0))", "new_max = tl.zeros((), dtype)")),
             "triton softmax"),
    Mutation("cupy-softmax-no-max-subtraction", "precision", "softmax_cross_entropy.py",
             (("T r_new = max(r, r2);", "T r_new = 0;"), ("T r = z_row[0], s = 0", "T r = 0, s = 0")),
             "cupy softmax"),
    Mutation("adam-float64-in-float32", "precision", "optimizer_updates.py",
             (("        grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)\n        dtype = param.dtype\n"
               "        row = _step_row(table_ptr, step_counter_ptr, table_rows, 3)",
               "        grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0).to(tl.float32)\n"
               "        param = param.to(tl.float32)\n        dtype = tl.float32\n"
               "        row = _step_row(table_ptr, step_counter_ptr, table_rows, 3)"),), "triton adam"),
    Mutation("cupy-adam-update-in-float32", "precision", "optimizer_updates.py",
             (('"param -= step_size * (m / (sqrt(v) / sqrt_bias_correction2 + epsilon));"',
               '"param -= (float)(step_size * (m / (sqrt(v) / sqrt_bias_correction2 + epsilon)));"'),),
             "cupy adam"),
    Mutation("dropout-load-mask-removed", "mask", "dropout.py",
             (("src = tl.load(src_ptr + offsets, mask=mask, other=0.0)", "src = tl.load(src_ptr + offsets)"),),
             "triton dropout"),
    Mutation("sgd-load-mask-removed", "mask", "optimizer_updates.py",
             (("        grad = tl.load(grad_ptr + offsets, mask=mask)\n"
               "        lr = tl.load(_step_row(table_ptr, step_counter_ptr, table_rows, 1)).to(param.dtype)\n"
               "        tl.store(param_ptr + offsets, param - lr * grad, mask=mask)",
               "        grad = tl.load(grad_ptr + offsets)\n"
               "        lr = tl.load(_step_row(table_ptr, step_counter_ptr, table_rows, 1)).to(param.dtype)\n"
               "        tl.store(param_ptr + offsets, param - lr * grad, mask=mask)"),), "triton sgd"),
    Mutation("cupy-batchnorm-transposed-stride", "stride", "batchnorm.py",
             (("        T v = x[i * C + c] - shift;", "        T v = x[c * N + i] - shift;"),),
             "cupy batchnorm forward_train"),
    Mutation("triton-batchnorm-row-stride", "stride", "batchnorm.py",
             (("x = tl.load(x_ptr + rows[:, None].to(tl.int64) * C + cols[None, :], mask=mask, other=0.0)\n"
               "            x = tl.where(mask, x - shift[None, :], 0.0)",
               "x = tl.load(x_ptr + rows[:, None].to(tl.int64) * BLOCK_C + cols[None, :], mask=mask, other=0.0)\n"
               "            x = tl.where(mask, x - shift[None, :], 0.0)"),), "triton batchnorm forward_train"),
    Mutation("cupy-softmax-missing-barrier", "barrier", "softmax_cross_entropy.py",
             (("            shared[2][threadIdx.x] = sy; shared[3][threadIdx.x] = q;\n        }\n"
               "        __syncthreads();\n    }",
               "            shared[2][threadIdx.x] = sy; shared[3][threadIdx.x] = q;\n        }\n    }"),),
             "cupy softmax"),
    Mutation("cupy-softmax-in-place-barrier-removed", "barrier", "softmax_cross_entropy.py",
             (("    __syncthreads();  // z_row[label] is read before anyone may overwrite it in place\n", ""),),
             "cupy softmax_cross_entropy"),
    Mutation("dropout-keep-strictly-above-threshold", "constant", "dropout.py",
             (("keep = word >= tl.full((), threshold, tl.uint32)", "keep = word > tl.full((), threshold, tl.uint32)"),),
             "triton dropout"),
    Mutation("cupy-dropout-grid-short", "grid", "dropout.py",
             (("kernel((_util.cdiv(_util.cdiv(offset % 4 + n, 4), CUPY_THREADS),), (CUPY_THREADS,),",
               "kernel((_util.cdiv(offset % 4 + n, 4) // CUPY_THREADS,), (CUPY_THREADS,),"),), "cupy dropout"),
    Mutation("triton-dropout-grid-short", "grid", "dropout.py",
             (("_dropout_kernel[(_util.cdiv(offset % 4 + n, 4 * BLOCK),)](",
               "_dropout_kernel[(max(1, (offset % 4 + n) // (4 * BLOCK)),)]("),),
             "triton dropout"),
    Mutation("cupy-dropout-element-offset", "offset", "dropout.py",
             (("long long first = counter * 4 - offset % 4;", "long long first = counter * 4 - offset % 4 + 1;"),),
             "cupy dropout"),
    Mutation("triton-dropout-offset-lead-dropped", "offset", "dropout.py",
             (("offsets = counters[:, None] * 4 + lane - offset % 4", "offsets = counters[:, None] * 4 + lane"),),
             "triton dropout"),
    Mutation("cupy-dropout-counter-not-offset", "offset", "dropout.py",
             (("philox_counter = (unsigned long long)(offset / 4 + counter);",
               "philox_counter = (unsigned long long)counter;"),), "cupy dropout"),
    Mutation("adam-bias-correction-dropped", "precision", "optimizer_updates.py",
             (("denom = _util.divide_ieee(_util.sqrt_ieee(v), sqrt_bias_correction2) + tl.full((), epsilon, dtype)",
               "denom = _util.sqrt_ieee(v) + tl.full((), epsilon, dtype)"),), "triton adam"),
    Mutation("step-table-row-without-modulo", "offset", "optimizer_updates.py",
             (("return table_ptr + (tl.load(step_counter_ptr) % table_rows) * COLUMNS",
               "return table_ptr + tl.load(step_counter_ptr) * COLUMNS"),), "triton"),
    Mutation("cupy-batchnorm-backward-relu-gate-dropped", "mask", "batchnorm.py",
             (("        if (relu && !(g * x_hat + b > (T)0)) d = 0;\n", ""),), "cupy batchnorm backward"),
    Mutation("softmax-int32-row-offset", "offset", "softmax_cross_entropy.py",
             (("row = tl.program_id(0).to(tl.int64)\n        z_row", "row = tl.program_id(0)\n        z_row"),),
             "triton softmax"),
    Mutation("cupy-softmax-shared-array-too-small", "shared memory", "softmax_cross_entropy.py",
             (("__shared__ T shared[4][256];", "__shared__ T shared[4][128];"),), "cupy softmax"),
    Mutation("cupy-dropout-2048-threads-per-block", "launch limits", "dropout.py",
             (("CUPY_THREADS = 256  # threads per block", "CUPY_THREADS = 2048  # threads per block"),), "cupy dropout"),
    # issue 18's second pass: bugs only the sanitizers, the GPU's sizes, the overflow and
    # the stream checks can see (each gives the right numbers in a plain CPU run)
    Mutation("cupy-batchnorm-backward-partials-race", "race between blocks", "batchnorm.py",
             (("    part_dbeta[split * C + c] = sum_dy;\n    part_dgamma[split * C + c] = sum_dy_x_hat;",
               "    part_dbeta[c] += sum_dy;\n    part_dgamma[c] += sum_dy_x_hat;"),
              ("    part_dgamma = cupy.empty((splits, C), x.dtype)\n    part_dbeta = cupy.empty((splits, C), x.dtype)",
               "    part_dgamma = cupy.zeros((splits, C), x.dtype)\n    part_dbeta = cupy.zeros((splits, C), x.dtype)")),
             "cupy batchnorm_backward"),
    Mutation("cupy-softmax-shared-state-only-for-live-threads", "shared memory", "softmax_cross_entropy.py",
             (("    shared[0][threadIdx.x] = r; shared[1][threadIdx.x] = s;\n"
               "    shared[2][threadIdx.x] = sy; shared[3][threadIdx.x] = q;\n    __syncthreads();\n    for",
               "    if (threadIdx.x < C) {\n    shared[0][threadIdx.x] = r; shared[1][threadIdx.x] = s;\n"
               "    shared[2][threadIdx.x] = sy; shared[3][threadIdx.x] = q; }\n    __syncthreads();\n    for"),),
             "cupy softmax"),
    Mutation("cupy-dropout-load-hoisted-above-bounds-check", "mask", "dropout.py",
             (("        long long i = first + lane;\n        if (i < n) {\n            T v = src[i];",
               "        long long i = first + lane;\n        T v = src[i];\n        if (i < n) {"),),
             "cupy dropout"),
    Mutation("cupy-dropout-bound-off-by-one", "mask", "dropout.py",
             (("        long long i = first + lane;\n        if (i < n) {",
               "        long long i = first + lane;\n        if (i <= n) {"),), "cupy dropout"),
    Mutation("sgd-store-mask-removed", "mask", "optimizer_updates.py",
             (("        tl.store(param_ptr + offsets, param - lr * grad, mask=mask)",
               "        tl.store(param_ptr + offsets, param - lr * grad)"),), "triton sgd"),
    Mutation("dropout-program-stride-tied-to-interpreter-block", "block-size constant", "dropout.py",
             (("counters = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
               "counters = tl.program_id(0).to(tl.int64) * 256 + tl.arange(0, BLOCK)"),), "triton dropout"),
    Mutation("dropout-int32-counters", "offset", "dropout.py",
             (("counters = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
               "counters = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)"),), "triton dropout"),
    Mutation("adam-int32-offsets", "offset", "optimizer_updates.py",
             (("                     one_minus_beta2: tl.float64, epsilon: tl.float64, BLOCK: tl.constexpr):\n"
               "        offsets = tl.program_id(0).to(tl.int64) * BLOCK",
               "                     one_minus_beta2: tl.float64, epsilon: tl.float64, BLOCK: tl.constexpr):\n"
               "        offsets = tl.program_id(0) * BLOCK"),), "triton optimizer_updates"),
    Mutation("batchnorm-normalize-int32-offsets", "offset", "batchnorm.py",
             (("        offsets = rows[:, None].to(tl.int64) * C + cols[None, :]\n"
               "        x = tl.load(x_ptr + offsets, mask=mask, other=0.0)\n        y = (x - mean",
               "        offsets = rows[:, None] * C + cols[None, :]\n"
               "        x = tl.load(x_ptr + offsets, mask=mask, other=0.0)\n        y = (x - mean"),),
             "triton batchnorm"),
    Mutation("dropout-launch-off-cupy-stream", "stream", "dropout.py",
             (("    with _util.launch_stream(src):", "    with _util._NoStream():"),), "triton dropout"),
    Mutation("softmax-launch-off-cupy-stream", "stream", "softmax_cross_entropy.py",
             (("    with _util.launch_stream(logits):", "    with _util._NoStream():"),), "triton softmax"),
    Mutation("cupy-batchnorm-grid-y-past-65535", "launch limits", "batchnorm.py",
             (("    kernel((col_blocks, splits), (threads,), (x, part_mean, part_m2,",
               "    kernel((col_blocks, splits * 70000), (threads,), (x, part_mean, part_m2,"),),
             "cupy batchnorm_forward_train"),
    Mutation("triton-batchnorm-backward-partials-race", "race between blocks", "batchnorm.py",
             (("        out = split * C + cols\n"
               "        tl.store(part_dbeta_ptr + out, tl.sum(sum_dy, axis=0), mask=col_ok)\n"
               "        tl.store(part_dgamma_ptr + out, tl.sum(sum_dy_x_hat, axis=0), mask=col_ok)",
               "        out = cols\n"
               "        tl.store(part_dbeta_ptr + out, tl.load(part_dbeta_ptr + out, mask=col_ok) + tl.sum(sum_dy, axis=0),"
               " mask=col_ok)\n"
               "        tl.store(part_dgamma_ptr + out, tl.load(part_dgamma_ptr + out, mask=col_ok)"
               " + tl.sum(sum_dy_x_hat, axis=0), mask=col_ok)"),
              ("    part_dgamma = xp.empty((splits, C), x.dtype)\n    part_dbeta = xp.empty((splits, C), x.dtype)\n"
               "    dgamma = xp.empty(C, x.dtype) if dgamma is None",
               "    part_dgamma = xp.zeros((splits, C), x.dtype)\n    part_dbeta = xp.zeros((splits, C), x.dtype)\n"
               "    dgamma = xp.empty(C, x.dtype) if dgamma is None")),
             "triton batchnorm_backward"),
    # 32-bit indices in the CUDA C: right below 2**31 elements, wrong past it
    Mutation("cupy-softmax-int32-row-start", "offset", "softmax_cross_entropy.py",
             (("    const T* z_row = z + row * C;\n    T* out_row = out + row * C;",
               "    const int row_start = row * C;\n    const T* z_row = z + row_start;\n"
               "    T* out_row = out + row_start;"),), "cupy softmax_cross_entropy"),
    Mutation("cupy-dropout-int32-first-element", "offset", "dropout.py",
             (("    long long first = counter * 4 - offset % 4;", "    int first = counter * 4 - offset % 4;"),),
             "cupy dropout"),
    Mutation("cupy-batchnorm-partials-int32-index", "offset", "batchnorm.py",
             (("        T v = x[i * C + c] - shift;", "        const int at = i * C + c;\n        T v = x[at] - shift;"),),
             "cupy batchnorm"),
    Mutation("cupy-elementwise-int32-loop-index", "offset", "_triton_util.py",
             (('f"    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < _n;\\n"\n'
               '                f"         i += (long long)blockDim.x * gridDim.x) {{\\n"',
               'f"    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < _n;\\n"\n'
               '                f"         i += blockDim.x * gridDim.x) {{\\n"'),),
             "cupy optimizer_updates", family="optimizer_updates"),
)


def scratch_tree(directory):
    """The committed package as it installs (gpudl/, gpudl/kernels, gpudl/frontend) under
    `directory`; returns the folder of its kernels."""
    archive = os.path.join(directory, "head.tar")
    subprocess.run(["git", "-C", ROOT, "archive", "-o", archive, "HEAD", "gpudl", "kernels", "frontend"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(os.path.join(directory, "src"), filter="data")
    shutil.move(os.path.join(directory, "src", "gpudl"), os.path.join(directory, "gpudl"))
    shutil.move(os.path.join(directory, "src", "kernels"), os.path.join(directory, "gpudl", "kernels"))
    shutil.move(os.path.join(directory, "src", "frontend"), os.path.join(directory, "gpudl", "frontend"))
    return os.path.join(directory, "gpudl", "kernels")


def run_selftest(directory, family=None):
    """`gpudl selftest --quick [--family F]` importing the scratch copy: (exit status, failed
    rows, seconds)."""
    rows_path = os.path.join(directory, "rows.json")
    if os.path.exists(rows_path):
        os.remove(rows_path)
    env = dict(os.environ, PYTHONPATH=directory)
    env.pop("TRITON_INTERPRET", None)
    start = time.perf_counter()
    command = [sys.executable, "-m", "gpudl.tools.cli", "selftest", "--quick", "--json", rows_path]
    done = subprocess.run(command + (["--family", family] if family else []),
                          cwd=directory, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rows = json.load(open(rows_path)) if os.path.exists(rows_path) else []
    failed = [row for row in rows if row["result"] == "FAIL"]
    if not rows:
        failed = [{"kernel": "-", "case": "-", "measure": done.stderr.strip()[-300:]}]
    return done.returncode, failed, seconds


def apply(kernels_dir, mutation):
    """Plant `mutation` in the scratch copy; returns (path, its original text)."""
    path = os.path.join(kernels_dir, mutation.file)
    original = text = open(path).read()
    for old, new in mutation.edits:
        if text.count(old) != 1:
            raise SystemExit(f"mutation {mutation.name}: its text occurs {text.count(old)} times in {mutation.file}")
        text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)
    return path, original


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unchanged copy's run (when another run at this commit just passed it)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    results = []
    with tempfile.TemporaryDirectory(prefix="gpudl-mutations-") as directory:
        kernels_dir = scratch_tree(directory)
        if not args.no_baseline:
            status, failed, seconds = run_selftest(directory)
            if status != 0:
                raise SystemExit(f"the unchanged copy fails gpudl selftest --quick: {failed[:3]}")
            print(f"unchanged tree: selftest --quick passed in {seconds:.0f}s")
        print(f"{'mutation':40} {'class':16} {'caught':7} {'names it':9} {'s':>4}  failed rows (kernels)")
        for mutation in chosen:
            path, original = apply(kernels_dir, mutation)
            # a kernel module is one family: its sections are the ones the edit can change
            status, failed, seconds = run_selftest(directory, mutation.family or mutation.file[:-len(".py")])
            with open(path, "w") as f:  # the scratch copy's own text: HEAD may have moved meanwhile
                f.write(original)
            kernels = sorted({row["kernel"] for row in failed})
            named = any(mutation.names in kernel for kernel in kernels)
            result = {"mutation": mutation.name, "class": mutation.kind, "file": f"kernels/{mutation.file}",
                      "caught": status != 0, "names_kernel": status != 0 and named, "seconds": round(seconds),
                      "failed_rows": len(failed), "failed_kernels": kernels,
                      "first_failure": failed[0]["measure"][:300] if failed else ""}
            results.append(result)
            print(f"{mutation.name:40} {mutation.kind:16} {'yes' if result['caught'] else 'NO':7} "
                  f"{'yes' if result['names_kernel'] else 'no':9} {seconds:4.0f}  "
                  f"{len(failed)}: {', '.join(kernels)[:120]}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    caught = sum(r["caught"] for r in results)
    named = sum(r["names_kernel"] for r in results)
    print(f"gpudl selftest --quick caught {caught} of {len(results)} planted bugs, {named} naming the kernel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
