import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { crc32c } from './crc32c.ts';
import {
  LogInputError,
  SnapshotAbortedError,
  SnapshotChecksumError,
  SnapshotCorruptionError,
  SnapshotStaleError,
} from './errors.ts';
import { checkUid } from './internal/keys.ts';
import {
  checkSnapshotMeta,
  decodeTrailerMeta,
  encodeTrailer,
  FIXED_TRAILER,
  parseFixedTrailer,
} from './internal/snapshot-format.ts';
import type {
  SnapshotInfo,
  SnapshotMeta,
  SnapshotReader,
  SnapshotReceiver,
  SnapshotSource,
  SnapshotStore,
} from './types.ts';

/** Writes go to disk in slices of this size, each an async file system call off the event loop. */
const WRITE_SLICE = 1 << 20;
const DEFAULT_CHUNK = 1 << 20;

interface Current {
  readonly info: SnapshotInfo;
  readonly file: string;
  readonly seq: number;
}

/**
 * Snapshots as files, one directory per server: `<root>/<uid>/<seq>.snap`, written as `<seq>.tmp`,
 * fsynced, then renamed (the commit point) and the directory fsynced. The previous snapshot is
 * deleted only after that, so an interrupted write or receive (crash, abort, bad checksum) leaves
 * it current. Kept out of RocksDB so a large snapshot never queues in the log's WAL behind, or in
 * front of, the appends' fsyncs.
 */
export class FileSnapshotStore implements SnapshotStore {
  private readonly currents = new Map<string, Current>();
  private readonly corruption = new Map<string, SnapshotCorruptionError>();
  private readonly nextSeq = new Map<string, number>();
  /** Completions of one server run one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Receives in progress, closed (and their temp files removed) by `close`. */
  private readonly receiving = new Set<() => Promise<void>>();

  private constructor(readonly root: string) {}

  /** Opens (creating) `root`, removes interrupted `*.tmp` files and finds each server's current snapshot. */
  static async open(root: string, options: { verify?: boolean } = {}): Promise<FileSnapshotStore> {
    const store = new FileSnapshotStore(root);
    await fs.mkdir(root, { recursive: true });
    for (const uid of await fs.readdir(root)) {
      const dir = path.join(root, uid);
      if (!(await fs.stat(dir)).isDirectory()) continue;
      await store.recoverServer(uid, dir, options.verify ?? true);
    }
    return store;
  }

  private async recoverServer(uid: string, dir: string, verify: boolean): Promise<void> {
    const names = await fs.readdir(dir);
    const snaps: number[] = [];
    let maxSeq = 0;
    for (const name of names) {
      const match = /^(\d{12})\.(snap|tmp)$/.exec(name);
      if (match === null) continue;
      const seq = Number(match[1]);
      maxSeq = Math.max(maxSeq, seq);
      if (match[2] === 'tmp') await fs.rm(path.join(dir, name), { force: true });
      else snaps.push(seq);
    }
    this.nextSeq.set(uid, maxSeq + 1);
    snaps.sort((a, b) => b - a);
    const newest = snaps[0];
    if (newest === undefined) return;
    const file = path.join(dir, fileName(newest, 'snap'));
    const checked = await readInfo(uid, file, verify);
    if (checked instanceof SnapshotCorruptionError) {
      // Never fall back to an older snapshot silently: the log may already be truncated past it.
      this.corruption.set(uid, checked);
      return;
    }
    this.currents.set(uid, { info: checked, file, seq: newest });
    for (const older of snaps.slice(1)) await fs.rm(path.join(dir, fileName(older, 'snap')), { force: true });
  }

  /** The servers with a snapshot (or a damaged one). */
  servers(): string[] {
    return [...new Set([...this.currents.keys(), ...this.corruption.keys()])];
  }

  /** Removes every snapshot of `uid` (`RaftStorage.deleteServer`); open readers keep their file. */
  async forget(uid: string): Promise<void> {
    this.currents.delete(uid);
    this.corruption.delete(uid);
    this.nextSeq.delete(uid);
    await fs.rm(path.join(this.root, uid), { recursive: true, force: true });
  }

  /** The damage found at open for `uid`, if any. */
  corruptionOf(uid: string): SnapshotCorruptionError | undefined {
    return this.corruption.get(uid);
  }

  current(uid: string): SnapshotInfo | null {
    const error = this.corruption.get(uid);
    if (error !== undefined) throw error;
    return this.currents.get(uid)?.info ?? null;
  }

  async write(uid: string, meta: SnapshotMeta, data: SnapshotSource): Promise<SnapshotInfo> {
    const receiver = await this.beginReceive(uid, meta);
    try {
      if (data instanceof Uint8Array) {
        for (let at = 0; at < data.length; at += WRITE_SLICE) {
          await receiver.writeChunk(data.subarray(at, Math.min(data.length, at + WRITE_SLICE)));
        }
      } else {
        for await (const chunk of data) await receiver.writeChunk(chunk);
      }
    } catch (error) {
      await receiver.abort();
      throw error;
    }
    return receiver.complete(receiver.checksumSoFar);
  }

