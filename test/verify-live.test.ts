// Every bundled scenario, replayed on this machine's kernel, agrees with the emulator step by
// step. When the kernel cannot run them (no PAGEMAP_SCAN, no userfaultfd, no compiler), one
// loud line says what was skipped and why.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { EnvironmentError } from '../src/errors';
import { loadScenarioFile } from '../src/scenario';
import { summarize, verifyProgram, type Verification } from '../src/verify';

const dir = path.join(__dirname, '..', 'scenarios');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

let unavailable: string | undefined;
const results = new Map<string, Verification>();

beforeAll(async () => {
  for (const f of files) {
    try {
      results.set(f, await verifyProgram(loadScenarioFile(path.join(dir, f))));
    } catch (e) {
      if (!(e instanceof EnvironmentError)) throw e;
      unavailable = e.message;
      console.warn(`SKIPPED: live-kernel verification of ${files.length} scenarios: ${e.message}`);
      return;
    }
  }
});

describe.each(files)('%s', (file) => {
  test('agrees with the live kernel on every step', () => {
    if (unavailable) return;
    const v = results.get(file)!;
    const notAgreeing = v.steps.filter((s) => s.status !== 'agree');
    expect(notAgreeing.map((s) => ({ step: s.step, status: s.status, fields: s.fields, reason: s.reason }))).toEqual([]);
    expect(summarize(v.steps).agree).toBe(v.program.steps.length);
  });
});
