// `npm run difftest -- --seed S --count N --seconds T [--out DIR] [--jobs J]`: seeded random
// differential testing of the emulator against this machine's kernel (see differential.ts).
// Compiled by tsc to dist/fuzz/main.js and run with node (build first: npm run build).
// Exit status: 0 all seeds agree, 1 a disagreement (or a seed the kernel could not run),
// 2 bad usage, 3 this machine cannot run programs on its kernel.

import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { EnvironmentError, EXIT_ENVIRONMENT, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE } from '../errors';
import type { MemoryKind } from '../scenario/program';
import { formatReport, runDifferential } from './differential';
import { FUZZ_KINDS, type RandomProgramOptions } from './random-program';

function kindList(raw: string): MemoryKind[] {
  const kinds = raw.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of kinds)
    if (!(FUZZ_KINDS as readonly string[]).includes(k)) throw new InvalidArgumentError(`unknown kind ${k}; valid: ${FUZZ_KINDS.join(', ')}, or all`);
  return kinds as MemoryKind[];
}

function integer(what: string, min: number, max: number) {
  return (raw: string): number => {
    const v = /^(0x[0-9a-f]+|[0-9]+)$/i.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new InvalidArgumentError(`expected ${what} (${min}..${max})`);
    return v;
  };
}

export async function main(argv: string[]): Promise<number> {
  const cmd = new Command('difftest')
    .description('run random programs on the real kernel and on the emulator and compare every step')
    .option('--seed <n>', 'first seed (a u32)', integer('a seed', 0, 0xffffffff), 1)
    .option('--count <n>', 'number of seeds', integer('a count', 1, 1e9), 1000)
    .option('--seconds <n>', 'stop starting new seeds after this many seconds', integer('seconds', 1, 1e7))
    .option('--jobs <n>', 'seeds run in parallel', integer('a number of jobs', 1, 64), 2)
    .option('--out <dir>', 'where to write the scenario of each disagreement (default: a new temp dir)')
    .option('--min-steps <n>', 'at least this many random steps per program (default 6)', integer('a step count', 1, 10000))
    .option('--max-steps <n>', 'at most this many random steps per program (default 40)', integer('a step count', 1, 10000))
    .option('--kinds <list>', `mapping kinds, comma-separated, or "all" (default anon): ${FUZZ_KINDS.join(', ')}; hugetlb kinds raise the hugetlb pools for the run (root)`, (raw: string) =>
      raw === 'all' ? [...FUZZ_KINDS] : kindList(raw),
    )
    .option('--thp', 'also exercise transparent huge pages (MADV_HUGEPAGE, MADV_COLLAPSE, multi-MiB mappings)')
    .option('--swap', 'programs assume a swap device: a swap file is added for the run (root), MADV_PAGEOUT swaps out')
    .exitOverride();
  try {
    cmd.parse(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    throw e;
  }
  const o = cmd.opts<{
    seed: number;
    count: number;
    seconds?: number;
    jobs: number;
    out?: string;
    minSteps?: number;
    maxSteps?: number;
    kinds?: MemoryKind[];
    thp?: boolean;
    swap?: boolean;
  }>();
  const generator: RandomProgramOptions = {};
  if (o.minSteps !== undefined) generator.minSteps = o.minSteps;
  if (o.maxSteps !== undefined) generator.maxSteps = o.maxSteps;
  if (o.kinds) generator.kinds = o.kinds;
  if (o.thp) generator.thp = true;
  if (o.swap) generator.swap = true;
  const log = (line: string) => process.stdout.write(line + '\n');
  log(`difftest: seeds ${o.seed}..${o.seed + o.count - 1}${o.seconds ? `, at most ${o.seconds} s` : ''}, ${o.jobs} at a time`);
  try {
    const report = await runDifferential({
      seed: o.seed,
      count: o.count,
      seconds: o.seconds,
      concurrency: o.jobs,
      outDir: o.out,
      log,
      generator,
    });
    for (const line of formatReport(report)) log(line);
    return report.disagreements.length || report.unreproduced.length ? EXIT_MISMATCH : EXIT_OK;
  } catch (e) {
    if (e instanceof EnvironmentError) {
      process.stderr.write(`difftest: SKIPPED, this machine cannot run programs on its kernel: ${e.message}\n`);
      return EXIT_ENVIRONMENT;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv).then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`difftest: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 70;
    },
  );
}
