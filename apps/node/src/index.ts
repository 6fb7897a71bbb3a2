export type { AdminRequest, NodeStats } from './admin.ts';
export { ADMIN } from './admin.ts';
export type { ClientNode } from './client.ts';
export { connectClient } from './client.ts';
export type { KvCommand, KvReply, KvState } from './kv.ts';
export { kvData, kvMachine, kvQueries } from './kv.ts';
export type { OtraNode, OtraNodeOptions } from './otra-node.ts';
export { startOtraNode } from './otra-node.ts';
