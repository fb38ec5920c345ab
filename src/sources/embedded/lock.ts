/**
 * An exclusive lock on an embedded data directory. PGlite has no postmaster.pid
 * of its own, and two processes opening one data directory would corrupt it.
 */
import { open, readFile, rm } from "node:fs/promises";

export interface DirLock {
  release(): Promise<void>;
}

/** Takes `path` (a file) for this process, replacing it if its owner is dead. */
export async function acquireLock(path: string): Promise<DirLock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, "wx");
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return { release: () => rm(path, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const owner = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new Error(`embedded database is in use by process ${owner} (lock file ${path})`, { cause: err });
      }
      if (owner === process.pid) {
        throw new Error(`embedded database is already open in this process (lock file ${path})`, { cause: err });
      }
      await rm(path, { force: true }); // stale: its owner died without cleaning up
    }
  }
  throw new Error(`could not take lock file ${path}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
