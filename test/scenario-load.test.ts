// loadScenarioFile: anything that is not a readable, reasonably sized UTF-8 text file is an
// InputError naming the file; a good file parses with its name as the default scenario name.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputError } from '../src/errors';
import { MAX_FILE_BYTES, loadScenarioFile } from '../src/scenario';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scenario-load-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const file = (name: string, content: string | Buffer): string => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
};

const messageOf = (p: string): string => {
  try {
    loadScenarioFile(p);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as InputError).message;
  }
  throw new Error('loaded without error');
};

test('a good file', () => {
  const p = file('basic-watch.yaml', 'steps:\n  - mmap: { addr: 0x10000000, size: 4K, kind: anon, name: heap }\n');
  const program = loadScenarioFile(p);
  expect(program.name).toBe('basic-watch');
  expect(program.file).toBe(p);
  expect(program.steps[0].where).toEqual({ file: p, line: 2, col: 5 });
});

test('errors inside the file are located in it', () => {
  const p = file('bad.yaml', 'steps:\n  - mmap: { addr: 0, size: 4k, kind: anon }\n');
  expect(messageOf(p)).toBe(`${p}:2:28: mmap.size: expected a size like 4K, 2M, 64p, got "4k"`);
});

test.each<[string, () => string, (p: string) => string]>([
  ['missing', () => path.join(dir, 'nope.yaml'), (p) => `${p}: no such file`],
  ['under a file', () => path.join(file('plain', 'x'), 'x.yaml'), (p) => `${p}: no such file (a part of the path is not a directory)`],
  ['a directory', () => dir, (p) => `${p}: is a directory, not a scenario file`],
  ['NUL bytes', () => file('nul.yaml', Buffer.from('steps: []\n\0\0\0')), (p) => `${p}: binary data (a NUL byte); a scenario is YAML text`],
  ['not UTF-8', () => file('latin1.yaml', Buffer.from([0x23, 0x20, 0xe9, 0x0a])), (p) => `${p}: not UTF-8 text; a scenario is YAML text in UTF-8`],
  ['empty', () => file('empty.yaml', ''), (p) => `${p}:1:1: empty scenario; expected a mapping with at least \`steps:\``],
  [
    'too large',
    () => {
      const p = file('huge.yaml', '');
      fs.truncateSync(p, MAX_FILE_BYTES + 1);
      return p;
    },
    (p) => `${p}: too large (${MAX_FILE_BYTES + 1} bytes; the limit is ${MAX_FILE_BYTES})`,
  ],
])('%s', (_label, make, message) => {
  const p = make();
  expect(messageOf(p)).toBe(message(p));
});
