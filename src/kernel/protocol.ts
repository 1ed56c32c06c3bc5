// The line protocol between the TypeScript side and the C harness (replay.c), both directions.
//
// To the harness (stdin), one step per line, whitespace-separated, numbers in hex with a 0x prefix:
//
//   <op> <step> <may_fail> <args...>
//   mmap              STEP MAYFAIL ADDR SIZE KIND PROT        (KIND as in the scenario: anon, ...)
//   munmap            STEP MAYFAIL ADDR SIZE
//   mprotect          STEP MAYFAIL ADDR SIZE PROT
//   madvise           STEP MAYFAIL ADDR SIZE ADVICE           (the MADV_* number)
//   read | write      STEP MAYFAIL ADDR SIZE STRIDE
//   uffd_open         STEP MAYFAIL FEATURES
//   uffd_close        STEP MAYFAIL
//   uffd_register     STEP MAYFAIL ADDR SIZE MODE
//   uffd_unregister   STEP MAYFAIL ADDR SIZE
//   uffd_writeprotect STEP MAYFAIL ADDR SIZE WP               (0 or 1)
//   clear_refs        STEP MAYFAIL VALUE
//   pagemap_scan      STEP MAYFAIL SIZE FLAGS START END WALK_END VEC VEC_LEN MAX_PAGES
//                                  CATEGORY_INVERTED CATEGORY_MASK CATEGORY_ANYOF_MASK RETURN_MASK
//
// From the harness (stdout), one JSON object per line: first {"harness":{...}}, then one line per
// step that ran, then {"end":...}. See the header comment of replay.c. A step that blocked on
// userfaultfd is a result: {"step":N,...,"ret":-1,"errno":null,"userfault":{"address":"0x..",
// "flags":["WRITE","WP"]}}, then {"end":"stopped","step":N,"reason":"userfault"}. A step the kernel
// loops in for ever (a livelock the harness recognised) is a result too: {"step":N,...,"ret":-1,
// "errno":null,"hang":{"why":"fault-loop","address":"0x..","evidence":"..."}} (address for a touch
// only), then {"end":"stopped","step":N,"reason":"livelock"}. A "hang" that is a string
// ("blocked" | "busy") is a step the harness gave up on: not reproducible.

import { ERRNO, type ErrnoName } from '../uapi';
import { HANG_WHYS, type HangWhy } from '../mm/hang';
import { ADVICES, MEMORY_KINDS, type OpName, type Step, type StepResult } from '../scenario/program';

const hex = (v: bigint | number): string => '0x' + BigInt(v).toString(16);

/** One protocol line for a step. */
export function encodeStep(step: Step): string {
  const op = step.op;
  const head = [op.op, hex(step.index), step.mayFail ? '1' : '0'];
  let args: string[];
  switch (op.op) {
    case 'mmap':
      if (!(MEMORY_KINDS as readonly string[]).includes(op.kind)) {
        throw new Error(`step ${step.index}: unknown mapping kind ${op.kind}`);
      }
      args = [hex(op.addr), hex(op.size), op.kind, hex(op.prot)];
      break;
    case 'munmap':
    case 'uffd_unregister':
      args = [hex(op.addr), hex(op.size)];
      break;
    case 'mprotect':
      args = [hex(op.addr), hex(op.size), hex(op.prot)];
      break;
    case 'madvise':
      args = [hex(op.addr), hex(op.size), hex(ADVICES[op.advice])];
      break;
    case 'read':
    case 'write':
      args = [hex(op.addr), hex(op.size), hex(op.stride)];
      break;
    case 'uffd_open':
      args = [hex(op.features)];
      break;
    case 'uffd_close':
      args = [];
      break;
    case 'uffd_register':
      args = [hex(op.addr), hex(op.size), hex(op.mode)];
      break;
    case 'uffd_writeprotect':
      args = [hex(op.addr), hex(op.size), op.wp ? '1' : '0'];
      break;
    case 'clear_refs':
      args = [hex(op.value)];
      break;
    case 'pagemap_scan': {
      const a = op.arg;
      args = [
        a.size,
        a.flags,
        a.start,
        a.end,
        a.walk_end,
        a.vec,
        a.vec_len,
        a.max_pages,
        a.category_inverted,
        a.category_mask,
        a.category_anyof_mask,
        a.return_mask,
      ].map(hex);
      break;
    }
  }
  return [...head, ...args].join(' ');
}

/** The whole protocol input for a list of steps. */
export function encodeSteps(steps: readonly Step[]): string {
  return steps.map((s) => encodeStep(s) + '\n').join('');
}

/** One of the harness's own mappings, from its /proc/self/maps at start. */
export interface HarnessMapping {
  start: bigint;
  end: bigint;
  /** The pathname column of /proc/self/maps (`[stack]`, a file, `[anonymous]`). */
  name: string;
}

