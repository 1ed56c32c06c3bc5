// `pagemap-scan run FILE...`: each step in order; each scan with its arguments and regions.

import type { Chalk } from 'chalk';
import { EXIT_OK, EXIT_USAGE } from '../errors';
import { loadScenarioFile } from '../scenario';
import { checkExpectation } from '../scenario/expect';
import { hex, scenarioToJson } from '../scenario/json';
import type { Program, StepResult } from '../scenario/program';
import { simulate, type SimulationResult } from '../simulate';
import { describeOp, describeScan, hangText, regionTable, symbolic, userfaultText } from './format';
import type { Io } from './io';
import { withKernel } from './kernel-option';

export interface RunOptions {
  json?: boolean;
  kernel?: string;
}

export function runCommand(files: string[], opts: RunOptions, io: Io, c: Chalk): number {
  // Load everything first: a bad file is reported before any output is produced.
  const programs = files.map((f) => withKernel(loadScenarioFile(f), opts.kernel));
  const sims = programs.map((p) => simulate(p));
  if (opts.json) {
    const docs = programs.map((p, i) => scenarioToJson(p.name, sims[i].kernel, sims[i].results, sims[i].stopped));
    io.out(JSON.stringify(docs.length === 1 ? docs[0] : docs, null, 2));
  } else {
    programs.forEach((p, i) => printScenario(p, sims[i], io, c));
  }
  return sims.some((s, i) => s.stopped && !expectedBlock(programs[i], s)) ? EXIT_USAGE : EXIT_OK;
}

/**
 * A step that blocks on userfaultfd, or that the kernel never returns from (a hang), is a kernel
 * result. Like an errno, it is planned when the step's `expect` says so (`userfault:`, `hang:`):
 * then the scenario ran as written and `run` exits 0; otherwise it stopped the scenario
 * unplanned, as a failing step without may_fail does (exit 2).
 */
export function expectedBlock(program: Program, sim: SimulationResult): boolean {
  const expect = program.steps.find((s) => s.index === sim.stopped?.step)?.expect;
  if (sim.stopped?.userfault) return expect?.userfault !== undefined;
  if (sim.stopped?.hang) return expect?.hang !== undefined;
  return false;
}

function printScenario(program: Program, sim: SimulationResult, io: Io, c: Chalk): void {
  io.out(c.bold(`${program.file}: ${program.name}`) + c.dim(` (kernel ${sim.kernel})`));
  const byIndex = new Map(sim.results.map((r) => [r.step, r]));
  for (const step of program.steps) {
    const r = byIndex.get(step.index);
    if (!r) break;
    printStep(program, step.index, r, io, c);
    if (step.expect) {
      for (const m of checkExpectation(step, step.expect, r)) {
        io.out(c.red(`      expect ${m.field}: expected ${m.expected.replace(/\n/g, '; ')}, got ${m.got.replace(/\n/g, '; ')}`));
      }
    }
  }
  if (sim.stopped) {
    const text = stopMessage(program, sim.stopped);
    io.err(expectedBlock(program, sim) ? text : c.red(text));
  }
  io.out('');
}

function printStep(program: Program, index: number, r: StepResult, io: Io, c: Chalk): void {
  const step = program.steps.find((s) => s.index === index)!;
  const num = String(index).padStart(3);
  if (step.op.op !== 'pagemap_scan') {
    const status = r.userfault ? c.yellow('blocked') : r.hang ? c.yellow('hangs') : r.errno ? c.yellow(r.errno) : c.green('ok');
    io.out(`${num} ${step.op.op.padEnd(17)} ${status}  ${c.dim(describeOp(step.op, program.names))}`);
    if (r.userfault) io.out(`      ${userfaultText(r.userfault, program.names)} (waits for a userfaultfd reader; the scenario has none)`);
    if (r.hang) io.out(`      ${hangText(r.hang, program.names)}; the thread never returns`);
    return;
  }
  io.out(`${num} ${c.cyan('pagemap_scan')}      ${describeScan(step.op.arg, program.names)}`);
  if (r.hang) {
    io.out(`      ${c.yellow(hangText(r.hang, program.names))}; the thread never returns`);
    return;
  }
  const walkEnd = r.walk_end == null ? 'not written' : `${hex(r.walk_end)} (${symbolic(r.walk_end, program.names)})`;
  const ret = r.errno ? c.yellow(`-1 ${r.errno}`) : String(r.ret);
  io.out(`      = ${ret}, walk_end ${walkEnd}`);
  for (const line of regionTable(r, program, c)) io.out('      ' + line);
}

/** `file:line:col: step N: why`, at the step that stopped the scenario. */
export function stopMessage(program: Program, stopped: { step: number; message: string }): string {
  const where = program.steps.find((s) => s.index === stopped.step)?.where;
  const at = where ? `${where.file}:${where.line}:${where.col}` : program.file;
  return `${at}: step ${stopped.step}: ${stopped.message}`;
}
