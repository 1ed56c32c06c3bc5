// `pagemap-scan verify FILE|DIR...`: replay each scenario on the running kernel and print, per
// step, kernel vs emulator; differing regions are marked. Ends with `N agree, N differ, N skipped`.

import type { Chalk } from 'chalk';
import { EXIT_ENVIRONMENT, EXIT_MISMATCH, EXIT_OK } from '../errors';
import { loadScenarioFile } from '../scenario';
import { hex, stepToJson } from '../scenario/json';
import type { Program, StepResult } from '../scenario/program';
import { categoryNames } from '../uapi';
import { summarize, verifyProgram, type StepVerdict, type Verification } from '../verify';
import { scenarioFiles } from './files';
import { withSetup, type SetupOptions } from './setup-options';
import { hangText, symbolic, userfaultText } from './format';
import type { Io } from './io';

export interface VerifyOptions extends SetupOptions {
  json?: boolean;
}

export async function verifyCommand(args: string[], opts: VerifyOptions, io: Io, c: Chalk): Promise<number> {
  const programs = scenarioFiles(args).map((f) => loadScenarioFile(f));
  const run = async () => {
    // One at a time: scenarios may share the hugetlb pool.
    const out: Verification[] = [];
    for (const p of programs) out.push(await verifyProgram(p));
    return out;
  };
  const verifications = await withSetup(opts, programs, run);
  const all = verifications.flatMap((v) => v.steps);
  const totals = summarize(all);
  if (opts.json) {
    io.out(JSON.stringify(verifications.map(toJson), null, 2));
  } else {
    for (const v of verifications) printVerification(v, io, c);
    io.out(`${totals.agree} agree, ${totals.differ} differ, ${totals.skipped} skipped`);
  }
  if (totals.differ) return EXIT_MISMATCH;
  if (all.some((s) => s.status === 'skipped' && s.side === 'emulator')) return EXIT_MISMATCH;
  if (totals.skipped) return EXIT_ENVIRONMENT;
  return EXIT_OK;
}

function toJson(v: Verification): unknown {
  return {
    scenario: v.program.name,
    file: v.program.file,
    kernel: v.kernel?.harness.kernel ?? null,
    summary: summarize(v.steps),
    warnings: v.kernel?.warnings ?? v.unfit,
    steps: v.steps.map((s) => ({
      step: s.step,
      op: s.op,
      status: s.status,
      ...(s.fields ? { fields: s.fields } : {}),
      ...(s.reason ? { reason: s.reason, side: s.side } : {}),
      kernel: s.kernel ? stepToJson(s.kernel) : null,
      emulator: s.emulator ? stepToJson(s.emulator) : null,
    })),
  };
}

function printVerification(v: Verification, io: Io, c: Chalk): void {
  const s = summarize(v.steps);
  const linux = v.kernel ? `Linux ${v.kernel.harness.kernel}` : 'kernel not run';
  io.out(c.bold(`${v.program.file}: ${v.program.name}`) + c.dim(` (${linux} vs emulator ${v.emulator.kernel})`));
  if (v.unfit.length) {
    io.out(c.yellow(`  skipped: this machine cannot reproduce it: ${v.unfit.join('; ')}`));
    return;
  }
  for (const w of v.kernel!.warnings) io.out(c.yellow(`  warning: ${w}`));
  for (const step of v.steps) printVerdict(step, v.program, io, c);
  io.out(c.dim(`  ${s.agree} agree, ${s.differ} differ, ${s.skipped} skipped`));
  io.out('');
}

function printVerdict(s: StepVerdict, program: Program, io: Io, c: Chalk): void {
  const head = `${String(s.step).padStart(5)} ${s.op.padEnd(17)}`;
  if (s.status === 'skipped') {
    io.out(`${head} ${c.yellow('skipped')}  ${s.side}: ${s.reason}`);
    return;
  }
  if (s.status === 'agree') {
    io.out(`${head} ${c.green('agree')}    ${summary(s.kernel!, program)}`);
    return;
  }
  io.out(`${head} ${c.red('DIFFER')}   ${s.fields!.join(', ')}`);
  io.out(`        kernel:   ${s.kernel ? summary(s.kernel, program) : 'not reached'}`);
  io.out(`        emulator: ${s.emulator ? summary(s.emulator, program) : 'not reached'}`);
  if (s.fields!.includes('regions')) {
    for (const line of regionDiff(s.kernel?.regions ?? [], s.emulator?.regions ?? [], program, c)) io.out('        ' + line);
  }
}

function summary(r: StepResult, program: Program): string {
  if (r.userfault) return userfaultText(r.userfault, program.names);
  if (r.hang) return hangText(r.hang, program.names);
  const parts = [r.errno ? `-1 ${r.errno}` : `ret ${r.ret}`];
  if (r.op === 'pagemap_scan') {
    parts.push(`walk_end ${r.walk_end == null ? 'not written' : symbolic(r.walk_end, program.names)}`);
    parts.push(`${r.regions?.length ?? 0} regions`);
  }
  return parts.join(', ');
}

type Region = NonNullable<StepResult['regions']>[number];

/** Both region lists in address order: equal lines plain, the rest marked by side. */
function regionDiff(k: Region[], e: Region[], program: Program, c: Chalk): string[] {
  const show = (g: Region) =>
    `[${hex(g.start)}, ${hex(g.end)}) ${symbolic(g.start, program.names)} ${categoryNames(g.categories).join('|') || '0'}`;
  const key = (g: Region) => `${g.start}:${g.end}:${g.categories}`;
  const inK = new Set(k.map(key));
  const inE = new Set(e.map(key));
  const all = [...k, ...e.filter((g) => !inK.has(key(g)))].sort((a, b) =>
    a.start < b.start ? -1 : a.start > b.start ? 1 : Number(a.end - b.end),
  );
  return all.map((g) => {
    const both = inK.has(key(g)) && inE.has(key(g));
    if (both) return c.dim(`  ${show(g)}`);
    return inK.has(key(g)) ? c.red(`k ${show(g)}   (kernel only)`) : c.yellow(`e ${show(g)}   (emulator only)`);
  });
}
