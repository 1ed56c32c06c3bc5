// Runs a Program on the simulated process: each step as the system call it names.

import { NotModelled, StepTooLarge } from './errors';
import { UserfaultBlocked } from './mm/userfaultfd';
import { HANG_TEXT, KernelHang } from './mm/hang';
import { Process } from './process';
import { profileNamed } from './profiles';
import type { Op, Program, Step, StepResult } from './scenario/program';
import type { ErrnoName } from './uapi';

/** A step that failed without `may_fail`, or that cannot be simulated: the scenario stops. */
export interface StepFailure {
  step: number;
  message: string;
  /** The emulator lacks these semantics (as opposed to the scenario's own system call failing). */
  notModelled: boolean;
  /**
   * The step blocked in handle_userfault() (its result carries the `userfault` message): a kernel
   * result, after which nothing runs, since the thread never returns.
   */
  userfault?: boolean;
  /** The step never returns because the kernel loops or deadlocks (its result carries `hang`). */
  hang?: boolean;
}

export interface SimulationResult {
  kernel: string;
  results: StepResult[];
  stopped?: StepFailure;
  /** The simulated process as the scenario left it (for state dumps). */
  process?: Process;
}

export function simulate(program: Program): SimulationResult {
  const profile = profileNamed(program.kernel);
  if (!profile) throw new Error(`unknown kernel profile ${program.kernel}`);
  const results: StepResult[] = [];
  let proc: Process;
  try {
    proc = new Process(profile, program.system);
  } catch (e) {
    if (e instanceof NotModelled) return { kernel: profile.name, results, stopped: { step: 0, message: e.message, notModelled: true } };
    throw e;
  }
  for (const step of program.steps) {
    let result: StepResult;
    try {
      result = execute(proc, step);
    } catch (e) {
      if (e instanceof UserfaultBlocked) {
        results.push(blockedResult(step, e));
        return { kernel: profile.name, results, process: proc, stopped: { step: step.index, message: blockedMessage(step, e), notModelled: false, userfault: true } };
      }
      if (e instanceof KernelHang) {
        results.push(hangResult(step, e));
        return { kernel: profile.name, results, process: proc, stopped: { step: step.index, message: hangMessage(step, e), notModelled: false, hang: true } };
      }
      if (e instanceof StepTooLarge) {
        return { kernel: profile.name, results, process: proc, stopped: { step: step.index, message: `${step.op.op}: ${e.message}`, notModelled: false } };
      }
      if (!(e instanceof NotModelled)) throw e;
      return { kernel: profile.name, results, process: proc, stopped: { step: step.index, message: `${step.op.op}: ${e.message}`, notModelled: true } };
    }
    results.push(result);
    if (result.errno && !tolerates(step, result.errno)) {
      return {
        kernel: profile.name,
        results,
        process: proc,
        stopped: { step: step.index, message: `${step.op.op} failed with ${result.errno} (add may_fail: true to make it a result)`, notModelled: false },
      };
    }
  }
  return { kernel: profile.name, results, process: proc };
}

/** The result of a step whose fault sleeps in handle_userfault(): ret -1, no errno, the message. */
function blockedResult(step: Step, e: UserfaultBlocked): StepResult {
  if (!e.msg) throw new Error(`step ${step.index}: a userfault without its message (the fault loop must complete it)`);
  return { step: step.index, op: step.op.op, ret: -1n, errno: null, userfault: { address: e.msg.address, flags: [...e.msg.flags] } };
}

function blockedMessage(step: Step, e: UserfaultBlocked): string {
  const m = e.msg!;
  // The same words as the kernel harness's export-c output (replay.c, report_userfault()).
  return (
    `${step.op.op} blocks in handle_userfault(): userfaultfd message PAGEFAULT address 0x${m.address.toString(16)} ` +
    `flags ${m.flags.join('|') || '0'}, and the scenario has no reader; nothing after it runs`
  );
}

/** The result of a step the kernel never returns from: ret -1, no errno, why (and the byte touched). */
function hangResult(step: Step, e: KernelHang): StepResult {
  return {
    step: step.index,
    op: step.op.op,
    ret: -1n,
    errno: null,
    hang: { why: e.why, ...(e.address !== undefined && { address: BigInt(e.address) }) },
  };
}

function hangMessage(step: Step, e: KernelHang): string {
  const at = e.address !== undefined ? ` at 0x${e.address.toString(16)}` : '';
  return `${step.op.op} never returns (${e.why}${at}): ${HANG_TEXT[e.why]}; nothing after it runs (${e.detail})`;
}

/** A scan's errno is always a result; other steps fail unless may_fail or an expected errno. */
function tolerates(step: Step, errno: ErrnoName): boolean {
  return step.op.op === 'pagemap_scan' || step.mayFail || step.expect?.errno === errno;
}

function execute(proc: Process, step: Step): StepResult {
  const op = step.op;
  if (op.op === 'pagemap_scan') {
    const r = proc.pagemapScan(op.arg);
    return {
      step: step.index,
      op: op.op,
      ret: BigInt(r.ret),
      errno: r.errno,
      walk_end: r.walkEnd === null ? null : BigInt(r.walkEnd),
      regions: r.regions.map((g) => ({ start: BigInt(g.start), end: BigInt(g.end), categories: g.categories })),
    };
  }
  const errno = syscall(proc, op, step.mayFail);
  return { step: step.index, op: op.op, ret: errno ? -1n : 0n, errno };
}

function syscall(proc: Process, op: Exclude<Op, { op: 'pagemap_scan' }>, mayFail: boolean): ErrnoName | null {
  switch (op.op) {
    case 'mmap':
      return proc.mmap(op.addr, op.size, op.kind, op.prot);
    case 'munmap':
      return proc.munmap(op.addr, op.size);
    case 'mprotect':
      return proc.mprotect(op.addr, op.size, op.prot);
    case 'madvise':
      return proc.madvise(op.addr, op.size, op.advice);
    case 'read':
    case 'write':
      return proc.touch(op.addr, op.size, op.stride, op.op === 'write', mayFail);
    case 'uffd_open':
      return proc.uffdOpen(op.features);
    case 'uffd_close':
      return proc.uffdClose();
    case 'uffd_register':
      return proc.uffdRegister(op.addr, op.size, op.mode);
    case 'uffd_unregister':
      return proc.uffdUnregister(op.addr, op.size);
    case 'uffd_writeprotect':
      return proc.uffdWriteprotect(op.addr, op.size, op.wp);
    case 'clear_refs':
      return proc.clearRefs(op.value);
  }
}
