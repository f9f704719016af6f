// The package's builds must never overwrite the hand-written index.d.ts: napi's CLI writes its generated
// declarations of the native layer to `index.d.ts` unless told otherwise, so every `napi build` this package runs
// (package.json scripts, scripts/*.sh) must name another file with `--dts`. (Running napi's build here would cost a
// full second compile of every dependency — ~6 minutes on the CI machine — for the same answer; it was run once by
// hand: index.d.ts unchanged, native.d.ts written.)
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');

test('every napi build sends its declarations away from index.d.ts', () => {
  const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
  const commands = Object.values(pkg.scripts);
  for (const f of readdirSync(join(here, 'scripts'))) commands.push(readFileSync(join(here, 'scripts', f), 'utf8'));
  const builds = commands
    .flatMap((c) => c.split('\n'))
    .filter((line) => !line.trim().startsWith('#') && /\bnapi\s+build\b/.test(line));
  assert.ok(builds.length > 0, 'the package has a napi build');
  for (const line of builds) {
    const dts = line.match(/--dts[ =](\S+)/);
    assert.ok(dts, `no --dts in: ${line}`);
    assert.notEqual(dts[1].replace(/^\.\//, ''), 'index.d.ts', line);
  }
});
