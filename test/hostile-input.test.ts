// Hostile and broken input through the real CLI: each gives exit code 2 and one line on stderr
// that names the file, line and column (or the argument), no stack trace, nothing on stdout, no
// file written, quickly and in bounded memory. Inputs that are valid but make a system call fail
// (EEXIST, EINVAL, ENOMEM) are kernel results: they stop a scenario only without may_fail.
// In-process through main(argv, io), and spawned as `node bin/pagemap-scan.js` (built first if
// dist/ is older than src/) for what only a process shows: exit status, closed descriptors,
// memory, files of /proc.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli, type CliRun } from './support/cli';

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'pagemap-scan.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pms-hostile-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Timing bounds: the targets are for an idle machine; PAGEMAP_TIME_FACTOR scales them (CI: 3). */
const FACTOR = Number(process.env.PAGEMAP_TIME_FACTOR ?? 3);

let n = 0;
function file(content: string | Buffer, name = `case-${++n}.yaml`): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return p;
}

const H = 'steps:\n  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: m}\n';
const STEP = (s: string) => `${H}  - ${s}\n`;

/**
 * An input error as the user must see it: exit 2, one located line, nothing else on stdout
 * (`test` still ends with its count line).
 */
function expectInputError(r: CliRun, message: string | RegExp, out = ''): void {
  if (typeof message === 'string') expect(r.err).toBe(message);
  else expect(r.err).toMatch(message);
  expect(r.code).toBe(2);
  expect(r.out).toBe(out);
  expect(r.err).not.toMatch(/\s+at \S+ \(|internal error|undefined|\[object /);
  expect(r.err).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/);
}

async function timed(args: string[]): Promise<CliRun & { ms: number }> {
  const t0 = performance.now();
  const r = await cli(args);
  return { ...r, ms: performance.now() - t0 };
}

const bomb =
  'a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n' +
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nsteps: *f\n';

// [what, file content, message after "FILE:"]
const INPUT_ERRORS: [string, string, string | RegExp][] = [
  // YAML-level attacks
  ['an alias bomb', bomb, '3:8: more than 100 aliases'],
  ['an alias that refers to itself', 'steps: &s\n  - *s\n', '2:5: alias *s refers to itself'],
  ['flow nesting 100000 deep', 'steps: ' + '['.repeat(100_000) + ']'.repeat(100_000) + '\n', '1:40: nested more than 32 levels deep'],
  ['block nesting 200 deep', 'steps:\n' + Array.from({ length: 200 }, (_, i) => '  '.repeat(i + 1) + '- \n').join(''), '33:65: nested more than 32 levels deep'],
  ['40000 unknown top-level keys', 'steps: []\n' + Array.from({ length: 40_000 }, (_, i) => `k${i}: 1\n`).join(''), '2:1: k0: unknown key; valid keys for the top level: name, description, kernel, system, steps'],
  ['a second document', 'steps: []\n---\nsteps: []\n', '2:1: a second YAML document; a scenario file holds exactly one'],
  ['a custom tag', 'steps: !foo []\n', '1:8: Unresolved tag: !foo (scenarios use plain YAML values)'],
  ['a binary tag', 'steps: !!binary aGVsbG8=\n', '1:17: unsupported YAML value'],
  ['tabs as indentation', 'steps:\n\t- mmap: {}\n', '2:1: YAML: Tabs are not allowed as indentation'],
  ['a list at the top', '- steps\n', '1:1: expected a mapping (name:, steps:, ...) at the top level'],
  // sizes
  ['a negative size', STEP('write: {addr: m, size: -1}'), '3:28: write.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got -1'],
  ['a fractional size', STEP('write: {addr: m, size: 1.5}'), '3:28: write.size: expected a size like 4K, 2M, 64p, got 1.5'],
  ['a fractional unit size', STEP('write: {addr: m, size: 1.5K}'), '3:28: write.size: expected a size like 4K, 2M, 64p, got "1.5K"'],
  ['a size of 2^64', STEP('write: {addr: m, size: 18446744073709551616}'), '3:28: write.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got 18446744073709551616'],
  ['a hex size of 2^64', STEP('write: {addr: m, size: "0x10000000000000000"}'), '3:28: write.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got "0x10000000000000000"'],
  ['2^64 bytes as gigabytes', STEP('write: {addr: m, size: 17179869184G}'), '3:28: write.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got "17179869184G"'],
  ['2^64 bytes as pages', STEP('write: {addr: m, size: 4503599627370496p}'), '3:28: write.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got "4503599627370496p"'],
  ['a stride of 0', STEP('write: {addr: m, size: 1p, stride: 0}'), '3:40: write.stride: expected a stride of at least 1 byte, got 0'],
  ['an address of 2^128', 'steps:\n  - mmap: {addr: 340282366920938463463374607431768211456, size: 4p, kind: anon}\n', '2:18: mmap.addr: expected an address (an integer, a mapping name, NAME+SIZE or NAME-SIZE) within 0..2^64-1, got 340282366920938463463374607431768211456'],
  // u64 wrap-around in NAME+SIZE
  ['NAME+SIZE above 2^64-1', STEP('pagemap_scan: {start: m, end: m+18446744073709551615}'), '3:35: pagemap_scan.end: m+18446744073709551615 = 0x100000fffffffffff is above 2^64-1'],
  ['NAME-SIZE below 0', STEP('pagemap_scan: {start: m-0x200000000000, end: m}'), '3:27: pagemap_scan.start: m-0x200000000000 = 0x100000000000 - 0x200000000000 is below 0'],
  // unknown names
  ['an unknown op', STEP('mmapp: {addr: m, size: 4p}'), '3:5: step 2: unknown op "mmapp"; valid ops: mmap, munmap, mprotect, madvise, read, write, uffd_open, uffd_close, uffd_register, uffd_unregister, uffd_writeprotect, clear_refs, pagemap_scan; a step may also have may_fail, expect'],
  ['an unknown key', STEP('write: {addr: m, size: 4p, strid: 1}'), '3:32: write.strid: unknown key; valid keys for write: addr, size, stride'],
  ['an unknown category', STEP('pagemap_scan: {start: m, end: m+4p, category_mask: [WRITEN]}'), '3:57: pagemap_scan.category_mask[0]: unknown category "WRITEN"; valid: WPALLOWED, WRITTEN, FILE, PRESENT, SWAPPED, PFNZERO, HUGE, SOFT_DIRTY, GUARD, or an integer'],
  ['an unknown flag', STEP('pagemap_scan: {start: m, end: m+4p, flags: [WP]}'), '3:49: pagemap_scan.flags[0]: unknown flag "WP"; valid: WP_MATCHING, CHECK_WPASYNC, or an integer'],
  ['a uapi-prefixed flag', STEP('pagemap_scan: {start: m, end: m+1p, flags: [PM_SCAN_WP_MATCHING]}'), '3:49: pagemap_scan.flags[0]: unknown flag "PM_SCAN_WP_MATCHING" (write it without the PM_SCAN_ prefix); valid: WP_MATCHING, CHECK_WPASYNC, or an integer'],
  ['an unknown advice', STEP('madvise: {addr: m, size: 1p, advice: dontneeded}'), '3:42: madvise.advice: unknown advice "dontneeded"; valid: normal, random, sequential, willneed, dontneed, free, remove, dontfork, dofork, hugepage, nohugepage, cold, pageout, populate-read, populate-write, collapse, guard-install, guard-remove'],
  ['an unknown register mode', `${H}  - uffd_open: {}\n  - uffd_register: {addr: m, size: 16p, mode: [WRITE]}\n`, '4:48: uffd_register.mode[0]: unknown mode "WRITE"; valid: MISSING, WP, MINOR, or an integer'],
  ['an unknown errno in expect', `${H}  - write: {addr: m, size: 1}\n    expect: {errno: EBOGUS}\n`, /^4:21: write\.expect\.errno: unknown errno "EBOGUS"; valid: EPERM, (E[A-Z]+, )+SIGSEGV, SIGBUS$/],
  ['an unknown mapping name', STEP('write: {addr: toString, size: 1}'), '3:19: write.addr: unknown mapping name "toString"; defined so far: m'],
  ['a name used before its mmap', 'steps:\n  - write: {addr: m, size: 1}\n  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: m}\n', '2:19: write.addr: mapping name "m" is used before step 2 defines it'],
  // prototype keys are plain keys
  ['__proto__ at the top', '__proto__: {steps: []}\nsteps: []\n', '1:1: __proto__: unknown key; valid keys for the top level: name, description, kernel, system, steps'],
  ['__proto__ in an op', STEP('write: {addr: m, size: 4p, __proto__: {stride: 1}}'), '3:32: write.__proto__: unknown key; valid keys for write: addr, size, stride'],
  ['__proto__ in expect', `${H}  - write: {addr: m, size: 1}\n    expect: {__proto__: 1}\n`, '4:14: write.expect.__proto__: unknown key; valid keys for expect: errno, ok, userfault, hang'],
  ['__proto__ in system', 'system: {__proto__: {swap: on}}\nsteps: []\n', '1:10: system.__proto__: unknown key; valid keys for system: swap, thp, hugetlb_pages, read_ahead_kb'],
  // what the input says is shown escaped: no line breaks, terminal escapes or invisible text
  ['a quoted key with a newline', 'steps: []\n"a\\nb": 1\n', '2:1: ["a\\u000ab"]: unknown key; valid keys for the top level: name, description, kernel, system, steps'],
  ['a quoted key with a terminal escape', STEP('write: {addr: m, size: 1, "\\e[31mred": 1}'), '3:31: write["\\u001b[31mred"]: unknown key; valid keys for write: addr, size, stride'],
  ['an op name with a line separator, a C1 control and a bidi override', STEP('"\\u2028\\u009b\\u202e": {}'), '3:5: step 2: unknown op "\\u2028\\u009b\\u202e"; valid ops: mmap, munmap, mprotect, madvise, read, write, uffd_open, uffd_close, uffd_register, uffd_unregister, uffd_writeprotect, clear_refs, pagemap_scan; a step may also have may_fail, expect'],
  ['constructor as an op', STEP('constructor: {}'), '3:5: step 2: unknown op "constructor"; valid ops: mmap, munmap, mprotect, madvise, read, write, uffd_open, uffd_close, uffd_register, uffd_unregister, uffd_writeprotect, clear_refs, pagemap_scan; a step may also have may_fail, expect'],
  ['constructor as a key', STEP('write: {addr: m, size: 4p, constructor: 1}'), '3:32: write.constructor: unknown key; valid keys for write: addr, size, stride'],
  // duplicates
  ['a duplicate key in an op', STEP('write: {addr: m, size: 4p, size: 8p}'), '3:32: duplicate key "size"'],
  ['a duplicate top-level key', 'steps: []\nsteps: []\n', '2:1: duplicate key "steps"'],
  ['a mapping name defined twice', STEP('mmap: {addr: 0x100000100000, size: 16p, kind: anon, name: m}'), '3:63: mmap.name: mapping name "m" is already defined by step 1'],
  ['two ops in one step', 'steps:\n  - mmap: {addr: 0x100000000000, size: 16p, kind: anon}\n    munmap: {addr: 0x100000000000, size: 16p}\n', '3:5: step 1: a second op in one step (after mmap); write one op per step'],
  // wrong types everywhere
  ['steps as a string', 'steps: hello\n', '1:8: steps: expected a list of steps, got "hello"'],
  ['a step that is a list', 'steps:\n  - [mmap]\n', '2:5: step 1: expected a step like `- mmap: {...}`, got a list of 1'],
  ['a step without an op', 'steps:\n  - may_fail: true\n', '2:5: step 1: a step without an op; valid ops: mmap, munmap, mprotect, madvise, read, write, uffd_open, uffd_close, uffd_register, uffd_unregister, uffd_writeprotect, clear_refs, pagemap_scan; a step may also have may_fail, expect'],
  ['an address that is a list', 'steps:\n  - mmap: {addr: [1], size: 4p, kind: anon}\n', '2:18: mmap.addr: expected an address (an integer, a mapping name, NAME+SIZE or NAME-SIZE), got a list of 1'],
  ['a missing address', 'steps:\n  - mmap: {size: 16p, kind: anon}\n', '2:11: mmap.addr: missing (required)'],
  ['prot as a number', 'steps:\n  - mmap: {addr: 0x100000000000, size: 4p, kind: anon, prot: 3}\n', '2:62: mmap.prot: expected prot "none" or letters of "rwx" (like r, rw, rx), got 3'],
  ['may_fail as a string', `${H}  - write: {addr: m, size: 4p}\n    may_fail: yes\n`, '4:15: write.may_fail: expected true or false, got "yes"'],
  ['wp as a string', `${H}  - uffd_open: {}\n  - uffd_writeprotect: {addr: m, size: 1p, wp: 'true'}\n`, '4:48: uffd_writeprotect.wp: expected true or false, got "true"'],
  ['features as a mapping', 'steps:\n  - uffd_open: {features: {WP_ASYNC: true}}\n', '2:27: uffd_open.features: expected a list of feature names or a u64 (an integer 0..2^64-1, decimal or "0x..." hex), got a mapping'],
  ['flags as a bare name', STEP('pagemap_scan: {start: m, end: m+1p, flags: WP_MATCHING}'), '3:48: pagemap_scan.flags: expected a list of flag names or an integer, got "WP_MATCHING" (write [WP_MATCHING])'],
  ['vec: 0', STEP('pagemap_scan: {start: m, end: m+1p, vec: 0}'), '3:46: pagemap_scan.vec: only null is accepted (a NULL array); omit vec for the output array, got 0'],
  ['an expect that is a list', `${H}  - write: {addr: m, size: 1}\n    expect: [ok]\n`, '4:13: write.expect: expected a mapping, got a list of 1'],
  ['a region of two', `${H}  - pagemap_scan: {start: m, end: m+1p}\n    expect: {regions: [[m, m+1p]]}\n`, '4:24: pagemap_scan.expect.regions[0]: expected a region [start, end, [CATEGORIES]], got a list of 2'],
  ['kernel as a number', 'kernel: 6.18\nsteps: []\n', '1:9: kernel: unknown kernel profile 6.18; known profiles: 6.7, 6.7+softdirty, 6.8, 6.8+softdirty, 6.13, 6.13+softdirty, 6.16, 6.16+softdirty, 6.18.0, 6.18.0+softdirty, 6.18.44, 6.18.44+softdirty'],
  ['system as a list', 'system: [swap]\nsteps: []\n', '1:9: system: expected a mapping, got a list of 1'],
  ['swap: maybe', 'system: {swap: maybe}\nsteps: []\n', '1:16: system.swap: expected on or off, got "maybe"'],
  ['a negative hugetlb pool', 'system: {hugetlb_pages: {2M: -1}}\nsteps: []\n', '1:30: system.hugetlb_pages.2M: expected a count (an integer 0..2^53-1), got -1'],
  ['name as a number', 'name: 5\nsteps: []\n', '1:7: name: expected a string, got 5'],
  ['description as a list', 'description: [a]\nsteps: []\n', '1:14: description: expected a string, got a list of 1'],
  // not a scenario at all
  ['an empty file', '', '1:1: empty scenario; expected a mapping with at least `steps:`'],
  ['only a comment', '# nothing\n', '1:1: empty scenario; expected a mapping with at least `steps:`'],
  ['a control character', 'steps: []\n\u0001\n', '2:1: binary data (control character U+0001); a scenario is YAML text'],
];

describe('input errors: exit 2, one located line, nothing else', () => {
  test.each(INPUT_ERRORS)('%s', async (_, content, message) => {
    const f = file(content);
    const r = await timed(['run', f]);
    const escaped = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expectInputError(r, typeof message === 'string' ? `${f}:${message}` : new RegExp(`^${escaped}:${message.source.slice(1)}`));
    expect(r.ms).toBeLessThan(1000 * FACTOR);
  });

  test('the same for test, export-c and record', async () => {
    const f = file(STEP('write: {addr: m, size: -1}'));
    const message = `${f}:3:28: write.size: expected a size like 4K, 2M, 64p within 0..2^64-1 bytes, got -1`;
    for (const cmd of ['export-c', 'record']) expectInputError(await cli([cmd, f]), message);
    expectInputError(await cli(['test', f]), message, '0 passed, 0 failed');
  });
});

describe('files that are not scenario files', () => {
  test.each([
    ['a missing file', () => path.join(dir, 'missing.yaml'), 'no such file'],
    ['a path through a file', () => path.join(file('steps: []\n'), 'x.yaml'), 'no such file (a part of the path is not a directory)'],
    ['a directory of no scenarios (test takes directories)', () => fs.mkdtempSync(path.join(dir, 'd-')), 'is a directory, not a scenario file'],
    ['a NUL byte', () => file(Buffer.from('steps: []\n\0\n')), 'binary data (a NUL byte); a scenario is YAML text'],
    ['not UTF-8', () => file(Buffer.from('steps: []\nname: \xff\xfe\n', 'latin1')), 'not UTF-8 text; a scenario is YAML text in UTF-8'],
    ['a FIFO (never opened: it would block)', () => {
      const p = path.join(dir, `fifo-${++n}`);
      execFileSync('mkfifo', [p]);
      return p;
    }, 'is not a regular file'],
    ['a character device', () => '/dev/zero', 'is not a regular file'],
    ['just over the size limit', () => file('#'.repeat(10 * 1024 * 1024 + 1)), `too large (${10 * 1024 * 1024 + 1} bytes; the limit is ${10 * 1024 * 1024})`],
  ])('%s', async (_, make, detail) => {
    const p = make();
    expectInputError(await cli(['run', p]), `${p}: ${detail}`);
  });

  test('a file without read permission (as an unprivileged user)', async () => {
    if (process.getuid?.() === 0) return; // root reads anything
    const p = file('steps: []\n');
    fs.chmodSync(p, 0);
    expectInputError(await cli(['run', p]), `${p}: cannot read it: permission denied`);
  });
});

describe('valid input whose system calls fail: a kernel result, not an input error', () => {
  async function json(content: string) {
    const r = await cli(['run', '--json', file(content)]);
    return { ...r, doc: r.out ? JSON.parse(r.out) : undefined };
  }

  test('vec_len = 2^64-1 and max_pages = 2^64-1 are scan arguments: EFAULT from access_ok(), walk_end not written', async () => {
    const r = await json(STEP('pagemap_scan: {start: m, end: m+16p, vec_len: 18446744073709551615, max_pages: 18446744073709551615}'));
    expect(r.code).toBe(0);
    expect(r.doc.steps[1]).toEqual({ step: 2, op: 'pagemap_scan', ret: -1, errno: 'EFAULT', walk_end: null, regions: [] });
  });

  test('max_pages = 2^64-1 with a small vec_len is simply no limit', async () => {
    const r = await json(`${H}  - write: {addr: m, size: 16p}\n  - pagemap_scan: {start: m, end: m+16p, vec_len: 10, max_pages: 18446744073709551615, return_mask: [PRESENT]}\n`);
    expect(r.code).toBe(0);
    expect(r.doc.steps[2]).toMatchObject({ ret: 1, errno: null, walk_end: '0x100000010000' });
  });

  test('vec: null with vec_len = 2^64-1 is EINVAL', async () => {
    const r = await json(STEP('pagemap_scan: {start: m, end: m+16p, vec: null, vec_len: 18446744073709551615}'));
    expect(r.doc.steps[1]).toMatchObject({ ret: -1, errno: 'EINVAL', walk_end: null });
  });

  test('a scan above TASK_SIZE is EFAULT; a reversed range too', async () => {
    const r = await json(`${H}  - pagemap_scan: {start: 0x800000000000, end: 0x800000001000}\n  - pagemap_scan: {start: m+1p, end: m}\n`);
    expect(r.code).toBe(0);
    expect(r.doc.steps.slice(1).map((s: { errno: string }) => s.errno)).toEqual(['EFAULT', 'EFAULT']);
  });

  test.each([
    ['an mmap over another (EEXIST)', STEP('mmap: {addr: 0x100000000000, size: 4p, kind: anon}'), 2, 'EEXIST'],
    ['an unaligned mmap (EINVAL)', STEP('mmap: {addr: 0x100000100001, size: 4p, kind: anon}'), 2, 'EINVAL'],
    ['an mmap of size 0 (EINVAL)', STEP('mmap: {addr: 0x100000100000, size: 0, kind: anon}'), 2, 'EINVAL'],
    ['an mmap above TASK_SIZE (ENOMEM)', 'steps:\n  - mmap: {addr: 0x800000000000, size: 16p, kind: anon}\n', 1, 'ENOMEM'],
    ['a munmap that wraps around (EINVAL)', STEP('munmap: {addr: 0xfffffffffffff000, size: 0x2000}'), 2, 'EINVAL'],
    ['a write to no mapping (SIGSEGV)', STEP('write: {addr: 0x200000000000, size: 1}'), 2, 'SIGSEGV'],
  ])('%s stops the scenario without may_fail (exit 2, naming the step), and is a result with it', async (_, content, step, errno) => {
    const f = file(content);
    const r = await cli(['run', f]);
    expect(r.code).toBe(2);
    // the step's own line (`steps:` is line 1) and the column of its op
    expect(r.err).toBe(`${f}:${step + 1}:5: step ${step}: ${content.split('\n')[step].trim().slice(2).split(':')[0]} failed with ${errno} (add may_fail: true to make it a result)`);
    const tolerant = content.split('\n');
    tolerant.splice(step + 1, 0, '    may_fail: true');
    const ok = await json(tolerant.join('\n'));
    expect(ok.code).toBe(0);
    expect(ok.doc.steps[step - 1]).toMatchObject({ ret: -1, errno });
  });

  test('write size 0 touches nothing; a touch at 2^64-1 faults', async () => {
    const r = await json(`${H}  - write: {addr: m, size: 0}\n  - write: {addr: 0xffffffffffffffff, size: 16}\n    may_fail: true\n`);
    expect(r.code).toBe(0);
    expect(r.doc.steps.slice(1).map((s: { errno: string }) => s.errno)).toEqual([null, 'SIGSEGV']);
  });

  test('mapping names __proto__ and constructor are just names', async () => {
    const r = await json(
      'steps:\n  - mmap: {addr: 0x100000000000, size: 16p, kind: anon, name: __proto__}\n  - write: {addr: __proto__+4p, size: 1}\n' +
        '  - mmap: {addr: 0x100000100000, size: 16p, kind: anon, name: constructor}\n  - pagemap_scan: {start: __proto__, end: constructor, category_mask: [PRESENT], return_mask: [PRESENT]}\n',
    );
    expect(r.code).toBe(0);
    expect(r.doc.steps[3].regions).toEqual([{ start: '0x100000004000', end: '0x100000005000', categories: ['PRESENT'] }]);
  });
});

describe('command-line arguments', () => {
  test.each([
    [['run'], "error: missing required argument 'file'"],
    [['frobnicate'], "error: unknown command 'frobnicate'"],
    [['run', '--frob', 'x.yaml'], "error: unknown option '--frob'"],
    [['run', '--kernel', '5.0', 'x.yaml'], "error: option '--kernel <profile>' argument '5.0' is invalid. Allowed choices are 6.7, 6.7+softdirty, 6.8, 6.8+softdirty, 6.13, 6.13+softdirty, 6.16, 6.16+softdirty, 6.18.0, 6.18.0+softdirty, 6.18.44, 6.18.44+softdirty."],
    [['test', '--reporter', 'xml', 'x.yaml'], "error: option '--reporter <name>' argument 'xml' is invalid. Allowed choices are default, tap."],
  ])('%j', async (args, first) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    // The error, then commander's hint: nothing else, no stack.
    expect(r.err.split('\n')).toEqual([first, '(run pagemap-scan --help for usage)']);
  });
});

