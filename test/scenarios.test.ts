// Every bundled scenario, run on the emulator, meets its expect blocks. Those values were
// recorded from Linux 6.18.44 with `pagemap-scan record` (and are re-checked against the live
// kernel by test/verify-live.test.ts), so this pins each rule the scenarios illustrate.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { testScenario } from '../src/cli/test';
import { loadScenarioFile } from '../src/scenario';

const dir = path.join(__dirname, '..', 'scenarios');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

test('at least 20 scenarios are shipped, each with expectations and a header comment', () => {
  expect(files.length).toBeGreaterThanOrEqual(20);
  for (const f of files) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    expect(text.startsWith('#')).toBe(true);
    expect(loadScenarioFile(path.join(dir, f)).steps.some((s) => s.expect)).toBe(true);
  }
});

describe.each(files)('%s', (file) => {
  test('meets every expectation', () => {
    const failures = testScenario(path.join(dir, file)).filter((t) => t.error || t.mismatches.length);
    expect(failures).toEqual([]);
  });
});
