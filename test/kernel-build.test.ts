// Compiling the harness on first use: cache location and key, atomic writes, environment errors.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EnvironmentError } from '../src/errors';
import { compileC, defaultCacheDir, findCompiler, replayBinary, replaySourcePath } from '../src/kernel';

const describeLinux = process.platform === 'linux' ? describe : describe.skip;

describeLinux('building the kernel harness', () => {
  let tmp: string;
  const savedXdg = process.env.XDG_CACHE_HOME;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pagemap-scan-build-'));
  });
  afterEach(() => {
    if (savedXdg === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = savedXdg;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the C source is found next to the sources, as it will be from dist/', () => {
    expect(fs.existsSync(replaySourcePath())).toBe(true);
    expect(path.relative(path.join(__dirname, '..'), replaySourcePath())).toBe(path.join('src', 'kernel', 'replay.c'));
  });

  test('compiles into $XDG_CACHE_HOME/pagemap-scan, once per source hash', () => {
    process.env.XDG_CACHE_HOME = tmp;
    expect(defaultCacheDir()).toBe(path.join(tmp, 'pagemap-scan'));
    const exe = replayBinary();
    expect(path.dirname(exe)).toBe(path.join(tmp, 'pagemap-scan'));
    expect(path.basename(exe)).toMatch(/^replay-[0-9a-f]{16}$/);
    const mtime = fs.statSync(exe).mtimeMs;
    expect(replayBinary()).toBe(exe);
    expect(fs.statSync(exe).mtimeMs).toBe(mtime);
    // No temporary files are left behind.
    expect(fs.readdirSync(path.dirname(exe))).toEqual([path.basename(exe)]);

    const other = compileC('int main(void) { return 0; }\n', 'replay', { cacheDir: tmp });
    expect(other).not.toBe(exe);
  });

  test('a compile failure is an EnvironmentError with the diagnostics', () => {
    let error: unknown;
    try {
      compileC('int main(void) { return undeclared; }\n', 'broken', { cacheDir: tmp });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toMatch(/compiling the kernel harness \(broken\).*failed/);
    expect((error as Error).message).toMatch(/undeclared/);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  test('a missing compiler is an EnvironmentError', () => {
    expect(() => findCompiler('no-such-compiler-pagemap-scan')).toThrow(EnvironmentError);
    expect(() => compileC('int main(void){return 0;}', 'x', { compiler: 'no-such-compiler-pagemap-scan', cacheDir: tmp })).toThrow(
      /no C compiler found/,
    );
  });
});
