// Differential testing: random programs (random-program.ts) run on the real kernel and on the
// emulator, compared step by step with compareRuns(). The kernel is the reference: a step where
// the two differ is a disagreement, written out as a ready-to-run scenario (with the kernel's
// answers as its expect blocks) so that it can be replayed with `pagemap-scan test|verify FILE`.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EnvironmentError } from '../errors';
import { currentThpMode, runOnKernel, swapActive, withHugetlbPages, withSwapFile, type HugetlbSize, type KernelRun, type KernelRunOptions } from '../kernel';
import type { Program, StepResult } from '../scenario/program';
import { stepToJson } from '../scenario/json';
import { simulate, type SimulationResult } from '../simulate';
import { compareRuns, type Field, type StepVerdict } from '../verify';
import { HUGETLB_BUDGET, randomProgram, seedName, type RandomProgramOptions } from './random-program';
import { programToYaml, withExpectations } from './yaml';

export interface DifferentialOptions {
  /** The first seed; seeds seed, seed+1, ... are run (as u32). Default 1. */
  seed?: number;
  /** How many seeds at most. Default 1000. */
  count?: number;
  /** Stop starting new seeds after this many seconds (running ones finish). Default: no limit. */
  seconds?: number;
  /** Run at least this many seeds whatever `seconds` says (capped by `count`). Default 0. */
  minCount?: number;
  /** Seeds in flight at once (each runs one harness process). Default 2. */
  concurrency?: number;
  /** Where disagreements are written as scenario files; default a fresh temp dir (made lazily). */
  outDir?: string;
  /** Progress and disagreement lines; default none. */
  log?: (line: string) => void;
  generator?: RandomProgramOptions;
  kernel?: KernelRunOptions;
}

/** One seed whose kernel and emulator runs differ (the first differing step). */
export interface Disagreement {
  seed: number;
  step: number;
  op: string;
  /** Differing fields; `crash` when the emulator threw instead of answering. */
  fields: (Field | 'crash')[];
  kernel?: StepResult;
  emulator?: StepResult;
  /** The emulator's exception, for `crash`. */
  error?: string;
  /** The scenario file written for it. */
  file: string;
  /** One line that replays it. */
  replay: string;
}

/** A seed whose kernel answers changed between runs of the same program: not a verdict. */
export interface Flaky {
  seed: number;
  step: number;
  op: string;
  file: string;
}

/** A seed the kernel could not run to the end (a generator bug: it should not happen). */
export interface Unreproduced {
  seed: number;
  step: number;
  reason: string;
  file: string;
}

export interface DifferentialReport {
  firstSeed: number;
  seedsRun: number;
  /** Seeds whose every compared step agreed (not-modelled tails aside). */
  clean: number;
  /** Steps compared and found equal. */
  stepsAgreed: number;
  /** Steps not compared because the emulator said "not modelled" (that step and the rest). */
  notModelledSteps: number;
  /** Seeds in which that happened, and the reasons with their counts. */
  notModelledSeeds: number;
  notModelledReasons: Map<string, number>;
  disagreements: Disagreement[];
  /** Disagreements where the kernel itself did not answer the same way twice (not failures). */
  flaky: Flaky[];
  unreproduced: Unreproduced[];
  elapsedMs: number;
  /** Seeds whose first kernel run hung but whose second ran to the end (transient: CPU starvation). */
  retriedHangs: number;
  /** Seeds not judged because the machine stopped matching their `system` (swap, THP mode). */
  machineChanged: { seed: number; reason: string }[];
  /** True when the time limit stopped the run before `count` seeds. */
  timedOut: boolean;
  outDir?: string;
}

const BIN = path.resolve(__dirname, '../../bin/pagemap-scan.js');

/** How to replay one seed from the command line. */
export function replayCommand(seed: number, generator: RandomProgramOptions = {}): string {
  const extra: string[] = [];
  if (generator.kinds?.length) extra.push(`--kinds ${generator.kinds.join(',')}`);
  if (generator.thp) extra.push('--thp');
  if (generator.swap) extra.push('--swap');
  if (generator.minSteps !== undefined) extra.push(`--min-steps ${generator.minSteps}`);
  if (generator.maxSteps !== undefined) extra.push(`--max-steps ${generator.maxSteps}`);
  return [`npm run difftest -- --seed ${seed >>> 0} --count 1`, ...extra].join(' ');
}

