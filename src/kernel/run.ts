// Running a resolved scenario Program on the real kernel, through the compiled replay harness.

import { spawn } from 'child_process';
import * as fs from 'fs';

import { EnvironmentError } from '../errors';
import { PMD_SIZE, PUD_SIZE, UFFD_API_FEATURES, UFFD_FEATURES } from '../uapi';
import { DEFAULT_READ_AHEAD_KB, type Program } from '../scenario/program';
import { type CompileOptions, replayBinary } from './build';
import { FILE_DIR, fileDirReadAheadKb } from './setup';
import {
  type HarnessInfo,
  type KernelRun,
  type Termination,
  encodeSteps,
  parseHello,
  parseReplayOutput,
} from './protocol';

export interface KernelRunOptions extends CompileOptions {
  /** A step blocked this long (using no CPU) is reported as a hang and stops the run. Default 5000. */
  stepTimeoutMs?: number;
  /** A step running this long in all (busy or not) is reported as a hang. Default 60000. */
  stepLimitMs?: number;
  /** The whole run; past it the harness is killed. Default 600000. */
  timeoutMs?: number;
}

export const DEFAULT_STEP_TIMEOUT_MS = 5000;
export const DEFAULT_STEP_LIMIT_MS = 60_000;
export const DEFAULT_RUN_TIMEOUT_MS = 600_000;

export interface ProcessOutput extends Termination {
  stdout: string;
  stderr: string;
}