describe('no partial output file', () => {
  test('record leaves a scenario with an input error untouched, and no temporary file', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'rec-'));
    const text = STEP('pagemap_scan: {start: m, end: m+1p, flags: [WP]}');
    const f = path.join(sub, 'bad.yaml');
    fs.writeFileSync(f, text);
    const r = await cli(['record', f]);
    expect(r.code).toBe(2);
    expect(fs.readFileSync(f, 'utf8')).toBe(text);
    expect(fs.readdirSync(sub)).toEqual(['bad.yaml']);
  });
});

// ---- spawned: the real process ------------------------------------------------------------

/** dist/ must be at least as new as src/ (npm test builds first; a lone jest run may not have). */
function ensureBuilt(): void {
  const newest = (d: string): number =>
    Math.max(...fs.readdirSync(d, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(d, e.name)) : fs.statSync(path.join(d, e.name)).mtimeMs)));
  const main = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(main) || fs.statSync(main).mtimeMs < newest(path.join(ROOT, 'src'))) {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { stdio: 'pipe' });
  }
}

interface Spawned {
  status: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
  ms: number;
}

/** Run the CLI in a shell (for redirections), with a heap cap so that memory stays bounded. */
function spawnCli(args: string, redirect = ''): Spawned {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', `exec "${process.execPath}" --max-old-space-size=400 "${BIN}" ${args} ${redirect}`], {
    encoding: 'utf8',
    timeout: 20_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr, ms: performance.now() - t0 };
}