interface SeedOutcome {
  seed: number;
  program: Program;
  /** Set (and nothing else) when the machine stopped matching the program's `system`. */
  machineChanged?: string;
  kernel?: KernelRun;
  emulator?: SimulationResult;
  emulatorError?: unknown;
  verdicts?: StepVerdict[];
  /** Set when a disagreement was found: whether the kernel gave the same answers on re-runs. */
  kernelStable?: boolean;
  /** The first kernel run hung and a second one did not (its answers are the ones compared). */
  retriedHang?: boolean;
}

/** How many times a disagreeing program is run again on the kernel to see if its answers are stable. */
const CONFIRM_RUNS = 2;

/**
 * How the machine differs from what the program assumes (swap, THP mode), if it does: something
 * else on the machine changed it during the run, and that seed's answers are no verdict.
 */
function machineChange(program: Program): string | undefined {
  const swap = swapActive();
  if (swap !== undefined && swap !== program.system.swap) return `swap turned ${swap ? 'on' : 'off'} during the run`;
  const thp = currentThpMode();
  if (thp !== undefined && thp !== program.system.thp) return `THP mode changed to ${thp} during the run`;
  return undefined;
}

async function runSeed(seed: number, opts: DifferentialOptions): Promise<SeedOutcome> {
  const program = randomProgram(seed, opts.generator);
  const changed = machineChange(program);
  if (changed) return { seed, program, machineChanged: changed };
  // A hang ends a run, so find it fast: blocked 2 s, or busy 10 s (no generated step needs more).
  const kernelOpts: KernelRunOptions = { stepTimeoutMs: 2000, stepLimitMs: 10_000, ...opts.kernel };
  let kernel = await runOnKernel(program, kernelOpts);
  const changedDuring = machineChange(program);
  if (changedDuring) return { seed, program, machineChanged: changedDuring };
  // A step that hung for lack of CPU (two jobs, a 1 GiB page being cleared) is run once more; a
  // real hang (a fault nobody resolves) hangs again.
  let retriedHang = false;
  if (kernel.unreproduced.some((u) => u.reason === 'hang')) {
    const again = await runOnKernel(program, kernelOpts);
    if (again.unreproduced.length === 0) {
      kernel = again;
      retriedHang = true;
    }
  }
  let emulator: SimulationResult;
  try {
    emulator = simulate(program);
  } catch (e) {
    return { seed, program, kernel, emulatorError: e, retriedHang };
  }
  const verdicts = compareRuns(program, kernel, emulator);
  if (!verdicts.some((v) => v.status === 'differ')) return { seed, program, kernel, emulator, verdicts, retriedHang };
  // The kernel is the reference only if it answers the same every time: background work
  // (khugepaged collapsing THPs, reclaim) can change what a scan sees.
  const answers = (run: KernelRun) => JSON.stringify(run.results.map(stepToJson));
  let kernelStable = true;
  for (let i = 0; i < CONFIRM_RUNS && kernelStable; i++)
    kernelStable = answers(await runOnKernel(program, kernelOpts)) === answers(kernel);
  return { seed, program, kernel, emulator, verdicts, kernelStable, retriedHang };
}

/** The swap file of a `swap` run: far more than programs in flight can page out. */
const SWAP_BYTES = 256 << 20;

/**
 * The machine the generated programs assume, for as long as `fn` runs: hugetlb pools holding
 * HUGETLB_BUDGET for each program in flight (so none runs short because of another), a swap
 * file for `swap` programs. Put back afterwards, whatever happens (kernel/setup.ts).
 */
export async function withMachineFor<T>(generator: RandomProgramOptions, concurrency: number, fn: () => Promise<T>): Promise<T> {
  const kinds = generator.kinds ?? [];
  const pools: Partial<Record<HugetlbSize, number>> = {};
  if (kinds.includes('hugetlb') || kinds.includes('hugetlb-shared')) pools['2M'] = HUGETLB_BUDGET['2M'] * concurrency;
  if (kinds.includes('hugetlb-1g')) pools['1G'] = HUGETLB_BUDGET['1G'] * concurrency;
  const withSwap = (f: () => Promise<T>): Promise<T> => (generator.swap ? withSwapFile(SWAP_BYTES, f) : f());
  return withHugetlbPages(pools, () => withSwap(fn));
}

/**
 * Run `count` seeds from `seed` (within `seconds`), kernel vs emulator, on a machine set up for
 * the generator (withMachineFor). Throws EnvironmentError (before any seed is counted) when this
 * machine cannot run programs on its kernel, or cannot be set up for them.
 */
export async function runDifferential(opts: DifferentialOptions = {}): Promise<DifferentialReport> {
  return withMachineFor(opts.generator ?? {}, Math.max(1, opts.concurrency ?? 2), () => runSeeds(opts));
}

