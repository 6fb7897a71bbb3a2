import type { Pid } from '@otra/protocol';
import type { BehaviourKind } from './behaviour.ts';
import type { ExitReason } from './types.ts';

/** The lifecycle of one actor as inspection reports it. */
export type ActorStatus = 'initializing' | 'running' | 'terminating' | 'dead';

/** One actor in `Node.inspectTree()`: plain JSON. */
export interface ActorInfo {
  readonly pid: Pid;
  readonly name?: string;
  readonly kind: BehaviourKind;
  readonly parent?: Pid;
  /** The child spec id when a supervisor started it. */
  readonly childId?: string;
  readonly status: ActorStatus;
  /** True while an async handler is running. */
  readonly busy: boolean;
  readonly mailbox: number;
  readonly restarts: number;
  readonly trapExit: boolean;
  readonly links: number;
  readonly monitors: number;
  /** A statechart's state value, or what a behaviour's `describe` returns. */
  readonly stateValue?: unknown;
  readonly children: ActorInfo[];
}

/** The live supervision tree of a node. */
export interface NodeTree {
  readonly node: string;
  readonly creation: number;
  readonly actors: number;
  readonly roots: ActorInfo[];
}

/** Typed lifecycle events streamed by `Node.inspect(listener)`. */
export type InspectionEvent =
  | {
      readonly type: '@actors.spawned';
      readonly pid: Pid;
      readonly kind: BehaviourKind;
      readonly parent?: Pid;
      readonly name?: string;
    }
  | { readonly type: '@actors.exited'; readonly pid: Pid; readonly reason: ExitReason }
  | {
      readonly type: '@actors.restarted';
      readonly supervisor: Pid;
      readonly childId: string;
      readonly pid: Pid;
      readonly restarts: number;
    }
  | { readonly type: '@actors.escalated'; readonly supervisor: Pid; readonly restarts: number }
  /** Only when the listener asked for messages (`{ messages: true }`): every local delivery. */
  | { readonly type: '@actors.message'; readonly to: Pid; readonly msg: unknown };

export type InspectionListener = (event: InspectionEvent) => void;