/** Run an executable with `input` on stdin; never rejects on a non-zero exit. */
export function runProcess(file: string, args: string[], input: string, timeoutMs: number, idleMs = timeoutMs): Promise<ProcessOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const kill = () => {
      timedOut = true;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(kill, timeoutMs);
    // A step stuck in a wait its own alarm cannot interrupt (a killable sleep) prints nothing.
    let idle = setTimeout(kill, idleMs);
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      clearTimeout(idle);
      idle = setTimeout(kill, idleMs);
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // The harness stops reading when a step stops the scenario: ignore EPIPE on its stdin.
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      clearTimeout(idle);
      reject(new EnvironmentError(`cannot run the kernel harness ${file}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(idle);
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code,
        signal,
        timedOut,
      });
    });
    child.stdin.end(input);
  });
}

const probes = new Map<string, HarnessInfo>();

/**
 * Start the harness with no steps and return what it found: kernel release, PAGEMAP_SCAN and
 * userfaultfd availability, its own mappings. EnvironmentError when PAGEMAP_SCAN is unusable.
 */
export async function probeKernel(opts: CompileOptions = {}): Promise<HarnessInfo> {
  const binary = replayBinary(opts);
  const cached = probes.get(binary);
  if (cached) return cached;
  const r = await runProcess(binary, [], '', 30_000);
  const first = r.stdout.split('\n')[0] ?? '';
  if (!first.startsWith('{"harness"')) {
    throw new EnvironmentError(
      `the kernel harness did not start (${r.signal ?? `status ${r.code}`}): ${(r.stderr || r.stdout).trim()}`,
    );
  }
  const info = parseHello(first);
  checkPagemapScan(info);
  probes.set(binary, info);
  return info;
}

function checkPagemapScan(info: HarnessInfo): void {
  if (info.vec !== 'ok') {
    throw new EnvironmentError(
      `the kernel harness cannot map its scan output array at 0x600000000000 (${info.vec})`,
    );
  }
  if (info.pagemapScan === 'ok') return;
  if (info.pagemapScan === 'ENOTTY' || info.pagemapScan === 'EINVAL') {
    throw new EnvironmentError(
      `the running kernel (${info.kernel}) has no PAGEMAP_SCAN ioctl on /proc/PID/pagemap ` +
        `(a trivial call failed with ${info.pagemapScan}); it needs Linux 6.7 or later`,
    );
  }
  throw new EnvironmentError(
    `PAGEMAP_SCAN cannot be used on this machine: opening /proc/self/pagemap or a trivial scan ` +
      `failed with ${info.pagemapScan}`,
  );
}

/** EnvironmentError when the program needs userfaultfd features this kernel does not offer. */
export function checkProgramSupport(program: Program, info: HarnessInfo): void {
  checkPagemapScan(info);
  const uffdSteps = program.steps.filter((s) => s.op.op.startsWith('uffd_'));
  if (uffdSteps.length === 0) return;
  if (info.userfaultfd !== 'ok') {
    const why =
      info.userfaultfd === 'ENOSYS'
        ? 'the kernel is built without CONFIG_USERFAULTFD'
        : info.userfaultfd === 'EPERM'
          ? 'not permitted: set vm.unprivileged_userfaultfd=1 or run with CAP_SYS_PTRACE'
          : info.userfaultfd;
    throw new EnvironmentError(
      `step ${uffdSteps[0]!.index} needs userfaultfd, which is not available on this machine (${why})`,
    );
  }
  const known = BigInt(UFFD_API_FEATURES);
  for (const s of program.steps) {
    if (s.op.op !== 'uffd_open') continue;
    const missing = s.op.features & known & ~info.uffdFeatures;
    if (missing !== 0n) {
      const names = Object.entries(UFFD_FEATURES)
        .filter(([, bit]) => (BigInt(bit) & missing) !== 0n)
        .map(([name]) => name);
      throw new EnvironmentError(
        `step ${s.index}: the running kernel (${info.kernel}) does not offer the userfaultfd ` +
          `feature(s) ${names.join(', ')}`,
      );
    }
  }
}

/** How many hugetlb pages of each size the program's mmaps need (or what `system` says). */
export function hugetlbPagesNeeded(program: Program): { '2M': number; '1G': number } {
  let m2 = 0n;
  let g1 = 0n;
  for (const s of program.steps) {
    if (s.op.op !== 'mmap') continue;
    const pages = (size: bigint, unit: number) => (size + BigInt(unit) - 1n) / BigInt(unit);
    if (s.op.kind === 'hugetlb' || s.op.kind === 'hugetlb-shared') m2 += pages(s.op.size, PMD_SIZE);
    if (s.op.kind === 'hugetlb-1g') g1 += pages(s.op.size, PUD_SIZE);
  }
  return {
    '2M': program.system.hugetlbPages?.['2M'] ?? Number(m2),
    '1G': program.system.hugetlbPages?.['1G'] ?? Number(g1),
  };
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Differences between what the scenario assumes (`system`) and this machine. */
export function environmentWarnings(program: Program): string[] {
  const warnings: string[] = [];
  const thp = readText('/sys/kernel/mm/transparent_hugepage/enabled')?.match(/\[(\w+)\]/)?.[1];
  if (thp && thp !== program.system.thp) {
    warnings.push(`the scenario assumes THP mode "${program.system.thp}" but the kernel is in "${thp}" mode`);
  }
  const swaps = readText('/proc/swaps');
  if (swaps !== undefined) {
    const active = swaps.trim().split('\n').length > 1;
    if (program.system.swap && !active) {
      warnings.push('the scenario assumes swap is on but no swap device is active (see --setup-swap)');
    } else if (!program.system.swap && active) {
      warnings.push('the scenario assumes no swap but a swap device is active: pageout may swap anonymous pages out');
    }
  }
  if (program.steps.some((s) => s.op.op === 'mmap' && s.op.kind.startsWith('file-'))) {
    const want = program.system.readAheadKb ?? DEFAULT_READ_AHEAD_KB;
    const have = fileDirReadAheadKb();
    if (have !== undefined && have !== want) {
      warnings.push(
        `the scenario assumes read_ahead_kb ${want} for disk files but the disk of ${FILE_DIR} has ${have} ` +
          `(set system.read_ahead_kb: ${have} to model this machine)`,
      );
    }
  }
  const needed = hugetlbPagesNeeded(program);
  const explicit = program.system.hugetlbPages;
  for (const [size, dir] of [
    ['2M', 'hugepages-2048kB'],
    ['1G', 'hugepages-1048576kB'],
  ] as const) {
    const want = needed[size];
    const freeText = readText(`/sys/kernel/mm/hugepages/${dir}/free_hugepages`);
    if (freeText === undefined) {
      if (want > 0) warnings.push(`the kernel has no ${size} hugetlb pages`);
      continue;
    }
    const free = Number(freeText.trim());
    if (explicit?.[size] !== undefined ? free !== want : free < want) {
      warnings.push(
        `the scenario ${explicit?.[size] !== undefined ? 'sets' : 'needs'} ${want} free ${size} hugetlb ` +
          `page(s) but the kernel pool has ${free} free (see --setup-hugetlb)`,
      );
    }
  }
  return warnings;
}

/**
 * Run every step of `program` on the real kernel. Steps run in one fresh process, in order; a
 * failing step without may_fail, a hang or an unsupported step stops the run (see KernelRun).
 * EnvironmentError when the machine cannot run it at all (no compiler, no PAGEMAP_SCAN, no
 * userfaultfd for a program that needs it).
 */
export async function runOnKernel(program: Program, opts: KernelRunOptions = {}): Promise<KernelRun> {
  const info = await probeKernel(opts);
  checkProgramSupport(program, info);
  const binary = replayBinary(opts);
  const args = [
    '--step-timeout-ms',
    String(opts.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS),
    '--step-limit-ms',
    String(opts.stepLimitMs ?? DEFAULT_STEP_LIMIT_MS),
  ];
  const idleMs = (opts.stepLimitMs ?? DEFAULT_STEP_LIMIT_MS) + 5000;
  const r = await runProcess(binary, args, encodeSteps(program.steps), opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS, idleMs);
  if (r.code === 3 && r.stdout.includes('"end":"environment"')) {
    checkPagemapScan(parseHello(r.stdout.split('\n')[0] ?? ''));
  }
  const run = parseReplayOutput(r.stdout, program.steps, r);
  run.stderr = r.stderr;
  run.warnings.unshift(...environmentWarnings(program));
  return run;
}
