// `pagemap-scan record FILE...`: run each scenario on the real kernel and write what it
// returned into the `expect` blocks of its scans (and the errno of failing steps), keeping the
// file's comments and layout. This is how the bundled scenarios got their expected values.

import * as fs from 'node:fs';
import { isMap, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { EnvironmentError, EXIT_OK, InputError } from '../errors';
import { environmentWarnings, runOnKernel } from '../kernel';
import { loadScenarioFile } from '../scenario';
import type { Program, StepResult } from '../scenario/program';
import { categoryNames } from '../uapi';
import { symbolic } from './format';
import type { Io } from './io';
import { withSetup, type SetupOptions } from './setup-options';

export async function recordCommand(files: string[], opts: SetupOptions, io: Io): Promise<number> {
  const programs = files.map((f) => loadScenarioFile(f));
  return withSetup(opts, programs, async () => {
    for (const program of programs) await recordOne(program, io);
    return EXIT_OK;
  });
}

async function recordOne(program: Program, io: Io): Promise<void> {
  const file = program.file;
  const unfit = environmentWarnings(program);
  if (unfit.length) throw new EnvironmentError(`${file}: this machine cannot reproduce it: ${unfit.join('; ')}`);
  {
    const run = await runOnKernel(program);
    if (run.unreproduced.length) {
      const u = run.unreproduced[0];
      throw new EnvironmentError(`${file}: step ${u.step} (${u.op}) could not be reproduced on this kernel: ${u.reason}: ${u.detail}`);
    }
    const text = fs.readFileSync(file, 'utf8');
    const doc = parseDocument(text);
    writeExpectations(doc, program, run.results);
    const tmp = `${file}.record-${process.pid}.tmp`;
    fs.writeFileSync(tmp, doc.toString({ lineWidth: 0, flowCollectionPadding: false }));
    fs.renameSync(tmp, file);
    const stoppedAt = run.stopped ? `, stopped at step ${run.stopped.step}` : '';
    io.out(`${file}: recorded ${run.results.length} steps from Linux ${run.harness.kernel}${stoppedAt}`);
  }
}

/**
 * Replace the expect block of every step that ran: scans get ret/errno/walk_end/regions; a step
 * that blocked on userfaultfd gets `userfault: {address, flags}`; one that never returned, `hang: {why, address}`.
 */
function writeExpectations(doc: Document, program: Program, results: StepResult[]): void {
  const steps = doc.get('steps');
  if (!isSeq(steps)) throw new InputError({ file: program.file }, 'steps', 'expected a list of steps');
  const byIndex = new Map(results.map((r) => [r.step, r]));
  steps.items.forEach((item, i) => {
    const r = byIndex.get(i + 1);
    if (!r || !isMap(item)) return;
    const expect = expectationFor(r, program);
    if (expect === undefined) {
      (item as YAMLMap).delete('expect');
      return;
    }
    const node = doc.createNode(expect);
    node.flow = r.op !== 'pagemap_scan' || !r.regions?.length;
    const regions = isMap(node) ? node.get('regions', true) : undefined;
    if (isSeq(regions)) for (const region of regions.items) if (isSeq(region)) region.flow = true;
    (item as YAMLMap).set('expect', node);
  });
}

/** The mapping names a step may use: those of the mmaps before it (resolve.ts refuses others). */
function namesBefore(program: Program, step: number): Map<string, bigint> {
  const names = new Map<string, bigint>();
  for (const s of program.steps) {
    if (s.index >= step) break;
    if (s.op.op === 'mmap' && s.op.name !== undefined) names.set(s.op.name, s.op.addr);
  }
  return names;
}

function expectationFor(r: StepResult, program: Program): Record<string, unknown> | undefined {
  const names = namesBefore(program, r.step);
  // A step that blocked in handle_userfault(): the message the kernel queued for the reader.
  if (r.userfault) return { userfault: { address: symbolic(r.userfault.address, names), flags: [...r.userfault.flags] } };
  // A step the kernel never returns from: what it does for ever (and the byte, for a touch).
  if (r.hang) return { hang: { why: r.hang.why, ...(r.hang.address !== undefined && { address: symbolic(r.hang.address, names) }) } };
  if (r.op !== 'pagemap_scan') return r.errno ? { errno: r.errno } : undefined;
  const out: Record<string, unknown> = {};
  if (r.errno) out.errno = r.errno;
  else out.ret = Number(r.ret);
  out.walk_end = r.walk_end == null ? null : symbolic(r.walk_end, names);
  out.regions = (r.regions ?? []).map((g) => [
    symbolic(g.start, names),
    symbolic(g.end, names),
    categoryNames(g.categories),
  ]);
  return out;
}