function expectCleanFailure(r: Spawned, message: string | RegExp, out = ''): void {
  expect(r.signal).toBeNull();
  expect(r.status).toBe(2);
  expect(r.out).toBe(out);
  if (typeof message === 'string') expect(r.err).toBe(message + '\n');
  else expect(r.err).toMatch(message);
  expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  expect(r.err).not.toMatch(/\s+at \S+ \(|heap out of memory|internal error/);
}

describe('spawned: exit status, descriptors, memory, /proc', () => {
  beforeAll(ensureBuilt, 120_000);

  test('a 10 MB scenario of 300000 steps: "too many values" in about a second, under a 400 MB heap', () => {
    const step = '  - write: {addr: m, size: 1p}\n';
    const f = file(H + step.repeat(Math.floor((10_000_000 - H.length) / step.length)));
    const r = spawnCli(`run "${f}"`);
    expectCleanFailure(r, `${f}:14287:3: more than 50000 values`);
    expect(r.ms).toBeLessThan(1000 * FACTOR);
  });

  test('a 10 MB scenario of one million keys: the same', () => {
    const f = file('steps: []\n' + Array.from({ length: 900_000 }, (_, i) => `k${i}: 1\n`).join(''));
    const r = spawnCli(`run "${f}"`);
    expectCleanFailure(r, `${f}:50001:1: more than 50000 values`);
    expect(r.ms).toBeLessThan(1000 * FACTOR);
  });

  test('a 10 MB string is a valid name: it runs', () => {
    const f = file(`name: "${'x'.repeat(9_999_000)}"\nsteps: []\n`);
    const r = spawnCli(`run --json "${f}"`);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out).scenario).toHaveLength(9_999_000);
  });

  test('/proc/self/pagemap (a "regular" file of size 0 that would stream 256 GiB) is not read past the limit', () => {
    expectCleanFailure(spawnCli('run /proc/self/pagemap'), '/proc/self/pagemap: cannot read it: EINVAL');
  });

  test('/proc/kmsg (a "regular" file whose read blocks) does not hang', () => {
    if (!fs.existsSync('/proc/kmsg') || process.getuid?.() !== 0) return;
    expectCleanFailure(spawnCli('run /proc/kmsg'), '/proc/kmsg: cannot read it: EAGAIN');
  });

  test('stdin closed: a scenario runs; /dev/stdin is no scenario', () => {
    const ok = spawnCli(`run "${path.join(ROOT, 'scenarios', 'write-watch.yaml')}"`, '0<&-');
    expect(ok.status).toBe(0);
    expect(ok.out).toContain('pagemap_scan');
    expectCleanFailure(spawnCli('run /dev/stdin', '0<&-'), /^\/dev\/stdin: (no such file|is not a regular file|cannot read it: \w+)\n$/);
  });

  test('stdout or stderr closed: no crash, the exit status still tells', () => {
    expect(spawnCli(`run "${path.join(ROOT, 'scenarios', 'write-watch.yaml')}"`, '>&-').status).toBe(0);
    expect(spawnCli(`run "${path.join(dir, 'missing.yaml')}"`, '2>&-').status).toBe(2);
  });

  test('an input error from the binary: status 2, one line, no stack', () => {
    const f = file(STEP('write: {addr: m, size: 1.5}'));
    expectCleanFailure(spawnCli(`run "${f}"`), `${f}:3:28: write.size: expected a size like 4K, 2M, 64p, got 1.5`);
    expectCleanFailure(spawnCli(`test "${path.join(dir, 'missing.yaml')}"`), `${path.join(dir, 'missing.yaml')}: no such file`, '0 passed, 0 failed\n');
  });
});