async function runSeeds(opts: DifferentialOptions): Promise<DifferentialReport> {
  const first = (opts.seed ?? 1) >>> 0;
  const count = opts.count ?? 1000;
  const minCount = Math.min(count, opts.minCount ?? 0);
  const deadline = opts.seconds === undefined ? Infinity : Date.now() + opts.seconds * 1000;
  const log = opts.log ?? (() => undefined);
  const started = Date.now();
  const report: DifferentialReport = {
    firstSeed: first,
    seedsRun: 0,
    clean: 0,
    stepsAgreed: 0,
    notModelledSteps: 0,
    notModelledSeeds: 0,
    notModelledReasons: new Map(),
    disagreements: [],
    flaky: [],
    unreproduced: [],
    retriedHangs: 0,
    machineChanged: [],
    elapsedMs: 0,
    timedOut: false,
  };

  let outDir = opts.outDir;
  const writeScenario = (program: Program, results: readonly StepResult[], comments: string[]): string => {
    if (!outDir) outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagemap-scan-difftest-'));
    fs.mkdirSync(outDir, { recursive: true });
    report.outDir = outDir;
    const file = path.join(outDir, `${program.name}.yaml`);
    fs.writeFileSync(file, programToYaml(withExpectations(program, results), comments));
    return file;
  };

  const record = (o: SeedOutcome): void => {
    report.seedsRun++;
    if (o.machineChanged) {
      report.machineChanged.push({ seed: o.seed, reason: o.machineChanged });
      log(`SKIPPED seed ${o.seed}: ${o.machineChanged}`);
      return;
    }
    if (o.retriedHang) report.retriedHangs++;
    const kernel = o.kernel!;
    const seedLine = `seed ${o.seed}`;
    if (o.emulatorError !== undefined) {
      const msg = o.emulatorError instanceof Error ? o.emulatorError.stack ?? o.emulatorError.message : String(o.emulatorError);
      const step = o.program.steps.find((s) => !kernel.results.some((r) => r.step === s.index))?.index ?? 0;
      const file = writeScenario(o.program, kernel.results, [
        `${seedLine}: the emulator threw: ${msg.split('\n')[0]}`,
        `expect blocks: the answers of the real kernel (${kernel.harness.kernel})`,
      ]);
      const d: Disagreement = {
        seed: o.seed,
        step,
        op: 'simulate',
        fields: ['crash'],
        error: msg,
        file,
        replay: `node ${BIN} verify ${file}`,
      };
      report.disagreements.push(d);
      log(`DISAGREE ${seedLine}: the emulator threw ${msg.split('\n')[0]}\n  scenario: ${file}\n  replay:   ${d.replay}   (or ${replayCommand(o.seed, opts.generator)})`);
      return;
    }
    const emulator = o.emulator!;
    const verdicts = o.verdicts!;
    let notModelled = 0;
    let kernelSkip: string | undefined;
    let firstDiff: (typeof verdicts)[number] | undefined;
    for (const v of verdicts) {
      if (v.status === 'agree') report.stepsAgreed++;
      else if (v.status === 'skipped' && v.side === 'emulator') notModelled++;
      else if (v.status === 'skipped') kernelSkip ??= `step ${v.step}: ${v.reason}`;
      else firstDiff ??= v;
    }
    if (notModelled > 0) {
      report.notModelledSteps += notModelled;
      report.notModelledSeeds++;
      const reason = (emulator.stopped?.message ?? 'unknown').replace(/^\w+: /, '');
      report.notModelledReasons.set(reason, (report.notModelledReasons.get(reason) ?? 0) + 1);
    }
    if (kernelSkip && !firstDiff) {
      const u = kernel.unreproduced[0];
      const file = writeScenario(o.program, kernel.results, [`${seedLine}: the kernel could not run it: ${kernelSkip}`]);
      report.unreproduced.push({ seed: o.seed, step: u?.step ?? 0, reason: kernelSkip, file });
      log(`UNREPRODUCED ${seedLine}: ${kernelSkip}\n  scenario: ${file}`);
      return;
    }
    if (!firstDiff) {
      report.clean++;
      return;
    }
    const k = firstDiff.kernel;
    const e = firstDiff.emulator;
    if (o.kernelStable === false) {
      const file = writeScenario(o.program, kernel.results, [
        `${seedLine}: step ${firstDiff.step} (${firstDiff.op}) differed, but the kernel did not answer the same way`,
        'when the program was run again (background work such as khugepaged): not a verdict',
      ]);
      report.flaky.push({ seed: o.seed, step: firstDiff.step, op: firstDiff.op, file });
      log(`FLAKY ${seedLine}: step ${firstDiff.step} ${firstDiff.op}: the kernel's answers change between runs\n  scenario: ${file}`);
      return;
    }
    const file = writeScenario(o.program, kernel.results, [
      `${seedLine}: step ${firstDiff.step} (${firstDiff.op}) differs in ${firstDiff.fields!.join(', ')}`,
      `kernel:   ${k ? JSON.stringify(stepToJson(k)) : 'no result'}`,
      `emulator: ${e ? JSON.stringify(stepToJson(e)) : 'no result'}`,
      `expect blocks: the answers of the real kernel (${kernel.harness.kernel})`,
    ]);
    const d: Disagreement = {
      seed: o.seed,
      step: firstDiff.step,
      op: firstDiff.op,
      fields: firstDiff.fields!,
      kernel: k,
      emulator: e,
      file,
      replay: `node ${BIN} verify ${file}`,
    };
    report.disagreements.push(d);
    log(
      `DISAGREE ${seedLine}: step ${d.step} ${d.op} differs in ${d.fields.join(', ')}\n` +
        `  scenario: ${file}\n  replay:   ${d.replay}   (or ${replayCommand(o.seed, opts.generator)})`,
    );
  };

  // Fail fast, before any seed, when the kernel cannot run programs at all.
  let next = 0;
  const take = (): number | undefined => {
    if (next >= count) return undefined;
    if (next >= minCount && Date.now() >= deadline) {
      report.timedOut = true;
      return undefined;
    }
    return (first + next++) >>> 0;
  };
  let failure: unknown;
  const worker = async (): Promise<void> => {
    for (let seed = take(); seed !== undefined && failure === undefined; seed = take()) {
      try {
        record(await runSeed(seed, opts));
      } catch (e) {
        if (e instanceof EnvironmentError) {
          failure ??= e;
          return;
        }
        // A protocol or harness error is a bug worth a scenario file too.
        const program = randomProgram(seed, opts.generator);
        const file = writeScenario(program, [], [`seed ${seed}: running it failed: ${(e as Error).message}`]);
        report.seedsRun++;
        report.unreproduced.push({ seed, step: 0, reason: (e as Error).message, file });
        log(`ERROR seed ${seed}: ${(e as Error).message}\n  scenario: ${file}`);
      }
      if (report.seedsRun % 250 === 0) log(`... ${report.seedsRun} seeds, ${report.disagreements.length} disagreements`);
    }
  };
  // The first seed alone: an EnvironmentError then stops everything at once.
  const firstSeed = take();
  if (firstSeed !== undefined) {
    try {
      record(await runSeed(firstSeed, opts));
    } catch (e) {
      if (e instanceof EnvironmentError) throw e;
      next = 0; // let a worker retry it and report the error
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, worker));
  if (failure !== undefined) throw failure;
  report.elapsedMs = Date.now() - started;
  return report;
}

