// The handover file (--handover-file): where a proxy leaves its credentials at shutdown
// and the next proxy on the node takes them back (credentials/handover.ts holds what is
// in it). Meant for a root-only hostPath on tmpfs (/run), so the credentials never reach
// a disk and are gone at reboot. A file this process could not have written (another
// owner, readable by others, a symbolic link) is refused, and one taken back is deleted
// at once: credentials rest on the node only between two proxies.

import { constants } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HANDOVER_MAX_BYTES } from '../credentials/handover.js';

export class HandoverFileError extends Error {}

async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

export class HandoverFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** The text the previous proxy left, deleted from the node (and any half-written one); null when there is none. */
  async take(): Promise<string | null> {
    await removeFile(this.partial);
    let file: Awaited<ReturnType<typeof open>>;
    try {
      file = await open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP') throw new HandoverFileError('it is a symbolic link');
      throw error;
    }
    try {
      const stat = await file.stat();
      if (!stat.isFile()) throw new HandoverFileError('it is not a regular file');
      const uid = process.getuid?.();
      if (uid !== undefined && stat.uid !== uid) throw new HandoverFileError(`it belongs to uid ${stat.uid}, not this proxy's ${uid}`);
      if ((stat.mode & 0o077) !== 0) throw new HandoverFileError(`others may read or write it (mode ${(stat.mode & 0o777).toString(8)}, written as 600)`);
      if (stat.size > HANDOVER_MAX_BYTES) throw new HandoverFileError(`it is ${stat.size} bytes, more than ${HANDOVER_MAX_BYTES}`);
      const text = await file.readFile({ encoding: 'utf8' });
      await unlink(this.path);
      return text;
    } finally {
      await file.close();
    }
  }

  /** Leaves `text` for the next proxy: readable by this user only, replacing any earlier file at once. */
  async leave(text: string): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    // Never through a link someone put in the way, and 600 whatever an earlier file had.
    const file = await open(this.partial, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    try {
      await file.chmod(0o600);
      await file.writeFile(text);
      await file.close();
      await rename(this.partial, this.path);
    } catch (error) {
      await file.close().catch(() => undefined);
      await removeFile(this.partial);
      throw error;
    }
  }

  /** Where a file is written before it replaces the last; one a killed proxy left holds credentials too. */
  private get partial(): string {
    return `${this.path}.partial`;
  }
}
