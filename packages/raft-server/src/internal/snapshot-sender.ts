import type { ChildSpec, GenServer } from '@otra/actors';
import {
  type InstallSnapshotReply,
  type InstallSnapshotRequest,
  pidKey,
  type ServerId,
  type SnapshotMeta,
} from '@otra/protocol';
import type { SnapshotReader } from '@otra/raft-log';
import { closeLeftReader, type SystemRuntime } from './runtime.ts';
import type { SnapshotChunkData } from './server.ts';

export interface SenderArgs {
  readonly uid: string;
  readonly leader: ServerId;
  readonly to: ServerId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  /** The first chunk to send: 0, or where a retried transfer resumes. */
  readonly fromChunk: number;
  readonly chunkBytes: number;
}

interface SenderState {
  readonly args: SenderArgs;
  readonly reader: SnapshotReader;
  readonly chunks: number;
  /** Chunks sent and not yet acknowledged are `[acked + 1, sent]`. */
  sent: number;
  acked: number;
}

/** Chunks in flight before waiting for acknowledgements (flow control). */
const WINDOW = 2;

/**
 * Streams the leader's current snapshot to one lagging follower as `install_snapshot.request`
 * chunks from `fromChunk` on, at most `WINDOW` unacknowledged at a time. The RaftServer forwards
 * the follower's `install_snapshot.reply` messages here. It stops (`normal`) when the follower has
 * the last chunk; if the follower goes silent the core gives up on the transfer and the server
 * starts a new sender, which resumes after the follower's last acknowledged chunk.
 */
function senderBehaviour(sys: SystemRuntime): GenServer<SenderState, SenderArgs> {
  const sendChunk = async (
    state: SenderState,
    chunk: number,
    ctx: Parameters<NonNullable<GenServer<SenderState, SenderArgs>['handleInfo']>>[2],
  ) => {
    const { args, reader } = state;
    const offset = chunk * args.chunkBytes;
    const bytes = await reader.readChunk(offset, Math.min(args.chunkBytes, reader.info.size - offset));
    const data: SnapshotChunkData = { bytes, checksum: reader.info.checksum };
    const request: InstallSnapshotRequest = {
      type: 'install_snapshot.request',
      from: args.leader,
      term: args.term,
      meta: args.meta,
      chunk,
      last: chunk === state.chunks - 1,
      data,
    };
    ctx.send({ name: args.to.name, node: args.to.node }, request);
    state.sent = chunk;
  };

  const fill = async (state: SenderState, ctx: Parameters<typeof sendChunk>[2]) => {
    while (state.sent + 1 < state.chunks && state.sent - state.acked < WINDOW)
      await sendChunk(state, state.sent + 1, ctx);
  };

  return {
    async init(args, ctx) {
      // trap exits so a shutdown from the supervisor or the server still closes the reader
      ctx.trapExit(true);
      const reader = await sys.storage.snapshots.openRead(args.uid);
      if (reader === null) throw new Error('no snapshot to send');
      if (reader.info.meta.index !== args.meta.index) {
        await reader.close();
        throw new Error(`snapshot ${args.meta.index} is no longer current`);
      }
      // closed by terminate, or by the server if this sender dies without one
      sys.senderReaders.set(pidKey(ctx.self), reader);
      const chunks = Math.max(1, Math.ceil(reader.info.size / args.chunkBytes));
      // Chunks before `fromChunk` the follower has (a resumed transfer of this same snapshot file).
      // A follower that acknowledged them all is installing it, or has lost it: the last chunk
      // alone asks which (it answers it as a repeat, as `done`, or with chunk -1).
      const first = Math.min(args.fromChunk, chunks - 1);
      const state: SenderState = { args, reader, chunks, sent: first - 1, acked: first - 1 };
      await fill(state, ctx);
      return state;
    },
    async handleInfo(msg, state, ctx) {
      if ((msg as { type?: unknown })?.type === '@actors.exit') {
        ctx.stop('shutdown');
        return state;
      }
      const reply = msg as InstallSnapshotReply;
      if (reply?.type !== 'install_snapshot.reply' || reply.meta?.index !== state.args.meta.index)
        return state;
      if (reply.done || reply.chunk >= state.chunks - 1) {
        ctx.stop('normal');
        return state;
      }
      // an acknowledgement of a chunk this sender has not sent is another transfer's
      if (reply.chunk > state.sent) return state;
      state.acked = Math.max(state.acked, reply.chunk);
      await fill(state, ctx);
      return state;
    },
    async terminate(_reason, _state, ctx) {
      await closeLeftReader(sys, ctx.self);
    },
  };
}

let senders = 0;

/** A temporary child spec for the server's `one_for_all` supervisor. */
export function snapshotSenderSpec(sys: SystemRuntime, args: SenderArgs): ChildSpec {
  return {
    id: `snapshot_sender:${args.to.name}@${args.to.node}:${++senders}`,
    restart: 'temporary',
    shutdown: 2000,
    start: (ctx) => ctx.spawn(senderBehaviour(sys), args),
  };
}
