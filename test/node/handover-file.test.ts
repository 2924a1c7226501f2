// The handover file on a real file system: written for this user only, taken back once,
// and refused when this process could not have written it.

import t, { type Test } from 'tap';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDOVER_MAX_BYTES } from '../../lib/credentials/handover.js';
import { HandoverFile } from '../../lib/node/handover-file.js';

function folder(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'k2i-handover-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('no file: nothing to take over', async (t) => {
  t.equal(await new HandoverFile(join(folder(t), 'handover.json')).take(), null);
});

t.test('left for the next proxy: mode 600 in a 700 folder it makes, taken back once, then gone', async (t) => {
  const path = join(folder(t), 'run', 'kube2iam', 'handover.json');
  const file = new HandoverFile(path);
  await file.leave('{"version":1}');
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(join(path, '..')).mode & 0o777, 0o700);
  t.equal(await file.take(), '{"version":1}');
  t.notOk(existsSync(path), 'deleted once taken');
  t.equal(await file.take(), null, 'a second proxy finds nothing');
});

t.test('leaving replaces an earlier file, and an earlier mode does not survive', async (t) => {
  const path = join(folder(t), 'handover.json');
  writeFileSync(`${path}.partial`, 'old', { mode: 0o644 });
  writeFileSync(path, 'old', { mode: 0o600 });
  const file = new HandoverFile(path);
  await file.leave('new');
  t.equal(readFileSync(path, 'utf8'), 'new');
  t.equal(statSync(path).mode & 0o777, 0o600);
});

t.test('a file this proxy could not have written is refused and left alone', async (t) => {
  const dir = folder(t);
  const target = join(dir, 'elsewhere.json');
  writeFileSync(target, 'x', { mode: 0o600 });
  const cases: Array<[string, (path: string) => void, RegExp]> = [
    ['a symbolic link', (path) => symlinkSync(target, path), /symbolic link/],
    ['readable by others', (path) => writeFileSync(path, 'x', { mode: 0o644 }), /others may read or write it \(mode 644/],
    ['writable by the group', (path) => (writeFileSync(path, 'x'), chmodSync(path, 0o620)), /mode 620/],
    ['a folder', (path) => mkdirSync(path), /not a regular file/],
    ['too large', (path) => (writeFileSync(path, '', { mode: 0o600 }), truncateSync(path, HANDOVER_MAX_BYTES + 1)), /more than/],
    ...(process.getuid?.() === 0
      ? [
          ['another owner', (path: string) => (writeFileSync(path, 'x', { mode: 0o600 }), chownSync(path, 1000, 1000)), /belongs to uid 1000/] as [
            string,
            (path: string) => void,
            RegExp,
          ],
        ]
      : []),
  ];
  for (const [name, make, reason] of cases) {
    const path = join(dir, `${name.replace(/\W/g, '-')}.json`);
    make(path);
    await t.rejects(new HandoverFile(path).take(), reason, name);
    t.ok(existsSync(path), `${name}: left in place`);
  }
  t.equal(readFileSync(target, 'utf8'), 'x', "a link's target is not touched");
});

t.test('a half-written file a killed proxy left is deleted by the next, which finds nothing to take', async (t) => {
  const path = join(folder(t), 'handover.json');
  writeFileSync(`${path}.partial`, '{"version":1,"credentials":[{"roleArn"', { mode: 0o600 });
  t.equal(await new HandoverFile(path).take(), null);
  t.notOk(existsSync(`${path}.partial`));
});

t.test('a write that fails leaves no half-written file', async (t) => {
  const dir = folder(t);
  const path = join(dir, 'handover.json');
  mkdirSync(path); // the rename onto a folder fails
  await t.rejects(new HandoverFile(path).leave('secret'));
  t.notOk(existsSync(`${path}.partial`));
});

t.test('a link put where the file is written is not written through', async (t) => {
  const dir = folder(t);
  const target = join(dir, 'elsewhere.json');
  writeFileSync(target, 'x');
  const path = join(dir, 'handover.json');
  symlinkSync(target, `${path}.partial`);
  await t.rejects(new HandoverFile(path).leave('secret'), { code: 'ELOOP' });
  t.equal(readFileSync(target, 'utf8'), 'x');
});
