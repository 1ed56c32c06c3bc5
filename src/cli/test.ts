// `pagemap-scan test FILE|DIR...`: run scenarios and check every `expect`.
// One case per checked step; a scenario that stops early fails the cases it did not reach.

import type { Chalk } from 'chalk';
import { EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, InputError } from '../errors';
import { loadScenarioFile } from '../scenario';
import { checkExpectation, type Mismatch } from '../scenario/expect';
import { simulate } from '../simulate';
import { scenarioFiles } from './files';
import type { Io } from './io';
import { withKernel } from './kernel-option';

export interface TestCase {
  name: string;
  mismatches: Mismatch[];
  /** Why the scenario stopped, when that is what failed this case. */
  error?: string;
}

export interface TestOptions {
  reporter?: 'default' | 'tap';
  kernel?: string;
}

export function testCommand(args: string[], opts: TestOptions, io: Io, c: Chalk): number {
  const cases: TestCase[] = [];
  let unusable = false;
  for (const file of scenarioFiles(args)) {
    try {
      cases.push(...testScenario(file, opts.kernel));
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      unusable = true;
      io.err(c.red(e.message));
    }
  }
  if (opts.reporter === 'tap') printTap(cases, io);
  else printDefault(cases, io, c);
  if (unusable) return EXIT_USAGE;
  return cases.some((t) => t.mismatches.length || t.error) ? EXIT_MISMATCH : EXIT_OK;
}

export function testScenario(file: string, kernel?: string): TestCase[] {
  const program = withKernel(loadScenarioFile(file), kernel);
  const sim = simulate(program);
  const results = new Map(sim.results.map((r) => [r.step, r]));
  const cases: TestCase[] = [];
  for (const step of program.steps) {
    const name = `${file} step ${step.index} ${step.op.op}`;
    const stoppedHere = sim.stopped?.step === step.index;
    if (!step.expect) {
      if (stoppedHere) cases.push({ name, mismatches: [], error: sim.stopped!.message });
      continue;
    }
    const result = results.get(step.index);
    // A block on userfaultfd, or a hang, is the step's result: its expect block judges it
    // (expect.userfault, expect.hang).
    const error = (stoppedHere && !sim.stopped!.userfault && !sim.stopped!.hang) || !result ? sim.stopped?.message : undefined;
    cases.push({ name, mismatches: checkExpectation(step, step.expect, result), error });
  }
  if (sim.stopped && sim.stopped.step === 0) cases.push({ name: `${file}`, mismatches: [], error: sim.stopped.message });
  return cases;
}

const failed = (t: TestCase): boolean => t.mismatches.length > 0 || t.error !== undefined;

function printDefault(cases: TestCase[], io: Io, c: Chalk): void {
  for (const t of cases) {
    if (!failed(t)) {
      io.out(`${t.name}: ${c.green('ok')}`);
      continue;
    }
    io.out(`${t.name}: ${c.red('FAILED')}`);
    if (t.error) io.out(`    ${t.error}`);
    for (const m of t.mismatches) {
      io.out(`    ${m.field}:`);
      io.out(c.green(indent(`expected ${m.expected}`)));
      io.out(c.red(indent(`got      ${m.got}`)));
    }
  }
  const nFailed = cases.filter(failed).length;
  io.out(`${cases.length - nFailed} passed, ${nFailed} failed`);
}

const indent = (text: string): string =>
  text
    .split('\n')
    .map((l, i) => (i === 0 ? '      ' + l : '               ' + l))
    .join('\n');

/** TAP version 14, as kselftests print it; diagnostics as a YAML block. */
function printTap(cases: TestCase[], io: Io): void {
  io.out('TAP version 14');
  io.out(`1..${cases.length}`);
  cases.forEach((t, i) => {
    io.out(`${failed(t) ? 'not ok' : 'ok'} ${i + 1} - ${t.name.replace(/#/g, '\\#')}`);
    if (!failed(t)) return;
    io.out('  ---');
    if (t.error) io.out(`  message: ${JSON.stringify(t.error)}`);
    for (const m of t.mismatches) {
      io.out(`  ${m.field}:`);
      io.out(`    expected: ${JSON.stringify(m.expected)}`);
      io.out(`    got: ${JSON.stringify(m.got)}`);
    }
    io.out('  ...');
  });
  const nFailed = cases.filter(failed).length;
  io.out(`# ${cases.length - nFailed} passed, ${nFailed} failed`);
}