/** The harness's first line: what it probed, and its own memory. */
export interface HarnessInfo {
  pid: number;
  /** `uname -r` */
  kernel: string;
  machine: string;
  pageSize: number;
  /** "ok", or the errno name of a trivial PAGEMAP_SCAN call (ENOTTY: no such ioctl). */
  pagemapScan: string;
  /** "ok", or the errno name of userfaultfd() / UFFDIO_API. */
  userfaultfd: string;
  /** UFFD_FEATURE_* bits the kernel offers (UFFDIO_API with features = 0). */
  uffdFeatures: bigint;
  /** "ok", or the errno of mapping the scan output array at VEC_ADDR. */
  vec: string;
  /** A step blocked (using no CPU) this long is a hang. */
  stepTimeoutMs: number;
  /** A step running this long in all is a hang. */
  stepLimitMs: number;
  maps: HarnessMapping[];
}

/**
 * Why a run stopped; `userfault`: a step blocked in handle_userfault(); `livelock`: the kernel
 * loops for ever in a step (both results, see StepResult). `hang`: a step stuck for a reason the
 * harness could not tell (not reproducible).
 */
export type StopReason = 'failed' | 'hang' | 'unsupported' | 'crash' | 'timeout' | 'userfault' | 'livelock';

/** A step whose effect on the real kernel could not be observed. */
export interface Unreproduced {
  step: number;
  op: OpName;
  reason: 'hang' | 'unsupported' | 'crash' | 'timeout';
  /** Human-readable explanation. */
  detail: string;
}

export interface KernelRun {
  harness: HarnessInfo;
  /** One result per step that ran, in order (unreproduced steps are not included). */
  results: StepResult[];
  /** 1-based indices of the steps that never ran because the run stopped earlier. */
  notReached: number[];
  /** The step the run could not reproduce (a hang, an unsupported kind, a crash), if any. */
  unreproduced: Unreproduced[];
  /**
   * Scans that walked over the harness's own mappings (its code, stack, the output array at
   * VEC_ADDR): their results include memory the scenario did not map.
   */
  harnessOverlaps: { step: number; mappings: HarnessMapping[] }[];
  /** Set when the run ended before its last step. */
  stopped?: { step: number; reason: StopReason };
  /** Mismatches between the scenario's assumptions and this machine; errno names it cannot type. */
  warnings: string[];
  /** Whatever the harness wrote to stderr. */
  stderr: string;
}

/** How the harness process ended. */
export interface Termination {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

const KNOWN_ERRNOS = new Set<string>([...Object.keys(ERRNO), 'SIGSEGV', 'SIGBUS']);

interface RawStep {
  step: number;
  op: OpName;
  ret: number;
  errno: string | null;
  walk_end?: string | null;
  regions?: { start: string; end: string; categories: number }[];
  /**
   * "blocked": no CPU used for timeout_ms; "busy": running for timeout_ms in all (not
   * reproducible). An object: a loop the harness recognised, the step's result (see the top).
   */
  hang?: 'blocked' | 'busy' | { why: string; address?: string; evidence?: string };
  timeout_ms?: number;
  unsupported?: string;
  fault_addr?: string;
  /** The step blocked in handle_userfault(): the UFFD_EVENT_PAGEFAULT message the harness read. */
  userfault?: { address: string; flags: string[] };
}

interface RawEnd {
  end: 'complete' | 'stopped' | 'environment' | 'protocol-error';
  step?: number;
  reason?: string;
  line?: number;
}

interface RawHello {
  pid: number;
  kernel: string;
  machine: string;
  page_size: number;
  vec: string;
  pagemap_scan: string;
  userfaultfd: string;
  uffd_features: string;
  step_timeout_ms: number;
  step_limit_ms: number;
  maps: { start: string; end: string; name: string }[];
}

export function parseHello(line: string): HarnessInfo {
  let raw: { harness?: RawHello };
  try {
    raw = JSON.parse(line) as { harness?: RawHello };
  } catch {
    throw new Error(`kernel harness: unexpected first line: ${line.slice(0, 200)}`);
  }
  const h = raw.harness;
  if (!h) throw new Error(`kernel harness: unexpected first line: ${line.slice(0, 200)}`);
  return {
    pid: h.pid,
    kernel: h.kernel,
    machine: h.machine,
    pageSize: h.page_size,
    pagemapScan: h.pagemap_scan,
    userfaultfd: h.userfaultfd,
    uffdFeatures: BigInt(h.uffd_features),
    vec: h.vec,
    stepTimeoutMs: h.step_timeout_ms,
    stepLimitMs: h.step_limit_ms,
    maps: h.maps.map((m) => ({ start: BigInt(m.start), end: BigInt(m.end), name: m.name })),
  };
}

/**
 * Turn the harness's stdout into a KernelRun. `steps` are the steps that were sent, in order.
 * Throws on output that breaks the protocol (a bug, not a kernel result).
 */
export function parseReplayOutput(stdout: string, steps: readonly Step[], termination: Termination): KernelRun {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) {
    const how = termination.signal ? `was killed by ${termination.signal}` : `exited with status ${termination.code}`;
    throw new Error(`kernel harness printed nothing and ${termination.timedOut ? 'timed out' : how}`);
  }
  const harness = parseHello(lines[0]!);
  const run: KernelRun = {
    harness,
    results: [],
    notReached: [],
    unreproduced: [],
    harnessOverlaps: [],
    warnings: [],
    stderr: '',
  };
  const byIndex = new Map(steps.map((s) => [s.index, s]));
  const done = new Set<number>();
  let end: RawEnd | undefined;

