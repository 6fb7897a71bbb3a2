export type {
  AppendEntriesReply,
  AppendEntriesRequest,
  ClusterConfig,
  ClusterMember,
  CommandEntry,
  ConfigEntry,
  Correlation,
  From,
  IndexTerm,
  InstallSnapshotReply,
  InstallSnapshotRequest,
  LogEntry,
  Membership,
  NoopEntry,
  PreVoteReply,
  PreVoteRequest,
  RaftRpc,
  ReplyMode,
  SnapshotMeta,
  SystemCommand,
  SystemEntry,
  TimeoutNow,
  VoteReply,
  VoteRequest,
} from '@otra/protocol';
export type { LogView } from './internal/log.ts';
export { entryAt, lastIndex, lastTerm, slice as logSlice, termAt } from './internal/log.ts';
export { committedIndex, quorumSize } from './internal/quorum.ts';
export type { RequestRecord, RequestTable } from './internal/requests.ts';
export { unwrapSnapshotState } from './internal/requests.ts';
export type {
  AnyMachineModule,
  ApplyMeta,
  ApplyResult,
  CommandOf,
  Machine,
  MachineConfig,
  MachineEffect,
  MachineModule,
  MachineRole,
  ReplyOf,
  SimpleMachine,
  StateOf,
} from './machine.ts';
export { DEFAULT_REQUEST_WINDOW, defineMachine, toModule } from './machine.ts';
export { defaults, handle, initServer, resolveConfig, startServer, swapAppliedEntries } from './server.ts';
export type { RaftContext, RaftInput, RaftMachine, RoleChangeEvent } from './statechart.ts';
export { chartTakes, raftMachine, roleChange } from './statechart.ts';
export type {
  CommandMsg,
  ConfigAt,
  Effect,
  EffectType,
  HandleResult,
  LeaderHook,
  LeaderState,
  LocalMessage,
  Message,
  Peer,
  PendingQuery,
  Priority,
  QueryKind,
  RaftError,
  Recovered,
  Reply,
  ResolvedConfig,
  Role,
  ServerConfig,
  ServerState,
} from './types.ts';
export { emptyRecovered } from './types.ts';