  async beginReceive(
    uid: string,
    meta: SnapshotMeta,
  ): Promise<SnapshotReceiver & { readonly checksumSoFar: number }> {
    checkUid(uid);
    const problem = checkSnapshotMeta(meta);
    if (problem !== undefined) throw new LogInputError(uid, problem);
    const dir = path.join(this.root, uid);
    await fs.mkdir(dir, { recursive: true });
    const seq = this.takeSeq(uid);
    const tmp = path.join(dir, fileName(seq, 'tmp'));
    const handle = await fs.open(tmp, 'wx');
    let size = 0;
    let crc = 0;
    let open = true;
    let writing: Promise<void> = Promise.resolve();
    const store = this;
    const discard = async (): Promise<void> => {
      store.receiving.delete(discard);
      open = false;
      await writing.catch(() => undefined);
      await handle.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
    };
    this.receiving.add(discard);
    return {
      meta,
      get checksumSoFar() {
        return crc;
      },
      writeChunk(bytes: Uint8Array): Promise<void> {
        if (!open) return Promise.reject(new SnapshotAbortedError(uid));
        crc = crc32c(bytes, crc);
        size += bytes.length;
        const at = writing.then(async () => {
          let done = 0;
          while (done < bytes.length) {
            const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
            done += bytesWritten;
          }
        });
        writing = at.catch(() => undefined);
        return at;
      },
      async complete(checksum: number): Promise<SnapshotInfo> {
        if (!open) throw new SnapshotAbortedError(uid);
        open = false;
        store.receiving.delete(discard);
        try {
          await writing;
          if (checksum >>> 0 !== crc >>> 0) throw new SnapshotChecksumError(uid, checksum, crc);
          await handle.write(encodeTrailer(meta, size, crc));
          await handle.sync();
          await handle.close();
        } catch (error) {
          await handle.close().catch(() => undefined);
          await fs.rm(tmp, { force: true });
          throw error;
        }
        const info: SnapshotInfo = { meta, size, checksum: crc };
        return store.install(uid, dir, tmp, seq, info);
      },
      abort: discard,
    };
  }

  private install(
    uid: string,
    dir: string,
    tmp: string,
    seq: number,
    info: SnapshotInfo,
  ): Promise<SnapshotInfo> {
    const run = async (): Promise<SnapshotInfo> => {
      const previous = this.currents.get(uid);
      if (previous !== undefined && info.meta.index < previous.info.meta.index) {
        await fs.rm(tmp, { force: true });
        throw new SnapshotStaleError(uid, info.meta.index, previous.info.meta.index);
      }
      const file = path.join(dir, fileName(seq, 'snap'));
      await fs.rename(tmp, file);
      await syncDir(dir);
      this.currents.set(uid, { info, file, seq });
      this.corruption.delete(uid);
      if (previous !== undefined) await fs.rm(previous.file, { force: true });
      return info;
    };
    const result = (this.locks.get(uid) ?? Promise.resolve()).then(run, run);
    this.locks.set(
      uid,
      result.catch(() => undefined),
    );
    return result;
  }

  async openRead(uid: string): Promise<SnapshotReader | null> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const current = this.currents.get(uid);
      if (this.corruption.has(uid)) throw this.corruption.get(uid)!;
      if (current === undefined) return null;
      try {
        const handle = await fs.open(current.file, 'r');
        return fileReader(handle, current.info);
      } catch (error) {
        // Replaced by a newer snapshot between looking it up and opening it: look again.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    return null;
  }

  /** Abandons receives still in progress (their previous snapshots stay current). */
  async close(): Promise<void> {
    await Promise.all([...this.receiving].map((discard) => discard()));
  }

  private takeSeq(uid: string): number {
    const seq = this.nextSeq.get(uid) ?? 1;
    this.nextSeq.set(uid, seq + 1);
    return seq;
  }
}

function fileName(seq: number, kind: 'snap' | 'tmp'): string {
  return `${String(seq).padStart(12, '0')}.${kind}`;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads and checks a snapshot file's trailer (and, with `verify`, the crc of all its bytes). */
async function readInfo(
  uid: string,
  file: string,
  verify: boolean,
): Promise<SnapshotInfo | SnapshotCorruptionError> {
  const handle = await fs.open(file, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    if (fileSize < FIXED_TRAILER) return new SnapshotCorruptionError(uid, file, 'too short');
    const fixed = Buffer.alloc(FIXED_TRAILER);
    await handle.read(fixed, 0, FIXED_TRAILER, fileSize - FIXED_TRAILER);
    const parsed = parseFixedTrailer(fixed, fileSize);
    if (!parsed.ok) return new SnapshotCorruptionError(uid, file, parsed.detail);
    const metaAndFixed = Buffer.alloc(parsed.metaLength + FIXED_TRAILER);
    await handle.read(metaAndFixed, 0, metaAndFixed.length, parsed.size);
    const meta = decodeTrailerMeta(metaAndFixed, parsed.metaLength, parsed.trailerCrc);
    if (meta === undefined) return new SnapshotCorruptionError(uid, file, 'trailer checksum or meta');
    if (verify) {
      let crc = 0;
      const buffer = Buffer.allocUnsafe(DEFAULT_CHUNK);
      for (let at = 0; at < parsed.size; ) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, parsed.size - at), at);
        if (bytesRead === 0) return new SnapshotCorruptionError(uid, file, 'short read');
        crc = crc32c(buffer, crc, 0, bytesRead);
        at += bytesRead;
      }
      if (crc !== parsed.dataCrc) return new SnapshotCorruptionError(uid, file, 'data checksum');
    }
    return { meta, size: parsed.size, checksum: parsed.dataCrc };
  } finally {
    await handle.close();
  }
}

function fileReader(handle: fs.FileHandle, info: SnapshotInfo): SnapshotReader {
  const readChunk = async (offset: number, length: number): Promise<Uint8Array> => {
    const end = Math.min(info.size, offset + length);
    if (offset < 0 || end <= offset) return new Uint8Array(0);
    const buffer = Buffer.allocUnsafe(end - offset);
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await handle.read(buffer, done, buffer.length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buffer.subarray(0, done);
  };
  return {
    info,
    readChunk,
    async *chunks(chunkSize = DEFAULT_CHUNK) {
      for (let at = 0; at < info.size; at += chunkSize) yield await readChunk(at, chunkSize);
    },
    close: () => handle.close(),
  };
}
