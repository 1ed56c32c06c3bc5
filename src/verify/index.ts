// Verification: the same Program on the real kernel and on the emulator, compared step by step.
// A step either agrees, differs (naming the fields), or is skipped with the reason: a step that
// one side could not run is never counted as agreement.

import * as os from 'node:os';
import { environmentWarnings, runOnKernel, type KernelRun, type KernelRunOptions } from '../kernel';
import type { Program, StepResult } from '../scenario/program';
import { stepToJson } from '../scenario/json';
import { simulate, type SimulationResult } from '../simulate';
import { thpDivergence, unprobe, withThpProbes } from './thp-probes';

export type Field = 'ret' | 'errno' | 'walk_end' | 'regions' | 'reached' | 'userfault' | 'hang';

export interface StepVerdict {
  step: number;
  op: string;
  status: 'agree' | 'differ' | 'skipped';
  /** differ: the fields that differ. */
  fields?: Field[];
  /** skipped: why; `side` says which side could not run it. */
  reason?: string;
  side?: 'kernel' | 'emulator';
  kernel?: StepResult;
  emulator?: StepResult;
}

export interface Verification {
  program: Program;
  /** undefined when the machine does not match the scenario's `system` (see `unfit`). */
  kernel?: KernelRun;
  emulator: SimulationResult;
  steps: StepVerdict[];
  /** Why this machine cannot reproduce the scenario (swap, THP mode, hugetlb pool). */
  unfit: string[];
}

export async function verifyProgram(program: Program, opts: KernelRunOptions = {}): Promise<Verification> {
  const emulator = simulate(program);
  const unfit = [...profileMismatch(program), ...environmentWarnings(program)];
  if (unfit.length) {
    const reason = unfit.join('; ');
    const steps = program.steps.map((s): StepVerdict => ({ step: s.index, op: s.op.op, status: 'skipped', side: 'kernel', reason }));
    return { program, emulator, steps, unfit };
  }
  // Both sides run the program with THP probes; the probes are then taken out again.
  const probed = withThpProbes(program);
  const kernelProbed = await runOnKernel(probed.program, opts);
  const divergence = thpDivergence(probed, kernelProbed.results, simulate(probed.program).results);
  const kernel = unprobe(
    {
      ...kernelProbed,
      notReached: kernelProbed.notReached.map((n) => probed.origin.get(n)?.step ?? n),
      unreproduced: kernelProbed.unreproduced.map((u) => ({ ...u, step: probed.origin.get(u.step)?.step ?? u.step })),
      harnessOverlaps: kernelProbed.harnessOverlaps
        .filter((o) => !probed.origin.get(o.step)?.probe)
        .map((o) => ({ ...o, step: probed.origin.get(o.step)?.step ?? o.step })),
      ...(kernelProbed.stopped && { stopped: { ...kernelProbed.stopped, step: probed.origin.get(kernelProbed.stopped.step)?.step ?? kernelProbed.stopped.step } }),
    },
    probed,
  );
  let steps = compareRuns(program, kernel, emulator);
  if (divergence) steps = markNondeterministic(steps, divergence);
  return { program, kernel, emulator, steps, unfit };
}

/** From the step where THPs diverged on, nothing is comparable: say so instead of "differ". */
function markNondeterministic(steps: StepVerdict[], d: { step: number; detail: string }): StepVerdict[] {
  return steps.map((s) => {
    if (s.step < d.step) return s;
    const reason = s.step === d.step ? `not reproducible: ${d.detail}` : `not reached: step ${d.step} was not reproducible`;
    return { ...s, status: 'skipped', side: 'kernel', reason, fields: undefined };
  });
}

/** The running kernel's release, as a profile name ("6.18.44" of "6.18.44-fc-v595"). */
export function runningKernel(): string {
  return os.release().match(/^\d+\.\d+(\.\d+)?/)?.[0] ?? os.release();
}

/** A scenario written for another kernel's semantics cannot be checked on this one. */
function profileMismatch(program: Program): string[] {
  const running = runningKernel();
  return program.kernel === running ? [] : [`the scenario describes kernel ${program.kernel}; this machine runs ${os.release()}`];
}

/** Compare the two runs of program, step by step, up to where both stopped. */
export function compareRuns(program: Program, kernel: KernelRun, emulator: SimulationResult): StepVerdict[] {
  const k = new Map(kernel.results.map((r) => [r.step, r]));
  const e = new Map(emulator.results.map((r) => [r.step, r]));
  const unreproduced = new Map(kernel.unreproduced.map((u) => [u.step, u]));
  const overlaps = new Map(kernel.harnessOverlaps.map((o) => [o.step, o]));
  const out: StepVerdict[] = [];
  let skipRest: Pick<StepVerdict, 'reason' | 'side'> | undefined;
  for (const step of program.steps) {
    const base = { step: step.index, op: step.op.op, kernel: k.get(step.index), emulator: e.get(step.index) };
    if (skipRest) {
      out.push({ ...base, status: 'skipped', ...skipRest });
      continue;
    }
    const u = unreproduced.get(step.index);
    if (u) {
      skipRest = { side: 'kernel', reason: `not reached: step ${u.step} could not be reproduced on the kernel` };
      out.push({ ...base, status: 'skipped', side: 'kernel', reason: `${u.reason}: ${u.detail}` });
      continue;
    }
    if (emulator.stopped?.notModelled && emulator.stopped.step === step.index) {
      skipRest = { side: 'emulator', reason: `not reached: step ${step.index} is not modelled by the emulator` };
      out.push({ ...base, status: 'skipped', side: 'emulator', reason: `not modelled: ${emulator.stopped.message}` });
      continue;
    }
    if (!base.kernel && !base.emulator) break; // both stopped before: nothing more to compare
    const o = overlaps.get(step.index);
    if (o) {
      const what = o.mappings.map((m) => m.name || 'anonymous').join(', ');
      out.push({ ...base, status: 'skipped', side: 'kernel', reason: `the scan covers the harness's own mappings (${what})` });
      continue;
    }
    const fields = differences(base.kernel, base.emulator);
    out.push(fields.length ? { ...base, status: 'differ', fields } : { ...base, status: 'agree' });
  }
  return out;
}

/** The fields in which two results of the same step differ. */
export function differences(k: StepResult | undefined, e: StepResult | undefined): Field[] {
  if (!k || !e) return ['reached'];
  const a = stepToJson(k);
  const b = stepToJson(e);
  const out: Field[] = [];
  if (a.ret !== b.ret) out.push('ret');
  if (a.errno !== b.errno) out.push('errno');
  if (a.walk_end !== b.walk_end) out.push('walk_end');
  if (JSON.stringify(a.regions) !== JSON.stringify(b.regions)) out.push('regions');
  // A step that blocked in handle_userfault(): the queued message (address and flags).
  if (JSON.stringify(a.userfault) !== JSON.stringify(b.userfault)) out.push('userfault');
  // A step the kernel never returns from: what it does for ever, and the byte a touch retries.
  if (JSON.stringify(a.hang) !== JSON.stringify(b.hang)) out.push('hang');
  return out;
}

export function summarize(steps: StepVerdict[]): { agree: number; differ: number; skipped: number } {
  return {
    agree: steps.filter((s) => s.status === 'agree').length,
    differ: steps.filter((s) => s.status === 'differ').length,
    skipped: steps.filter((s) => s.status === 'skipped').length,
  };
}
