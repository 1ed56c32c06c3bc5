// The reference against the real kernel: run a Program with runOnKernel() and compare every step
// the kernel could reproduce. This is how the reference itself is checked (the engine is then
// checked against the reference).

import { runOnKernel, type KernelRun } from '../../src/kernel';
import type { Program } from '../../src/scenario/program';
import { referenceRun, type RefRun } from './index';
import { showResult } from './compare';

export interface KernelComparison {
  kernel: KernelRun;
  ref: RefRun;
  difference?: string;
  /** Steps compared (the kernel reproduced them and the scan did not see the harness). */
  compared: number;
}

export async function compareWithKernel(program: Program): Promise<KernelComparison> {
  // A wait in a killable (not interruptible) sleep, such as MADV_POPULATE_* faulting into a
  // userfaultfd or an EVENT_REMOVE/EVENT_UNMAP event, is not seen by the harness's SIGALRM
  // watchdog: only the run timeout ends it.
  const kernel = await runOnKernel(program, { stepTimeoutMs: 1000, timeoutMs: 20_000 });
  const ref = referenceRun(program);
  const out: KernelComparison = { kernel, ref, compared: 0 };
  const overlaps = new Set(kernel.harnessOverlaps.map((o) => o.step));
  const refByStep = new Map(ref.results.map((r) => [r.step, r]));
  for (const k of kernel.results) {
    if (overlaps.has(k.step)) continue;
    if (k.userfault || k.hang) continue; // the step never returned: compared as how both ended

    const r = refByStep.get(k.step);
    if (showResult(k) !== showResult(r)) {
      out.difference = `step ${k.step}:\n  kernel:    ${showResult(k)}\n  reference: ${showResult(r)}${r ? '' : ` (reference stopped: ${ref.stopped?.reason} ${ref.stopped?.message})`}`;
      return out;
    }
    out.compared++;
  }
  // How both ended: a hang on the kernel is a userfault wait in the reference.
  const u = kernel.unreproduced[0];
  if (u && u.reason !== 'hang' && u.reason !== 'timeout') return out; // unsupported range: no verdict
  const kStop = kernel.stopped?.step;
  const rStop = ref.stopped?.step;
  const kHang = u !== undefined || kernel.stopped?.reason === 'userfault' || kernel.stopped?.reason === 'livelock';
  const rHang = ref.stopped?.reason === 'userfault';
  if (kStop !== rStop || kHang !== rHang) {
    out.difference = `stopped: kernel at ${kStop ?? 'the end'} (${kernel.stopped?.reason ?? ''}), reference at ${rStop ?? 'the end'} (${ref.stopped?.reason ?? ''} ${ref.stopped?.message ?? ''})`;
  }
  return out;
}