/** A few lines summing up a report. */
export function formatReport(r: DifferentialReport): string[] {
  const lines = [
    `${r.seedsRun} seeds from ${r.firstSeed} in ${(r.elapsedMs / 1000).toFixed(1)} s${r.timedOut ? ' (time limit reached)' : ''}: ` +
      `${r.clean} clean, ${r.disagreements.length} disagreeing, ${r.flaky.length} flaky (the kernel answered ` +
      `differently on a re-run), ${r.unreproduced.length} not reproducible on the kernel`,
    `${r.stepsAgreed} steps agreed; ${r.notModelledSteps} steps in ${r.notModelledSeeds} seeds skipped as "not modelled" by the emulator`,
  ];
  if (r.machineChanged.length)
    lines.push(`  ${r.machineChanged.length} seeds not judged: the machine changed under them (${r.machineChanged[0]!.reason}, ...)`);
  if (r.retriedHangs) lines.push(`  ${r.retriedHangs} seeds hung once on the kernel and ran to the end when run again (compared on that run)`);
  for (const [reason, n] of [...r.notModelledReasons].sort((a, b) => b[1] - a[1])) lines.push(`  not modelled x${n}: ${reason}`);
  for (const d of r.disagreements)
    lines.push(`  seed ${d.seed}: step ${d.step} ${d.op} (${d.fields.join(', ')}): ${d.file}`);
  for (const f of r.flaky) lines.push(`  seed ${f.seed}: flaky at step ${f.step} ${f.op}: ${f.file}`);
  for (const u of r.unreproduced) lines.push(`  seed ${u.seed}: not reproducible: ${u.reason}: ${u.file}`);
  return lines;
}

export { seedName };