  for (const line of lines.slice(1)) {
    let obj: RawStep | RawEnd;
    try {
      obj = JSON.parse(line) as RawStep | RawEnd;
    } catch {
      throw new Error(`kernel harness: unparsable output line: ${line.slice(0, 200)}`);
    }
    if ('end' in obj) {
      end = obj;
      break;
    }
    const s = obj;
    const step = byIndex.get(s.step);
    if (!step) throw new Error(`kernel harness: result for unknown step ${s.step}`);
    done.add(s.step);
    if (s.hang && typeof s.hang !== 'object') {
      run.unreproduced.push({
        step: s.step,
        op: s.op,
        reason: 'hang',
        detail:
          s.hang === 'busy'
            ? `the ${s.op} was still running after ${s.timeout_ms} ms on the kernel ` +
              '(e.g. a system call that restarts forever)'
            : `the ${s.op} was blocked for ${s.timeout_ms} ms on the kernel ` +
              '(e.g. a fault waiting for a userfaultfd reader that does not exist)',
      });
      continue;
    }
    if (s.unsupported !== undefined) {
      run.unreproduced.push({ step: s.step, op: s.op, reason: 'unsupported', detail: s.unsupported });
      continue;
    }
    if (s.errno !== null && !KNOWN_ERRNOS.has(s.errno)) {
      run.warnings.push(`step ${s.step}: the kernel returned ${s.errno}, which the emulator has no name for`);
    }
    const result: StepResult = {
      step: s.step,
      op: s.op,
      ret: BigInt(s.ret),
      errno: s.errno as ErrnoName | null,
    };
    if (s.userfault) result.userfault = parseUserfault(s.step, s.userfault);
    if (typeof s.hang === 'object') result.hang = parseHang(s.step, s.hang);
    if (s.op === 'pagemap_scan') {
      result.walk_end = s.walk_end == null ? null : BigInt(s.walk_end);
      result.regions = (s.regions ?? []).map((r) => ({
        start: BigInt(r.start),
        end: BigInt(r.end),
        categories: r.categories,
      }));
    }
    run.results.push(result);
    if (step.op.op === 'pagemap_scan' && result.walk_end != null) {
      // The walk ran over [start, end rounded up to a page).
      const page = BigInt(harness.pageSize);
      const end = ((step.op.arg.end + page - 1n) / page) * page;
      const mappings = harnessMappingsIn(harness.maps, step.op.arg.start, end);
      if (mappings.length > 0) run.harnessOverlaps.push({ step: s.step, mappings });
    }
  }

  if (end?.end === 'protocol-error') {
    throw new Error(`kernel harness rejected its input at line ${end.line}: ${end.reason}`);
  }
  if (end?.end === 'stopped' && end.step !== undefined) {
    run.stopped = { step: end.step, reason: end.reason as StopReason };
  } else if (!end || end.end !== 'complete') {
    // The harness died (or was killed) in the middle of a step: blame the first step without output.
    const culprit = steps.find((s) => !done.has(s.index));
    if (culprit) {
      const reason = termination.timedOut ? 'timeout' : 'crash';
      const how = termination.timedOut
        ? 'the kernel harness was killed after the run timed out'
        : termination.signal
          ? `the kernel harness was killed by ${termination.signal}`
          : `the kernel harness exited with status ${termination.code}`;
      run.unreproduced.push({ step: culprit.index, op: culprit.op.op, reason, detail: `${how} during this step` });
      run.stopped = { step: culprit.index, reason };
      done.add(culprit.index);
    }
  }
  if (run.stopped) {
    run.notReached = steps.filter((s) => !done.has(s.index)).map((s) => s.index);
  }
  return run;
}

const PAGEFAULT_FLAGS = ['WRITE', 'WP', 'MINOR'] as const;

function parseUserfault(step: number, u: { address: string; flags: string[] }): NonNullable<StepResult['userfault']> {
  const flags = u.flags.map((f) => {
    if (!(PAGEFAULT_FLAGS as readonly string[]).includes(f)) throw new Error(`kernel harness: step ${step}: unknown pagefault flag ${f}`);
    return f as (typeof PAGEFAULT_FLAGS)[number];
  });
  return { address: BigInt(u.address), flags };
}

function parseHang(step: number, h: { why: string; address?: string }): NonNullable<StepResult['hang']> {
  if (!(HANG_WHYS as readonly string[]).includes(h.why)) throw new Error(`kernel harness: step ${step}: unknown hang ${h.why}`);
  return { why: h.why as HangWhy, ...(h.address !== undefined && { address: BigInt(h.address) }) };
}

/** The harness mappings that intersect [start, end). */
export function harnessMappingsIn(maps: readonly HarnessMapping[], start: bigint, end: bigint): HarnessMapping[] {
  return maps.filter((m) => m.start < end && m.end > start);
}
